"""The Claude Code plugin: its files follow the contract, and the real client validates, installs and
inventories it (issue 8, "Done when")."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from claude_client import MISSING, ROOT, claude_bin, run_claude

SKILLS = {"train", "train-debug", "experiment-plan", "scaling-analysis", "hyperparam-sweep",
          "interpret-curves", "monitor", "eval"}
AGENT_TRIGGERS = {
    "diagnostician": ["plateau", "NaN", "gradient explosion", "not converging"],
    "scaling-advisor": ["scaling", "compute-optimal", "Chinchilla", "how big"],
    "optimization-guru": ["learning rate", "AdamW", "warmup", "schedule", "batch size"],
    "fine-tuning-advisor": ["LoRA", "QLoRA", "DPO", "RLHF", "PEFT", "forgetting"],
}
# Read and run, and hand work to skills; no Write/Edit: agents advise, skills act. Client 2.1.197 has no
# Grep or Glob tool (an agent asking for them silently gets fewer tools).
AGENT_TOOLS = {"Bash", "Read", "Skill"}
# `claude plugin validate` warnings we accept, each unavoidable (see the README's plugin section).
KNOWN_WARNINGS = ("root: CLAUDE.md at the plugin root is not loaded as project context",)
NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "node_modules", "runs", "__pycache__", ".pytest_cache",
                                     ".hypothesis", "wandb", "*.egg-info")
needs_client = pytest.mark.skipif(claude_bin() is None, reason=MISSING)


def frontmatter(path: Path) -> dict:
    m = re.match(r"---\n(.*?)\n---\n", path.read_text(), re.S)
    assert m, f"{path} has no frontmatter"
    return yaml.safe_load(m.group(1))


def test_manifest_and_marketplace():
    manifest = json.loads((ROOT / ".claude-plugin/plugin.json").read_text())
    assert manifest["name"] == "neural-trainer"
    assert manifest["version"] and manifest["description"] and manifest["author"]["name"]
    market = json.loads((ROOT / ".claude-plugin/marketplace.json").read_text())
    assert [(p["name"], p["source"]) for p in market["plugins"]] == [("neural-trainer", "./")]
    assert not (ROOT / "package.json").exists(), "the client would `npm ci` a root package.json on install"


def test_skills_have_the_contract_names_and_descriptions():
    assert {p.parent.name for p in (ROOT / "skills").glob("*/SKILL.md")} == SKILLS
    assert not list((ROOT / "skills").glob("*.md")), "flat skills/*.md files are silently ignored by the client"
    for name in SKILLS:
        fm = frontmatter(ROOT / "skills" / name / "SKILL.md")
        assert fm["name"] == name
        assert len(fm["description"]) <= 1536, f"{name}: the listing truncates descriptions at 1,536 chars"
        assert "Use when" in fm["description"] and '"' in fm["description"], f"{name}: no trigger phrases"


def test_agents_have_triggers_examples_and_narrow_tools():
    assert {p.stem for p in (ROOT / "agents").glob("*.md")} == set(AGENT_TRIGGERS)
    for name, triggers in AGENT_TRIGGERS.items():
        fm = frontmatter(ROOT / "agents" / f"{name}.md")
        assert fm["name"] == name
        desc = fm["description"]
        assert desc.startswith("Use this agent when"), name
        assert desc.count("<example>") >= 2 and desc.count("</example>") == desc.count("<example>"), name
        missing = [t for t in triggers if t.lower() not in desc.lower()]
        assert not missing, f"{name}: description lacks triggers {missing}"
        tools = {t.strip() for t in fm["tools"].split(",")}
        assert tools == AGENT_TOOLS, f"{name}: tools {tools} are not {AGENT_TOOLS}"


def test_session_start_hook_hands_claude_md_to_claude():
    hooks = json.loads((ROOT / "hooks/hooks.json").read_text())["hooks"]["SessionStart"]
    assert [h["matcher"] for h in hooks] == ["startup|resume|clear|compact"]
    command = hooks[0]["hooks"][0]["command"]
    p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True,
                       env={**os.environ, "CLAUDE_PLUGIN_ROOT": str(ROOT)})
    out = json.loads(p.stdout)["hookSpecificOutput"]
    rules = (ROOT / "CLAUDE.md").read_text()
    assert out["hookEventName"] == "SessionStart"
    assert out["additionalContext"] == rules.replace("${CLAUDE_PLUGIN_ROOT}", str(ROOT))
    assert len(rules.split()) < 400, "CLAUDE.md is sent every session: keep it short"


def test_launcher_prefers_the_plugin_venv():
    p = subprocess.run([str(ROOT / "scripts/ntjax"), "--help"], capture_output=True, text=True,
                       env={**os.environ, "CLAUDE_PLUGIN_ROOT": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0 and p.stdout.startswith("usage: ntjax"), p.stderr


def test_launcher_falls_back_to_ntjax_on_path(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/ntjax").symlink_to(ROOT / ".venv/bin/ntjax")
    p = subprocess.run([str(ROOT / "scripts/ntjax"), "--help"], capture_output=True, text=True,
                       env={**os.environ, "CLAUDE_PLUGIN_ROOT": str(tmp_path / "plugin"),
                            "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert p.returncode == 0 and p.stdout.startswith("usage: ntjax"), p.stderr


def test_launcher_creates_the_venv_once(tmp_path):
    """No venv and no ntjax on PATH: the launcher runs `make install` once, then uses the venv.
    The plugin root here is a scratch copy whose `install` target makes a stand-in ntjax (the real
    target takes minutes); the launcher, make and the shell are the real ones."""
    root = tmp_path / "plugin"
    (root / "scripts").mkdir(parents=True)
    for script in ("ntjax", "install-ntjax"):
        shutil.copy(ROOT / "scripts" / script, root / "scripts" / script)
    (root / "Makefile").write_text("install:\n\tmkdir -p .venv/bin && printf '#!/bin/sh\\necho venv-ntjax \"$$@\"\\n'"
                                   " > .venv/bin/ntjax && chmod +x .venv/bin/ntjax && echo built >> installs\n")
    env = {**os.environ, "CLAUDE_PLUGIN_ROOT": str(root), "PATH": f"{root / 'scripts'}:/usr/bin:/bin"}
    for _ in range(2):
        p = subprocess.run([str(root / "scripts/ntjax"), "curves", "x"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and p.stdout == "venv-ntjax curves x\n", p.stderr
    assert (root / "installs").read_text() == "built\n"


def validate(target: str, tmp_path: Path, strict: bool = False) -> tuple[int, str, list[str]]:
    p = run_claude(["plugin", "validate", *(["--strict"] if strict else []), target], home=tmp_path)
    warnings = [line.strip()[1:].strip() for line in p.stdout.splitlines() if line.strip().startswith("❯")]
    return p.returncode, p.stdout, warnings


@needs_client
@pytest.mark.parametrize("target", [".", ".claude-plugin/plugin.json"])
def test_client_validates_the_plugin(target, tmp_path):
    rc, out, warnings = validate(target, tmp_path)
    assert rc == 0 and "✘" not in out, out
    unknown = [w for w in warnings if not w.startswith(KNOWN_WARNINGS)]
    assert not unknown, f"new validate warnings: {unknown}\n{out}"


@needs_client
def test_client_validates_the_marketplace_strictly(tmp_path):
    rc, out, _ = validate(".", tmp_path, strict=True)
    assert rc == 0, out


@needs_client
def test_marketplace_install_lists_every_skill_and_agent(tmp_path):
    """What a user does: add the repository as a marketplace, install, inspect. The repository is
    copied without the build outputs a clone would not have (.venv, node_modules...)."""
    repo, home = tmp_path / "neural-trainer", tmp_path / "home"
    shutil.copytree(ROOT, repo, ignore=NOT_SHIPPED, symlinks=True)
    home.mkdir()
    for args in (["plugin", "marketplace", "add", str(repo)], ["plugin", "install", "neural-trainer@neural-trainer"]):
        p = run_claude(args, home=home)
        assert p.returncode == 0, p.stdout
    p = run_claude(["plugin", "details", "neural-trainer@neural-trainer"], home=home)
    assert p.returncode == 0, p.stdout
    listed = {m.group(1): {s.strip() for s in m.group(2).split(",")}
              for m in re.finditer(r"^\s*(Skills|Agents) \(\d+\)\s+(.*)$", p.stdout, re.M)}
    assert listed == {"Skills": SKILLS, "Agents": set(AGENT_TRIGGERS)}, p.stdout
    assert re.search(r"Hooks \(1\)\s+SessionStart", p.stdout), p.stdout
    installed = json.loads(run_claude(["plugin", "list", "--json"], home=home).stdout)
    assert not (Path(installed[0]["installPath"]) / "node_modules").exists(), "install ran npm in the plugin"
