"""Naming the faults of the machine (not of ntjax) in one line: a full disk or an exceeded quota surfaces
from orbax, tensorstore or a plain write as a wall of nested tracebacks; the user needs what and where."""
from __future__ import annotations

import errno
import logging
import re

FULL = (errno.ENOSPC, errno.EDQUOT)
# tensorstore and some wrappers flatten the OSError into a message: recognise it by text too.
FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|RESOURCE_EXHAUSTED: .*space", re.I)
PATH_TEXT = re.compile(r"""(?:file|path|writing|open)[^'"/]*['"]?(/[^'"\s:,]+)""", re.I)


def _chain(e: BaseException):
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack += [x.__cause__, x.__context__, *getattr(x, "exceptions", ())]


def disk_full(e: BaseException, where: object = None) -> str | None:
    """One line if `e` (or anything it was raised from) is a full disk or quota, else None; `where` names
    the folder being written when the error itself does not say."""
    fallback = str(where) if where is not None else "the output folder"
    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in FULL:
            where = x.filename or fallback
            return (f"no space left on the disk writing {where} ({x.strerror}); free some space and re-run the "
                    "same command: it resumes from the last complete checkpoint")
        text = str(x)
        if FULL_TEXT.search(text):
            m = PATH_TEXT.search(text)
            where = m.group(1) if m else fallback
            return (f"no space left on the disk writing {where}; free some space and re-run the same command: "
                    "it resumes from the last complete checkpoint")
    return None


class QuietDiskFull(logging.Filter):
    """Drop orbax's per-thread tracebacks about a full disk (the CLI says it once, in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if record.exc_info and record.exc_info[1] is not None and disk_full(record.exc_info[1]):
            return False
        try:
            return not FULL_TEXT.search(record.getMessage())
        except Exception:  # a record whose message cannot be formatted is not ours to judge
            return True


def quiet_disk_full_logs(logger_name: str = "absl") -> None:
    """Install `QuietDiskFull` on the logger orbax reports through (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, QuietDiskFull) for f in logger.filters):
        logger.addFilter(QuietDiskFull())


def _closed_loop_noise(exc_type: type[BaseException], value: BaseException, tb) -> bool:
    """A bare RuntimeError('Event loop is closed') raised by asyncio's own check, with nothing of ours on
    the stack: a tensorstore completion callback reaching orbax's event loop after it shut down."""
    if exc_type is not RuntimeError or str(value) != "Event loop is closed":
        return False
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.replace("\\", "/").endswith("asyncio/base_events.py"):
            return False
        tb = tb.tb_next
    return True


def quiet_closed_loop_callbacks() -> None:
    """When a save fails (a full disk), tensorstore's C++ threads still complete their futures after
    orbax has closed its event loop; the callback's RuntimeError is reported as "unraisable" (a bare
    traceback under the CLI's one line). Drop exactly that; everything else goes to the hook that was
    there."""
    import sys

    previous = sys.unraisablehook
    if getattr(previous, "_ntjax_quiet", False):
        return

    def hook(unraisable) -> None:
        if not _closed_loop_noise(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback):
            previous(unraisable)

    hook._ntjax_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
