"""Whose code may run: a spec path found in a run folder's `config.json` is someone else's code until the
user names it. The CLI turns the policy on; library callers (and sweep workers, whose spec came from their
own coordinator's command line) are trusted as before.

A spec is imported only when the user named that same file on the command line (`--spec PATH`) or passed
`--trust-run-code`; otherwise opening a shared or downloaded run folder refuses with one line.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ntjax.errors import NtjaxError

_policy: dict = {"strict": False, "named": set(), "trust_all": False}


def _key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def configure(named: Iterable[str | Path | None] = (), trust_all: bool = False) -> None:
    """Turn checking on (the CLI does, per command): only the `named` spec files, or all with `trust_all`."""
    _policy.update(strict=True, named={_key(p) for p in named if p}, trust_all=trust_all)


def reset() -> None:
    """Back to the library default: every spec is the caller's own."""
    _policy.update(strict=False, named=set(), trust_all=False)


def check_spec(path: str | Path) -> None:
    """Raise NtjaxError unless importing the spec at `path` was allowed by the user."""
    if not _policy["strict"] or _policy["trust_all"] or _key(path) in _policy["named"]:
        return
    raise NtjaxError(f"this run's config.json names the spec {path}: importing it would run that file's code. "
                     f"If you trust it, pass --spec {path} (or --trust-run-code)")
