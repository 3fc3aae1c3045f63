"""One writer per run folder: a second `ntjax train` on the same --out is refused with one line naming the
holder; a dead holder's lock is taken over (flock dies with its process)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ntjax.core.runfolder import LOCK_FILE
from ntjax.core.runlock import RunLock, holder
from ntjax.errors import NtjaxError
from tests.robust_helpers import TINY, env, ntjax, one_line_error

HOLD = ("import sys, time; from ntjax.core.runlock import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(600)")


def _holder_process(folder) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env())
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_refused_then_dead_holders_lock_taken_over(tmp_path):
    out = tmp_path / "run"
    proc = _holder_process(out)
    try:
        info = holder(out)
        assert info["pid"] == proc.pid and info["host"]
        p = ntjax(*TINY, "--out", str(out))
        line = one_line_error(p)
        assert "in use" in line and f"pid {proc.pid}" in line
        assert not (out / "metrics.jsonl").exists() and not (out / "checkpoints").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The holder died without cleaning up: its lock file still names it, but the lock is free.
    assert holder(out)["pid"] == proc.pid
    p = ntjax(*TINY, "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if '"train/loss"' in line]
    assert steps == list(range(1, 7))
    assert (out / LOCK_FILE).read_text() == ""  # released: no holder named any more


def test_lock_in_process_refuses_second_and_releases(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(NtjaxError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    first.release()
    with RunLock(tmp_path):
        assert holder(tmp_path)["pid"] == os.getpid()


def test_lock_file_symlink_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).symlink_to(victim)
    with pytest.raises(OSError):
        RunLock(run).acquire()
    assert victim.read_text() == "precious"


def test_two_trainers_started_together_one_wins(tmp_path):
    out = tmp_path / "race"
    cmd = [sys.executable, "-m", "ntjax.cli", *TINY, "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, env=env()) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use" in loser and "Traceback" not in loser
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if '"train/loss"' in line]
    assert steps == list(range(1, 7))
