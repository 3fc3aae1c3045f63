"""Checkpoints under faults: a corrupt latest checkpoint is skipped (named, with why) by resume, eval and
lr-find, which use the newest good one; Ctrl-C saves a checkpoint and says so; re-running a finished run
reports it and leaves its report.md alone."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.robust_helpers import TINY, env, ntjax, train_tiny


def _train_steps(out) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if '"train/loss"' in line]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train_tiny(out)
    return out


def _corrupt(step_dir) -> None:
    """Overwrite every array file of the checkpoint's state with junk (what a bad disk or a bad copy leaves)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.name != "commit_success.txt"]
    assert files
    for p in files:
        p.write_bytes(b"\x13junk" * 7)


def test_finished_run_is_reported_not_overwritten(done):
    report = (done / "report.md").read_bytes()
    p = ntjax(*TINY, "--out", str(done), "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "already finished" in p.stderr
    d = json.loads(p.stdout)
    assert d["final_step"] == 6 and d["final_train_loss"] == pytest.approx(
        json.loads([ln for ln in (done / "metrics.jsonl").read_text().splitlines() if '"train/loss"' in ln][-1])[
            "train/loss"])
    assert [s for s, _ in d["eval_history"]] == [3, 6]
    assert (done / "report.md").read_bytes() == report
    assert (done / "report.md").stat().st_mtime >= (done / "metrics.jsonl").stat().st_mtime  # still "finished"
    assert _train_steps(done) == list(range(1, 7))


def test_corrupt_latest_checkpoint_falls_back(done, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(done, run)
    _corrupt(run / "checkpoints" / "6")
    p = ntjax("eval", str(run), "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout)["step"] == 3
    assert "checkpoint 6" in p.stderr and "skipped" in p.stderr and "Traceback" not in p.stderr
    p = ntjax("lr-find", "--run", str(run), "--steps", "10", "--out", str(tmp_path / "lrf"), "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "at step 3" in json.loads(p.stdout)["source"] and "checkpoint 6" in p.stderr
    p = ntjax(*TINY, "--out", str(run), "--steps", "8")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "checkpoint 6" in p.stderr and "unreadable" in p.stderr
    assert _train_steps(run) == list(range(1, 9))  # resumed from 3: steps 4..8 once each


def test_ctrl_c_saves_a_checkpoint_and_says_so(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ntjax.cli", "train", "--preset", "tiny", "--yes", "--no-progress", "--steps", "400",
           "--ckpt-every", "200", "--eval-every", "200", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=env())
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(_train_steps(out)) >= 8:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=200)
    assert proc.returncode == 130, err[-3000:]
    assert "saved a checkpoint at step" in err and "Traceback" not in err, err[-3000:]
    saved = int(err.split("saved a checkpoint at step ")[1].split(";")[0])
    assert (out / "checkpoints" / str(saved)).is_dir()
    assert _train_steps(out) == list(range(1, saved + 1))
    p = ntjax("train", "--preset", "tiny", "--yes", "--no-progress", "--steps", str(saved + 3), "--warmup", "1",
              "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert _train_steps(out) == list(range(1, saved + 4))  # resumed at the saved step: every step once
