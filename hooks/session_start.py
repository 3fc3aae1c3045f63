#!/usr/bin/env python3
"""SessionStart hook: hand the plugin's always-on rules (CLAUDE.md) to Claude as additional context.

Claude Code never reads a plugin's CLAUDE.md, but the `additionalContext` a SessionStart hook prints
reaches the model. `${CLAUDE_PLUGIN_ROOT}` in the rules is replaced by the plugin's absolute path,
since hook context, unlike a skill body, is not expanded by the client.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def session_context(plugin_root: Path) -> dict:
    """The hook's JSON answer: the rules text, with the plugin root filled in."""
    rules = (plugin_root / "CLAUDE.md").read_text(encoding="utf-8")
    rules = rules.replace("${CLAUDE_PLUGIN_ROOT}", str(plugin_root))
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": rules}}


def main() -> None:
    root = Path(os.environ.get("CLAUDE_PLUGIN_ROOT") or Path(__file__).resolve().parent.parent)
    json.dump(session_context(root), sys.stdout)


if __name__ == "__main__":
    main()
