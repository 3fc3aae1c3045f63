"""Creating files where someone else may have planted a link: a per-user private folder for output nobody
named, and writes that never follow a symlink (a temp file created exclusively, then renamed over the name:
a rename replaces a link, it does not write through it)."""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    home = Path.home()
    if home.is_dir() and os.access(home, os.W_OK):
        return home / ".cache"
    return Path(tempfile.gettempdir()) / f"ntjax-{os.getuid()}"


def private_dir(*parts: str) -> Path:
    """`<cache>/ntjax/<parts>`: created 0700, and refused unless it is a real folder owned by this user with
    no access for others ($XDG_CACHE_HOME, else ~/.cache, else a per-user folder in the temp dir)."""
    root = _cache_root()
    folder = root.joinpath("ntjax", *parts)
    for d in [root / "ntjax", *[root.joinpath("ntjax", *parts[:i + 1]) for i in range(len(parts))]]:
        try:
            os.makedirs(d.parent, exist_ok=True)
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise NtjaxError(f"cannot create the private folder {d}: {e.strerror or e}") from None
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise NtjaxError(f"{d} is not a folder of yours (a link or another user's): refusing to write there")
        if st.st_mode & 0o077:
            os.chmod(d, 0o700)
    return folder


def write_atomic(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Create `path` by calling `write(file)` on a fresh temp file beside it, then renaming it into place:
    a symlink planted at `path` is replaced, never followed, and no reader sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_figure(fig: Any, path: str | Path, **kw: Any) -> Path:
    """`fig.savefig` without following a link at `path` (the format comes from the name, as savefig does)."""
    fmt = kw.pop("format", None) or (Path(path).suffix.lstrip(".") or "png")
    return write_atomic(path, lambda f: fig.savefig(f, format=fmt, **kw))
