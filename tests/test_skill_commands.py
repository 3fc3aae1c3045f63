"""Every shell command the plugin tells Claude to run works as written (issue 8, "Done when").

The convention for SKILL.md files, their references, agents and knowledge docs:
- Only fenced ```bash blocks are commands: each non-empty, non-comment line is one command (a line
  ending in a backslash continues on the next). Use ```text or ```python for anything else.
- Commands call the CLI through the plugin's launcher, `"${CLAUDE_PLUGIN_ROOT}/scripts/ntjax"`, so they
  work on a user's machine where `ntjax` is not on PATH.
- UPPERCASE placeholders stand for the user's paths; this test substitutes them:
  RUN_DIR and BASELINE_DIR: copies of a finished tiny ntjax run made once per session;
  LOG_PATH (alias LOG_FILE): a real Hugging Face trainer_state.json; SCRIPT: a plain PyTorch script;
  USER_SCRIPT: a PyTorch script with argparse flags (--lr, --steps, --width) that logs through the bridge;
  RUNS_CSV (alias CSV): the Chinchilla points; any other name ending in _DIR, _PNG or _MD (NEW_RUN_DIR,
  SWEEP_DIR, SNAPSHOT_PNG, PLAN_MD...): a new folder or file, the same one for every command of the doc.
- A doc's commands run in order in one scratch folder, so a later command may read what an earlier
  one wrote (`--out runs/x`, then `curves runs/x`).
- Budget flags are capped so that the suite stays fast (`BUDGET_CAPS`: `--preset` becomes `tiny`,
  `--steps` at most 10...; a training command without a preset gets `--preset tiny`). Nothing else in
  a command is changed: a made-up flag fails here.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NTJAX = ROOT / ".venv" / "bin" / "ntjax"
FIXTURES = ROOT / "tests" / "fixtures"
DOCS = ("skills/*/SKILL.md", "skills/*/references/*.md", "agents/*.md", "knowledge/*.md")
LAUNCHER = '"${CLAUDE_PLUGIN_ROOT}/scripts/ntjax"'

# Placeholders naming a file that exists; the new-path ones are made per command under tmp_path.
LOG = FIXTURES / "logs/hf_trainer_state/tinyLlama-finetune_trainer_state.json"
CHINCHILLA = FIXTURES / "chinchilla/svg_extracted_data.csv"
EXISTING = {
    "LOG_PATH": LOG, "LOG_FILE": LOG,
    "SCRIPT": FIXTURES / "plugin/torch_train.py",
    "USER_SCRIPT": ROOT / "tests/userscripts/torch_train.py",  # argparse flags and the bridge monitor
    "RUNS_CSV": CHINCHILLA, "CSV": CHINCHILLA,
}
RUNS = ("RUN_DIR", "BASELINE_DIR")
# Any other UPPERCASE name ending in _DIR, _PNG or _MD is a new path (NEW_RUN_DIR, SNAPSHOT_PNG, PLAN_MD...).
NEW_PATH = re.compile(r"\b[A-Z][A-Z0-9_]*_(?:DIR|PNG|MD)\b")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b[A-Z]{3,}\b")
# flag -> (kind, cap): numbers are lowered to the cap, strings replaced.
BUDGET_CAPS = {"--preset": "tiny", "--steps": 10, "--warmup": 2, "--eval-every": 4, "--ckpt-every": 4,
               "--max-runs": 1, "--max-time": 60, "--workers": 1, "--grid-points": 2}
TRAINING = ("train", "sweep", "lr-find")  # the commands that take --preset
FIXTURE_RUN_STEPS = 8


def extract_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each command line of the ```bash blocks in a markdown text."""
    commands, block, buf, start = [], False, "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("```"):
            block = (not block) and line[3:].strip() == "bash"
            continue
        if not block or (not buf and (not line or line.startswith("#"))):
            continue
        start = start if buf else n
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        commands.append((start, buf + line))
        buf = ""
    return commands


def all_commands() -> list[tuple[str, int, str]]:
    """(doc path relative to the root, line, command) for every doc the plugin ships."""
    docs = sorted({p for pattern in DOCS for p in ROOT.glob(pattern)})
    return [(str(p.relative_to(ROOT)), n, c) for p in docs for n, c in extract_commands(p.read_text())]


def cap_budget(command: str) -> str:
    """The command with its budget flags lowered to `BUDGET_CAPS`."""
    def lower(m: re.Match) -> str:
        flag, value = m.group(1), m.group(2)
        cap = BUDGET_CAPS[flag]
        if isinstance(cap, str):
            return f"{flag} {cap}"
        return f"{flag} {min(float(value), cap):g}" if re.fullmatch(r"[0-9.e+-]+", value) else m.group(0)
    flags = "|".join(re.escape(f) for f in BUDGET_CAPS)
    capped = re.sub(rf"({flags})[ =](\S+)", lower, command)
    # A searched warmup must fit the capped --steps too (a real sweep's 0..200 of 300 steps).
    capped = re.sub(r"warmup=int:\d+:\d+", f"warmup=int:0:{BUDGET_CAPS['--warmup']}", capped)
    if ntjax_subcommand(capped) in TRAINING and not re.search(r"\s--(preset|run|spec|command)\b", capped):
        capped += " --preset tiny"  # the default preset is the bigger model
    return capped


def ntjax_subcommand(command: str) -> str | None:
    m = re.search(r"scripts/ntjax\"?\s+([a-z][a-z_-]*)", command)
    return m.group(1) if m else None


def command_env(cache_dir: Path) -> dict[str, str]:
    """The environment a skill's command sees, plus a shared JAX compilation cache (speed only)."""
    # `python` in a doc's command is the user's Python, the one with their framework: here the venv's.
    path = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "CLAUDE_PLUGIN_ROOT": str(ROOT), "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder all xdist workers of this session share (and only this session)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def fixture_run(shared_dir: Path) -> Path:
    """A finished tiny ntjax run, trained once per session (workers wait on a file lock)."""
    run = shared_dir / "plugin-fixture-run"
    with open(shared_dir / "plugin-fixture-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (run / "report.md").exists():
            shutil.rmtree(run, ignore_errors=True)
            p = subprocess.run([str(NTJAX), "train", "--preset", "tiny", "--steps", str(FIXTURE_RUN_STEPS),
                                "--eval-every", "4", "--ckpt-every", "4", "--out", str(run), "--yes", "--json"],
                               capture_output=True, text=True, env=command_env(shared_dir / "jax-cache"))
            assert p.returncode == 0, f"fixture run failed: {p.stderr[-2000:]}"
    return run


def test_docs_have_commands_and_use_the_launcher():
    commands = all_commands()
    skills_with_commands = {d.split("/")[1] for d, _, _ in commands if d.startswith("skills/")}
    assert len(skills_with_commands) == 8, f"skills without a bash command: {skills_with_commands}"
    off = [f"{d}:{n}: {c}" for d, n, c in commands if not c.startswith(LAUNCHER + " ")]
    assert not off, "commands must start with the plugin launcher " + LAUNCHER + ":\n" + "\n".join(off)


def test_placeholders_are_known():
    unknown = [f"{d}:{n}: {w}" for d, n, c in all_commands() for w in PLACEHOLDER.findall(c.replace(LAUNCHER, ""))
               if w not in EXISTING and w not in RUNS and not NEW_PATH.fullmatch(w)]
    assert not unknown, "unknown placeholders (see this file's docstring, or write real values):\n" + "\n".join(unknown)


def concrete_command(command: str, paths: dict[str, Path]) -> str:
    """The command as this test runs it: budget capped, placeholders filled, a bare `ntjax` run through
    the launcher (`test_docs_have_commands_and_use_the_launcher` reports those separately)."""
    concrete = cap_budget(re.sub(r"^ntjax ", LAUNCHER + " ", command))
    for name, path in paths.items():
        concrete = re.sub(rf"\b{name}\b", str(path), concrete)
    return concrete


def run_one(concrete: str, cwd: Path, env: dict[str, str]) -> str | None:
    """Run one command; None when it worked, else why not."""
    p = subprocess.run(["bash", "-c", concrete], cwd=cwd, capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=600)
    if p.returncode != 0:
        return f"exited {p.returncode}: {p.stderr.strip()[-1500:]}"
    if re.search(r"\s--json\b", concrete):
        try:
            json.loads(p.stdout)
        except json.JSONDecodeError as e:
            return f"--json did not print exactly one JSON object ({e}): {p.stdout[:300]!r}"
    return None


DOCS_WITH_COMMANDS = sorted({d for d, _, _ in all_commands()})


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS_WITH_COMMANDS)
def test_commands_run_as_written(doc, tmp_path, shared_dir, request):
    """A doc's commands run in order in one folder, so a later one may use what an earlier one made."""
    commands = [(n, c) for d, n, c in all_commands() if d == doc]
    new = {w for _, c in commands for w in NEW_PATH.findall(c) if w not in RUNS}
    paths = {name: tmp_path / name.lower() for name in new}
    for name, source in EXISTING.items():  # copies: `curves` writes its PNGs next to a log file
        paths[name] = tmp_path / "inputs" / name.lower() / source.name
        paths[name].parent.mkdir(parents=True)
        shutil.copy(source, paths[name])
    if any(re.search(rf"\b{name}\b", c) for _, c in commands for name in RUNS):
        for name in RUNS:  # copies: some commands write plots or reports into the run folder
            shutil.copytree(request.getfixturevalue("fixture_run"), tmp_path / name.lower())
            paths[name] = tmp_path / name.lower()
    env = command_env(shared_dir / "jax-cache")
    failures = []
    for n, command in commands:
        concrete = concrete_command(command, paths)
        why = run_one(concrete, tmp_path, env)
        if why:
            failures.append(f"{doc}:{n}: `{concrete}` {why}")
    assert not failures, "\n\n".join(failures)
