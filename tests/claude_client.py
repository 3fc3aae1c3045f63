"""Finding and running the real Claude Code client for the plugin tests.

The client is pinned in `tests/claude-cli/package-lock.json` and installed by `make claude-cli` (CI
does); it is not under the repository root because the client runs `npm ci` on a package.json at a
plugin's root when installing it. Tests that need it skip, with this reason, when it is absent.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = (ROOT / "tests/claude-cli/node_modules/.bin/claude", ROOT / "node_modules/.bin/claude")
MISSING = "the Claude Code client is not installed: run `make claude-cli` (CI does)"


def claude_bin() -> Path | None:
    """$CLAUDE_BIN, else the pinned client in the checkout, else None."""
    if os.environ.get("CLAUDE_BIN"):
        return Path(os.environ["CLAUDE_BIN"])
    return next((p for p in CANDIDATES if p.exists()), None)


def client_env(home: Path) -> dict[str, str]:
    """A quiet, offline environment with a scratch HOME, so tests never touch the user's settings."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR")}
    return {**keep, "HOME": str(home), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"}


def run_claude(args: list[str], home: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `claude ARGS` with a scratch HOME; output in .stdout (stderr folded in)."""
    return subprocess.run([str(claude_bin()), *args], cwd=cwd, env=client_env(home), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          timeout=300)
