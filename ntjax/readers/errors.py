"""The one error a reader raises: the input cannot be read at all (missing, empty, binary, unknown)."""
from __future__ import annotations

import os

from ntjax.errors import NtjaxError


class ReadError(NtjaxError):
    """Unreadable input. The message is one line naming the file and why."""


def fail(path: str | os.PathLike, why: str) -> ReadError:
    """A ReadError for `path` with a one-line reason."""
    return ReadError(f"cannot read {os.fspath(path)}: {' '.join(why.split())}")
