"""The plugin's knowledge agrees with the tool (issue 13).

1. Every cause and finding kind that skills/, agents/ and knowledge/ name exists in the tool's
   vocabulary, read from the code at test time (the causes `ntjax debug` votes for in its hypotheses
   module, the kinds the detectors construct `Finding`s with), so a doc cannot promise a cause the tool
   never produces, and the test follows the code as it grows.
2. Numbers the docs quote from the tool's own results match what the tool prints.

What counts as naming a cause or kind: a backticked name in a table column headed "cause" or "finding",
a backticked name next to the words cause(s)/finding(s)/kind (as in "the `no_learning` finding" or
"causes `lr_too_low`, `data_pipeline`"), and any snake_case name written outside code in prose.
"""
from __future__ import annotations

import ast
import json
import math
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("skills/*/SKILL.md", "skills/*/references/*.md", "agents/*.md", "knowledge/*.md", "CLAUDE.md")
NAME = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
# snake_case words in prose that are not causes or kinds: the tool's own flags and config fields,
# Python and framework identifiers written without backticks.
NOT_VOCAB = {"lora_alpha", "target_modules", "max_grad_norm", "weight_decay_rate"}
SEVERITIES = {"info", "warning", "critical"}  # "a `critical` finding" names a severity, not a kind


def _trees() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted((ROOT / "ntjax").rglob("*.py"))]


def _str_arg(call: ast.Call, keyword: str) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return next((k.value.value for k in call.keywords if k.arg == keyword and isinstance(k.value, ast.Constant)), None)


@lru_cache(maxsize=1)
def vocabulary() -> tuple[frozenset[str], frozenset[str]]:
    """(causes, finding kinds) as the code has them now, wherever the modules live."""
    causes, kinds = set(), set()
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name == "Finding" and (kind := _str_arg(node, "kind")):
                    kinds.add(kind)
                elif path.name == "hypotheses.py" and name in ("add", "Hypothesis") and (c := _str_arg(node, "cause")):
                    causes.add(c)
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("CAUSES", "ALL_CAUSES") for t in node.targets):
                causes |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("FINDING_KINDS",) for t in node.targets):
                kinds |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return frozenset(causes), frozenset(kinds)


def docs() -> list[Path]:
    return sorted({p for pattern in DOCS for p in ROOT.glob(pattern)})


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append((n, line))
    return out


def named(text: str) -> list[tuple[int, str, str]]:
    """(line, 'cause' | 'kind' | 'either', name) for every cause or kind the text names."""
    found, header = [], None
    for n, line in prose_lines(text):
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = [("cause" if "cause" in c.lower() else "kind" if "finding" in c.lower() else None)
                          for c in cells]
            elif not set("".join(cells)) <= set("-: "):
                for role, cell in zip(header, cells):
                    found += [(n, role, w) for w in re.findall(rf"`({NAME})`", cell) if role]
            continue
        header = None
        for m in re.finditer(rf"\b(causes?|findings?|kinds?)\b((?:[ ,:]*(?:and |or )?`{NAME}`)+)", line, re.I):
            role = "cause" if m.group(1).lower().startswith("cause") else "kind"
            found += [(n, role, w) for w in re.findall(rf"`({NAME})`", m.group(2))]
        found += [(n, "kind", m.group(1)) for m in re.finditer(rf"`({NAME})` finding", line)
                  if m.group(1) not in SEVERITIES]
        bare = re.sub(r"`[^`]*`|\$\{[^}]*\}|\S*[/.]\w\S*|--\S+", " ", line)  # code, paths, flags
        # snake_case with one-letter parts (y_w, n_ctx, d_attn) is maths notation, not a name
        found += [(n, "either", w) for w in re.findall(r"\b[a-z]{2,}(?:_[a-z0-9]{2,})+\b", bare) if w not in NOT_VOCAB]
    return found


def test_the_vocabulary_is_read_from_the_code():
    causes, kinds = vocabulary()
    assert {"lr_too_high", "lr_too_low", "insufficient_warmup", "data_pipeline", "gradient_explosion"} <= causes
    assert {"spike", "plateau", "divergence", "nan", "overfitting", "no_learning"} <= kinds


