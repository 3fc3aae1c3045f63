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
