"""`ntjax lr-find --command`: the LR range test of a user's own PyTorch script, driven through its ntjax
monitor (bridges/lr_ramp.py), lands within 3x of the best LR of a small grid of real runs of that script."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ntjax.readers import read_run

SCRIPT = Path(__file__).parent / "userscripts" / "torch_train.py"


@pytest.mark.slow
def test_lr_find_command_suggests_an_lr_within_3x_of_the_grid_best(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "lr-find", "--command",
                          f"{sys.executable} {SCRIPT} --steps 1000", "--min-lr", "1e-4", "--max-lr", "100",
                          "--steps", "100", "--out", str(tmp_path / "lr"), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout)
    assert found["stop_reason"] in ("diverged", "nonfinite") and found["steps_run"] < 100  # the ramp ended it
    run = read_run(found["run_dir"])
    assert run.get("train/lr").value[0] == 1e-4 and len(run.get("train/lr")) == found["steps_run"]
    assert Path(found["plot"]).is_file()

    grid = {}
    for lr in (0.1, 0.3, 1.0, 3.0):  # the same script, trained normally at each LR
        folder = tmp_path / f"grid_{lr}"
        subprocess.run([sys.executable, str(SCRIPT), "--lr", str(lr), "--steps", "100", "--out", str(folder)],
                       check=True, capture_output=True, timeout=300)
        loss = read_run(folder).get("eval/loss").value[-1]
        grid[lr] = loss if loss == loss else float("inf")
    best = min(grid, key=grid.get)
    ratio = found["recommended"] / best
    assert 1 / 3 <= ratio <= 3, (found["recommended"], grid)


def test_lr_find_command_refuses_a_script_without_monitor(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "lr-find", "--command",
                          f"{sys.executable} -c 'print(1)'", "--grace", "5", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no metrics" in out.stderr.strip().splitlines()[-1]
