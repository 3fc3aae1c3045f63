"""A full disk mid-run ends with one line saying what and where (exit 2, no traceback wall), and the same
command resumes cleanly once space is freed. Uses a size-capped tmpfs (needs root and mount rights)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.robust_helpers import env, ntjax

CMD = ["train", "--preset", "tiny", "--yes", "--no-progress", "--steps", "40", "--ckpt-every", "10",
       "--eval-every", "10", "--probe-every", "10"]


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-capped tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=56m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a size-capped tmpfs here: {p.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder, name="filler") -> None:
    """Take every free byte of the file system (unbuffered: nothing left to flush at close)."""
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def _train_steps(path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text(errors="replace").splitlines()
            if line.startswith("{") and '"train/loss"' in line and line.endswith("}")]


def test_disk_full_mid_run_one_line_then_clean_resume(small_fs):
    out = small_fs / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ntjax.cli", *CMD, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=env())
    log = out / "metrics.jsonl"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(_train_steps(log)) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    _fill(small_fs)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "no space left" in errors[0] and str(small_fs) in errors[0], err[-3000:]
    assert len(err.splitlines()) < 60, err  # the summary table and a warning or two, not a wall of traceback
    os.unlink(small_fs / "filler")
    p = ntjax(*CMD, "--out", str(out), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _train_steps(log) == list(range(1, 41))


def test_closed_loop_callback_noise_is_dropped_and_nothing_else(monkeypatch, capsys):
    """What orbax leaves after a failed save: a completion callback calling into its closed event loop,
    reported as unraisable with only asyncio's frames. That (and only that) is not printed."""
    import asyncio
    import gc
    import weakref

    from ntjax.core.faults import quiet_closed_loop_callbacks

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    quiet_closed_loop_callbacks()
    loop = asyncio.new_event_loop()
    loop.close()

    class Handle:
        pass

    def fire(callback) -> None:
        h = Handle()
        ref = weakref.ref(h, callback)  # noqa: F841 (the callback runs when `h` dies)
        del h
        gc.collect()

    fire(loop.call_soon_threadsafe)  # RuntimeError('Event loop is closed') from asyncio alone
    assert "Event loop is closed" not in capsys.readouterr().err

    def ours(_):
        raise RuntimeError("Event loop is closed")  # same text, but raised by our code: shown

    fire(ours)
    fire(lambda _: 1 / 0)
    err = capsys.readouterr().err
    assert "Event loop is closed" in err and "ZeroDivisionError" in err