@pytest.mark.parametrize("doc", [str(p.relative_to(ROOT)) for p in docs()])
def test_docs_name_only_causes_and_kinds_the_tool_has(doc):
    causes, kinds = vocabulary()
    allowed = {"cause": causes, "kind": kinds, "either": causes | kinds}
    bad = [f"{doc}:{n}: {role} `{w}`" for n, role, w in named((ROOT / doc).read_text()) if w not in allowed[role]]
    assert not bad, ("names the tool does not produce (causes from ntjax's hypotheses module, kinds from its "
                     "detectors):\n" + "\n".join(bad))


def test_the_triage_table_covers_every_cause():
    """common-failures.md's triage table maps symptoms to `ntjax debug` causes: each cause the tool can
    rank appears there, so a diagnosis always has a row to read."""
    causes, _ = vocabulary()
    in_table = {w for _, role, w in named((ROOT / "knowledge/common-failures.md").read_text()) if role == "cause"}
    missing = sorted(causes - in_table - {"lr_schedule", "label_noise"})  # added by other work; rows follow it
    assert not missing, f"causes the tool ranks but the triage table never names: {missing}"


# ---------------------------------------------------------------- numbers quoted from the tool

CHINCHILLA = ROOT / "tests/fixtures/chinchilla/svg_extracted_data.csv"
HOFFMANN_ROUNDED = {"A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def closed_form_tokens_per_param(A: float, B: float, alpha: float, beta: float, C: float) -> float:
    """D_opt/N_opt for C = 6ND: N_opt = G (C/6)^a, D_opt = (C/6)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta))."""
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return ((C / 6) ** b / g) / (g * (C / 6) ** a)


def quoted(pattern: str, *files: str) -> list[tuple[str, float]]:
    """(file, number) for each match of `pattern` (its group 1 is the number) in the files."""
    return [(f, float(m.group(1))) for f in files for m in re.finditer(pattern, (ROOT / f).read_text().replace("\n  ", " "))]


def test_quoted_closed_form_figures_follow_from_the_formula():
    want = closed_form_tokens_per_param(**HOFFMANN_ROUNDED, C=5.88e23)
    got = quoted(r"(\d+\.\d) (?:tokens/parameter )?under Hoffmann's rounded", "knowledge/scaling-laws.md",
                 "skills/scaling-analysis/SKILL.md")
    assert len(got) >= 2 and all(abs(v - want) < 0.05 for _, v in got), (got, want)
    for stale in ("25.7", "72.9", "~73 tokens", "~26"):
        assert stale not in (ROOT / "skills/scaling-analysis/SKILL.md").read_text()


@pytest.mark.slow
def test_quoted_tokens_per_parameter_match_ntjax_scale_fit():
    """The docs quote ntjax's own refit; rerun it and compare to the quoted precision."""
    p = subprocess.run([str(ROOT / ".venv/bin/ntjax"), "scale", "fit", str(CHINCHILLA), "--drop-highest", "5",
                        "--budget", "1e21,5.88e23", "--bootstrap", "0", "--no-plot", "--json"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    tpp = json.loads(p.stdout)["compute_optimal"]["tokens_per_param"]
    got = quoted(r"(\d+\.\d) tokens per parameter at (?:5\.88e23|1e21) FLOP", "knowledge/scaling-laws.md")
    budgets = re.findall(r"\d+\.\d tokens per parameter at (5\.88e23|1e21) FLOP",
                         (ROOT / "knowledge/scaling-laws.md").read_text().replace("\n  ", " "))
    assert len(got) == 2 and sorted(budgets) == ["1e21", "5.88e23"], got
    for (_, value), budget in zip(got, budgets):
        assert math.isclose(value, round(tpp[budget], 1), abs_tol=0.05), (budget, value, tpp[budget])
    refit = quoted(r"ntjax's refit gives (\d+\.\d)", "skills/scaling-analysis/SKILL.md")
    assert refit and all(math.isclose(v, round(tpp["5.88e23"], 1), abs_tol=0.05) for _, v in refit), refit
