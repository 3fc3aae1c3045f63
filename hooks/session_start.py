#!/usr/bin/env python3
"""SessionStart hook: hand the plugin's always-on rules (CLAUDE.md) to Claude, and start the first-use
install of ntjax in the background.

Claude Code never reads a plugin's CLAUDE.md, but the `additionalContext` a SessionStart hook prints
reaches the model. `${CLAUDE_PLUGIN_ROOT}` in the rules is replaced by the plugin's absolute path,
since hook context, unlike a skill body, is not expanded by the client.

The install (scripts/install-ntjax, about 2 minutes) outlasts the Bash tool's 2-minute default, so a
fresh install starts it here, detached, and the launcher waits on it. Set NTJAX_NO_AUTO_INSTALL=1 to
leave it to the first command.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def session_context(plugin_root: Path, note: str = "") -> dict:
    """The hook's JSON answer: the rules text, with the plugin root filled in, plus an install note."""
    rules = (plugin_root / "CLAUDE.md").read_text(encoding="utf-8")
    rules = rules.replace("${CLAUDE_PLUGIN_ROOT}", str(plugin_root))
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": rules + note}}


def start_install(plugin_root: Path) -> str:
    """Start the venv install when ntjax is neither installed nor on PATH; a line for Claude, or ''."""
    installer = plugin_root / "scripts" / "install-ntjax"
    env = {**os.environ, "CLAUDE_PLUGIN_ROOT": str(plugin_root)}
    status = subprocess.run([str(installer), "--status"], capture_output=True, text=True, env=env, timeout=5)
    state = status.stdout.strip()
    if state == "ready" or (state == "absent" and shutil.which("ntjax")):
        return ""
    if state == "absent" and not os.environ.get("NTJAX_NO_AUTO_INSTALL"):
        # The installer detaches its worker; ours returns at once and holds no pipe of the client's.
        subprocess.run([str(installer), "--background"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env, timeout=5, start_new_session=True)
        state = "installing"
    if state == "installing":
        return ("\n\nFirst use: ntjax is being installed in the background (about 2 minutes). Its launcher "
                "waits up to 100 s, printing `ntjax: installing` lines; if a command exits with code 75 "
                "(\"still installing\"), run the same command again.\n")
    if state == "failed":
        return "\n\nThe ntjax install failed; the next ntjax command prints its log and retries.\n"
    return ""


def main() -> None:
    root = Path(os.environ.get("CLAUDE_PLUGIN_ROOT") or Path(__file__).resolve().parent.parent)
    try:
        note = start_install(root)
    except (OSError, subprocess.SubprocessError):
        note = ""  # the rules matter more than the head start; the launcher installs on first use anyway
    json.dump(session_context(root, note), sys.stdout)


if __name__ == "__main__":
    main()
