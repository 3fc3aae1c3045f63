"""`ntjax sweep --command`: a sweep over a user's own PyTorch script (real subprocesses, one SQLite study):
pruning stops a trial's process, a killed sweep's trial is retried, a command that fails at once is
reported before any budget is spent."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ntjax.sweep import study as study_lib

SCRIPT = Path(__file__).parent / "userscripts" / "torch_train.py"
COMMAND = f"{sys.executable} {SCRIPT} --lr {{lr}} --steps 60 --eval-every 10 --sleep 0.03 --seed {{seed}}"


def _sweep(*args, timeout=900):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "sweep", *args, "--json"], capture_output=True,
                         text=True, timeout=timeout)
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


@pytest.mark.slow
def test_four_trial_command_sweep_prunes_and_recovers_a_killed_worker(tmp_path):
    recipe = study_lib.Recipe(params=("lr=log:1e-4:0.5",), strategy="random", base={"steps": 60},
                              prune_startup=1, command=COMMAND, grace=120.0)
    storage = study_lib.open_storage(study_lib.default_storage(tmp_path), 1)
    study, _ = study_lib.open_study(recipe, storage, tmp_path.name)
    for lr in (0.05, 0.04, 1e-4, 2e-4):  # two good LRs, then two far too small ones
        study.enqueue_trial({"lr": lr})
    args = ["--out", str(tmp_path), "--workers", "2", "--max-runs", "4", "--heartbeat", "1"]

    proc = subprocess.Popen([sys.executable, "-m", "ntjax.cli", "sweep", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = tmp_path / "trial_0000" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline, "the first trial never started"
        time.sleep(0.2)
    child = json.loads((tmp_path / "trial_0000" / "run.json").read_text())["pid"]
    os.kill(proc.pid, signal.SIGKILL)  # mid-trial: no chance to tell the study anything
    proc.wait()
    for _ in range(50):  # the training process dies with its watcher
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)

    code, data, err = _sweep(*args)

    assert code == 0, err[-3000:]
    trials = {t["number"]: t for t in data["trials"]}
    assert data["lost_trials"] == [0]
    assert trials[0]["state"] == "FAIL" and "worker lost" in trials[0]["reason"]
    finished = [t for t in trials.values() if t["number"] != 0]
    assert len(finished) == 4  # the budget: four trials besides the lost one
    pruned = [t for t in finished if t["state"] == "PRUNED"]
    complete = [t for t in finished if t["state"] == "COMPLETE"]
    assert pruned and all(t["params"]["lr"] <= 2e-4 for t in pruned)
    assert {t["params"]["lr"] for t in complete} >= {0.05, 0.04}  # the lost configuration was retried
    assert data["best"]["params"]["lr"] in (0.05, 0.04)
    for t in pruned:  # pruning stopped the process while it ran
        run = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        assert run["stopped"] == "callback" and run["last_step"] < 60
    assert "lr" in json.loads((Path(complete[0]["run_dir"]) / "run.json").read_text())["values"]


def test_a_command_that_fails_at_once_is_reported_without_spending_the_budget(tmp_path):
    code, data, err = _sweep("--command", f"{sys.executable} -c 'raise SystemExit(3)' --lr {{lr}}",
                             "--param", "lr=log:1e-3:1e-1", "--max-runs", "4", "--out", str(tmp_path))
    assert code == 2 and data is None
    assert "failed at its first trial" in err and "No budget was used" in err
    storage = study_lib.open_storage(study_lib.default_storage(tmp_path))
    study, _ = study_lib.open_study(None, storage, tmp_path.name)
    trials = study.get_trials()
    assert len(trials) == 1 and trials[0].user_attrs["failed_at_start"]
    assert study_lib.Budget(4).used(trials) == 0


def test_unknown_placeholder_is_refused(tmp_path):
    code, data, err = _sweep("--command", "python train.py --lr {lr} --wd {wd}", "--param", "lr=log:1e-3:1e-1",
                             "--out", str(tmp_path))
    assert code == 2 and "{wd}" in err and "neither a --param" in err
