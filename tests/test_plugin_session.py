"""The plugin inside a real Claude Code session: the real client, the plugin loaded from this checkout,
and a scripted fake model on loopback (tests/ccstub, see its PROVENANCE.md).

Checks what no validator sees: the SessionStart hook's rules reach the model, the `interpret-curves`
skill loads with `${CLAUDE_PLUGIN_ROOT}` expanded, and its first command, run by the client's Bash tool
through the plugin's launcher, works on a real log and its output comes back to the model.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from claude_client import MISSING, ROOT, claude_bin

FIXTURE_LOG = ROOT / "tests/fixtures/logs/hf_trainer_state/tinyLlama-finetune_trainer_state.json"
FIRST_COMMAND = '"${CLAUDE_PLUGIN_ROOT}/scripts/ntjax" curves LOG_PATH --json --no-plot'
RULES_HEADING = "# neural-trainer: always-on rules"

pytestmark = pytest.mark.skipif(claude_bin() is None, reason=MISSING)


def scenario(log: Path) -> dict:
    """User asks about a log; the model calls the skill, runs its first command on the log, answers."""
    expanded = FIRST_COMMAND.replace("${CLAUDE_PLUGIN_ROOT}", str(ROOT))
    return {
        "prompt": f"Is my training healthy? The log is {log}",
        "expect_skills_listed": ["interpret-curves"],
        "turns": [
            {"skill": "interpret-curves", "args": str(log),
             "expect": {"is_error": False, "contains": [expanded], "not_contains": ["${CLAUDE_PLUGIN_ROOT}"]}},
            {"bash_from_last_result": {"match": "scripts/ntjax\" curves LOG_PATH", "replace": {"LOG_PATH": str(log)}},
             "description": "Read and plot the training log", "expect": {"is_error": False}},
            {"text": "The run looks as the findings say."},
        ],
    }


def test_skill_runs_its_first_command_in_a_real_session(tmp_path):
    if subprocess.run([str(ROOT / ".venv/bin/ntjax"), "curves", "--help"], capture_output=True).returncode:
        pytest.xfail("`ntjax curves` is not registered yet")
    log = tmp_path / "log" / FIXTURE_LOG.name  # a copy: `curves` writes its PNG next to the log
    log.parent.mkdir()
    shutil.copy(FIXTURE_LOG, log)
    (tmp_path / "scenario.json").write_text(json.dumps(scenario(log)))
    scratch = tmp_path / "scratch"
    p = subprocess.run([sys.executable, str(ROOT / "tests/ccstub/run_scenario.py"), str(tmp_path / "scenario.json"),
                        "--claude", str(claude_bin()), "--plugin-dir", str(ROOT), "--no-copy-plugin",
                        "--scratch", str(scratch), "--full", "--timeout", "300"],
                       capture_output=True, text=True, timeout=400)
    report = json.loads(p.stdout)
    assert report["ok"], json.dumps([report["checks"], report["warnings"], report["client"]["stderr_tail"]], indent=1)
    assert "neural-trainer:interpret-curves" in report["plugin_skills_listed"]

    # The hook's rules reach the model, with the launcher's absolute path filled in.
    requests = [f.read_text() for f in sorted((scratch / "requests").iterdir())]
    main = next(json.loads(r) for r in requests if '"tools"' in r)
    sent = json.dumps(main)
    assert "SessionStart hook additional context" in sent and RULES_HEADING in sent
    assert json.dumps(f'"{ROOT}/scripts/ntjax"')[1:-1] in sent

    # The command's output is what the model gets back: the same analysis as running it here.
    bash = next(r for r in report["tool_results"] if r["tool"] == "Bash")
    direct = subprocess.run([str(ROOT / "scripts/ntjax"), "curves", str(log), "--json", "--no-plot"],
                            capture_output=True, text=True, check=True)
    got, want = json.loads(bash["content_full"]), json.loads(direct.stdout)
    assert got["format"] == want["format"] and got["verdict"] == want["verdict"]
    assert set(got["metrics"]) == set(want["metrics"]) and got["findings"] == want["findings"]
