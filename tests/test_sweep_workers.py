"""`ntjax sweep` end to end over real tiny training runs: two worker processes on one SQLite study with
pruning, a worker killed mid-trial, and an LR search that lands near the best LR of a fine grid."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from ntjax.core.config import preset, to_dict
from ntjax.readers import read_run
from ntjax.sweep import study as study_lib


def _sweep(*args, timeout=900):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "sweep", *args, "--json"], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_and_prune_bad_trials(tmp_path):
    # The study is created here so the trial order is known: two good LRs first, then three far too small.
    base = to_dict(preset("tiny"))
    base.update(steps=30, eval_every=10, ckpt_every=30, log=["jsonl"])
    recipe = study_lib.Recipe(params=("lr=log:1e-6:1e-2",), strategy="random", base=base, prune_startup=2)
    storage = study_lib.open_storage(study_lib.default_storage(tmp_path))
    study, _ = study_lib.open_study(recipe, storage, tmp_path.name)
    for lr in (3e-3, 2e-3, 1e-6, 1.5e-6, 2e-6):
        study.enqueue_trial({"lr": lr})

    data = _sweep("--out", str(tmp_path), "--workers", "2", "--max-runs", "5")

    trials = {t["number"]: t for t in data["trials"]}
    assert len(trials) == 5
    assert {trials[0]["state"], trials[1]["state"]} == {"COMPLETE"}
    pruned = [t for t in trials.values() if t["state"] == "PRUNED"]
    assert pruned and all(t["params"]["lr"] <= 2e-6 for t in pruned)
    assert data["best"]["params"]["lr"] in (3e-3, 2e-3)
    logs = [(tmp_path / f"worker_{i}.log").read_text() for i in range(2)]
    assert all("trial" in log for log in logs)  # both processes ran trials
    for t in trials.values():  # every trial is a normal run folder
        table = read_run(t["run_dir"])
        assert table.get("eval/loss") is not None and table.get("train/loss") is not None
    assert any(p.endswith("progress.png") for p in data["plots"])


@pytest.mark.slow
def test_killed_worker_leaves_its_trial_failed_and_the_restarted_sweep_continues(tmp_path):
    args = ["--preset", "tiny", "--steps", "40", "--eval-every", "10", "--param", "lr=log:1e-3:1e-2",
            "--strategy", "random", "--max-runs", "2", "--out", str(tmp_path), "--heartbeat", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "ntjax.cli", "sweep", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = tmp_path / "trial_0000" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline, "the first trial never started"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # mid-trial: no chance to tell the study anything
    proc.wait()

    data = _sweep(*args)

    trials = {t["number"]: t for t in data["trials"]}
    assert trials[0]["state"] == "FAIL" and "worker lost" in trials[0]["reason"]
    assert data["lost_trials"] == [0]
    complete = [t for t in trials.values() if t["state"] == "COMPLETE"]
    assert len(complete) == 2 and len(trials) == 3
    assert trials[1]["params"] == trials[0]["params"]  # the lost configuration was retried
    assert metrics.exists()  # the lost run's folder is kept
    again = _sweep(*args)  # nothing left to do: nothing is re-run
    assert len(again["trials"]) == 3


@pytest.mark.slow
def test_lr_search_lands_within_3x_of_a_fine_grid(tmp_path):
    # tiny at 20 steps: the eval loss vs LR bottoms out (flat) around 2e-2 to 5e-2 and diverges above.
    common = ["--preset", "tiny", "--steps", "20", "--eval-every", "10", "--workers", "2", "--pruner", "none",
              "--param", "lr=log:1e-3:1e-1"]
    grid = _sweep(*common, "--strategy", "grid", "--grid-points", "7", "--out", str(tmp_path / "grid"))
    bayes = _sweep(*common, "--strategy", "bayes", "--max-runs", "6", "--out", str(tmp_path / "bayes"))
    assert len(grid["trials"]) == 7 and len(bayes["trials"]) == 6
    g, b = grid["best"], bayes["best"]
    ratio = b["params"]["lr"] / g["params"]["lr"]
    # Within 3x of the grid's best LR, or (on the flat bottom) as good as it.
    assert 1 / 3 <= ratio <= 3 or b["value"] <= g["value"] + 0.02, (g, b)
    assert math.isfinite(b["value"]) and b["value"] <= g["value"] + 0.1


@pytest.mark.slow
def test_sensitivity_mode_reports_the_metric(tmp_path):
    data = _sweep("--preset", "tiny", "--steps", "10", "--eval-every", "10", "--sensitivity", "--grid-points", "2",
                  "--param", "lr=log:1e-3:1e-2", "--out", str(tmp_path))
    s = data["sensitivity"]
    assert len(data["trials"]) == 2 and s["lrs"] == [1e-3, 1e-2]
    assert s["init_loss"] == pytest.approx(math.log(256), abs=0.1)  # a fresh byte model guesses uniformly
    losses = [min(v, s["init_loss"]) for v in s["losses"]]
    assert s["best_loss"] == min(losses) and s["value"] == pytest.approx(sum(losses) / 2 - min(losses))
    assert any(p.endswith("sensitivity.png") for p in data["plots"])
