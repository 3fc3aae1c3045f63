"""Where else a run can be watched: TensorBoard on its event files (launched here, on a loopback port) and
the W&B run page (when the run was logged online; an offline run has no URL until `wandb sync`)."""
from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError

URL_IN_LOG = re.compile(r"https?://\S+/runs/[A-Za-z0-9_-]+")


def event_dirs(path: str | Path) -> list[Path]:
    """Folders under `path` holding TensorBoard event files."""
    p = Path(path)
    files = [p] if p.is_file() else p.rglob("*tfevents*")
    return sorted({f.parent for f in files if "tfevents" in f.name})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tensorboard_command(logdir: str | Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that serves `logdir` (TensorBoard reads every event file below it)."""
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host, "--port", str(port)]


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def launch_tensorboard(path: str | Path, port: int | None = None, host: str = "127.0.0.1",
                       timeout: float = 60.0) -> dict[str, Any]:
    """Start TensorBoard in the background on `path`'s event files; returns url, pid, command and log file.
    It keeps running after ntjax exits: stop it with `kill PID`."""
    if importlib.util.find_spec("tensorboard") is None:
        raise NtjaxError("TensorBoard is not installed: pip install 'ntjax[tensorboard]' (or tensorboard==2.21.0)")
    dirs = event_dirs(path)
    if not dirs:
        raise NtjaxError(f"no TensorBoard event files under {path}; train with `ntjax train --log tensorboard` "
                         "to write them")
    logdir = Path(path) if Path(path).is_dir() else dirs[0]
    port = port or free_port(host)
    cmd = tensorboard_command(logdir, port, host)
    log = Path(tempfile.mkdtemp(prefix="ntjax-tensorboard-")) / "tensorboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise NtjaxError(f"TensorBoard exited with status {proc.returncode}: {tail[0]}")
        if _answers(host, port):
            return {"url": f"http://{host}:{port}/", "pid": proc.pid, "command": cmd, "logdir": str(logdir),
                    "log": str(log)}
        time.sleep(0.3)
    proc.terminate()
    raise NtjaxError(f"TensorBoard did not answer on {host}:{port} within {timeout:.0f} s (log: {log})")


def wandb_runs(path: str | Path) -> list[Path]:
    """W&B run folders (`run-*` online, `offline-run-*` offline) at or under `path`, newest last."""
    p = Path(path)
    if p.name.startswith(("run-", "offline-run-")):
        return [p]
    found = [d for d in p.rglob("*") if d.is_dir() and d.name.startswith(("run-", "offline-run-"))
             and d.parent.name == "wandb"]
    return sorted(found, key=lambda d: d.stat().st_mtime)


def wandb_link(path: str | Path) -> dict[str, Any]:
    """The newest W&B run under `path`: its URL when logged online, or a clear offline notice."""
    runs = wandb_runs(path)
    if not runs:
        raise NtjaxError(f"no W&B run under {path} (looked for wandb/run-* and wandb/offline-run-*); train with "
                         "`ntjax train --log wandb`")
    run = runs[-1]
    if run.name.startswith("offline-run-"):
        return {"run_dir": str(run), "mode": "offline", "url": None,
                "message": f"W&B run {run.name} was logged offline: nothing was uploaded, so it has no URL yet. "
                           f"`wandb sync {run}` uploads it and prints its URL."}
    for log in [run / "logs" / "debug.log", run / "logs" / "debug-internal.log", run.parent / "debug.log"]:
        if log.exists():
            m = URL_IN_LOG.search(log.read_text(errors="replace"))
            if m:
                return {"run_dir": str(run), "mode": "online", "url": m.group(0), "message": m.group(0)}
    return {"run_dir": str(run), "mode": "online", "url": None,
            "message": f"W&B run {run.name} was logged online but its URL is not in its logs; "
                       "find it with `wandb status` or on the project page"}

