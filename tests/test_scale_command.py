"""`ntjax scale run --command`: a scaling study of a user's own PyTorch model family (real runs of a real
script): N from the runs' config.json, D from steps, the CSV that `ntjax scale fit` reads unchanged."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "userscripts" / "torch_train.py"


def _ntjax(*args, timeout=900):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", *args], capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


@pytest.mark.slow
def test_scale_run_command_feeds_scale_fit(tmp_path):
    template = f"{sys.executable} {SCRIPT} --width {{width}} --steps {{steps}} --eval-every 1000 --lr 0.1"
    code, out, err = _ntjax("scale", "run", "--command", template, "--widths", "4,8,16", "--step-counts", "20,40",
                            "--tokens-per-step", "32", "--bootstrap", "0", "--out", str(tmp_path), "--json")
    assert code == 0, err[-3000:]
    data = json.loads(out)
    rows = {r["name"]: r for r in data["runs"]}
    assert len(rows) == 6
    for w in (4, 8, 16):  # N is what the bridge's config.json reports: Linear(16, w) + Linear(w, 4)
        assert rows[f"w{w}_s20"]["N"] == 16 * w + w + w * 4 + 4
        assert rows[f"w{w}_s40"]["D"] == 40 * 32
        assert json.loads((tmp_path / f"w{w}_s40" / "run.json").read_text())["values"]["width"] == w
    with open(data["csv"]) as f:
        assert len(list(csv.DictReader(f))) == 6
    assert data["fit"] is not None
    code, out, err = _ntjax("scale", "fit", data["csv"], "--bootstrap", "0", "--no-plot", "--json")
    assert code == 0, err[-2000:]
    assert json.loads(out)["n_points"] == 6
    again = _ntjax("scale", "run", "--command", template, "--widths", "4,8,16", "--step-counts", "20,40",
                   "--tokens-per-step", "32", "--bootstrap", "0", "--out", str(tmp_path), "--json")
    assert again[0] == 0 and "[1/6]" not in again[2]  # finished points are reused, not re-run


def test_scale_run_command_needs_its_placeholders(tmp_path):
    code, _, err = _ntjax("scale", "run", "--command", "python train.py --lr 1", "--widths", "4,8,16",
                          "--tokens-per-step", "32", "--out", str(tmp_path))
    assert code == 2 and "{width}" in err
