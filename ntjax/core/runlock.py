"""One writer per run folder: an OS lock (`flock`) on a lock file inside the folder.

The kernel drops a `flock` when its holder dies (kill -9 included), so a stale lock never blocks a restart:
the next writer simply takes it. The file's content (pid, host, start time, command) is only there to tell a
refused second writer who holds the folder.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from ntjax.core.runfolder import LOCK_FILE
from ntjax.errors import NtjaxError


def holder(folder: str | Path) -> dict | None:
    """Who wrote the lock file last (the holder, while the lock is held), or None if unreadable."""
    try:
        doc = json.loads((Path(folder) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _describe(doc: dict | None) -> str:
    if not doc:
        return "another process"
    started = time.strftime("%H:%M:%S", time.localtime(doc.get("time", 0)))
    return f"pid {doc.get('pid')} on {doc.get('host')} (since {started})"


class RunLock:
    """Hold the run folder's lock for the life of a `with` block (or until `release`).

    A second writer gets an `NtjaxError` naming the holder; the lock of a dead process is taken over.
    """

    def __init__(self, folder: str | Path, what: str = "training"):
        self.folder, self.what = Path(folder), what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        # O_NOFOLLOW: a planted symlink must not make us truncate someone else's file.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NtjaxError(f"{self.folder} is in use: {_describe(holder(self.folder))} is {self.what} into it; "
                             "wait for it to finish or choose another folder") from None
        except OSError:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "time": round(time.time(), 3),
                "command": " ".join(sys.argv[:1] + sys.argv[1:8])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)  # no holder any more: a reader must not name a finished process
            except OSError:
                pass
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
