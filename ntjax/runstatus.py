"""A run folder's lifecycle mark: `status.json` says whether the run is running, finished or crashed.

Written by whatever runs the training (the bridges' monitors and callbacks; `ntjax run` for a command it
launched) and read by `ntjax monitor`, so a run that ended is not shown as "running". A process killed
outright (SIGKILL, power loss) cannot write its end: its mark stays "running", and the monitor's
last-write age is the evidence then.

    {"state": "finished", "time": 1764630000.0, "step": 1200, "pid": 4242, "reason": null}
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
STATES = ("running", "finished", "crashed")


def write_status(run_dir: str | os.PathLike, state: str, *, step: int | None = None,
                 reason: str | None = None) -> Path:
    """Write `run_dir/status.json` atomically (a reader never sees half a file)."""
    if state not in STATES:
        raise ValueError(f"run state must be one of {', '.join(STATES)}, not {state!r}")
    path = Path(run_dir) / STATUS_FILE
    record = {"state": state, "time": round(time.time(), 3), "step": step, "pid": os.getpid(), "reason": reason}
    tmp = path.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run folder's mark, or None when there is none (or it is unreadable)."""
    path = Path(run_dir)
    path = (path if path.is_dir() else path.parent) / STATUS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("state") in STATES else None
