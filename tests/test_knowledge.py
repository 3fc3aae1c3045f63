"""The plugin's knowledge docs: present, substantial, sourced, runnable as written, and every number that
has a reference (the Chinchilla/Epoch/Kaplan/Muennighoff facts in the fixture PROVENANCE.md, or plain
arithmetic and IEEE formats) matches it."""
from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"
PROVENANCE = ROOT / "tests" / "fixtures" / "chinchilla" / "PROVENANCE.md"
DOCS = ("scaling-laws.md", "optimizer-guide.md", "transformer-training.md", "common-failures.md",
        "fine-tuning-techniques.md")
MIN_LINES, MIN_REFERENCES = 250, 8
PLACEHOLDERS = ("RUN_DIR", "LOG_FILE", "CSV")  # what the command-running test substitutes
LAUNCHER = "${CLAUDE_PLUGIN_ROOT}/scripts/ntjax"  # how plugin docs call the CLI (test_skill_commands.py)

# The binding command surface the docs may use: subcommand -> (flags, number of positional arguments).
ALLOWED: dict[str, tuple[frozenset[str], int]] = {
    "train": (frozenset({"--preset", "--out", "--steps", "--lr", "--batch-size", "--warmup", "--schedule",
                         "--eval-every", "--ckpt-every", "--log", "--seed", "--yes", "--json"}), 0),
    "curves": (frozenset({"--json", "--no-plot", "--baseline"}), 1),
    "debug": (frozenset({"--json", "--symptom"}), 1),
    "sweep": (frozenset({"--param", "--strategy", "--max-runs", "--steps", "--out", "--json"}), 0),
    "lr-find": (frozenset({"--preset", "--json"}), 0),
    "scale": (frozenset({"--json"}), 2),  # `scale fit CSV`
    "plan": (frozenset({"--params", "--tokens", "--runs", "--json"}), 0),
    "eval": (frozenset({"--json"}), 1),
    "monitor": (frozenset({"--once"}), 1),
}
BOOLEAN_FLAGS = {"--yes", "--json", "--no-plot", "--once"}
MAX_TRAIN_STEPS, MAX_SWEEP_RUNS = 60, 3


def read(doc: str) -> str:
    return (KNOWLEDGE / doc).read_text(encoding="utf-8")


def fenced_blocks(text: str, language: str) -> list[str]:
    """Bodies of the ```language fenced blocks, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def split_references(text: str) -> tuple[str, str]:
    """(body, references): the doc split at its `## References` heading."""
    body, sep, refs = text.partition("\n## References\n")
    assert sep, "no '## References' section"
    return body, refs


def strip_code(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)


def commands(doc: str) -> list[list[list[str]]]:
    """Each bash block of a doc as its list of argv lists."""
    return [[shlex.split(line) for line in block.splitlines() if line.strip()]
            for block in fenced_blocks(read(doc), "bash")]


def options(argv: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Split an ntjax argv (after the subcommand) into {flag: [values]} and positionals."""
    flags: dict[str, list[str]] = {}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            value = None if tok in BOOLEAN_FLAGS else argv[i + 1]
            flags.setdefault(tok, []).append(value)
            i += 1 if value is None else 2
        else:
            positionals.append(tok)
            i += 1
    return flags, positionals


def unit(number: str) -> float:
    """Half a unit in the last printed digit: the rounding a quoted number implies."""
    mantissa, _, exponent = number.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals) * 10.0 ** int(exponent or 0)


def agrees(quoted: str, reference: float) -> bool:
    """A quoted number matches a reference value if it is that value rounded to the quoted precision."""
    return abs(float(quoted) - reference) <= unit(quoted) * (1 + 1e-9)


def flat(text: str) -> str:
    """Prose with every run of whitespace (line breaks included) as one space, for phrase patterns."""
    return re.sub(r"\s+", " ", text)


def find(pattern: str, text: str, what: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{what}: pattern {pattern!r} not found"
    return match.group(1)


# ---------------------------------------------------------------- structure

@pytest.mark.parametrize("doc", DOCS)
def test_doc_is_substantial_and_organised(doc):
    text = read(doc)
    assert len(text.splitlines()) >= MIN_LINES
    assert len(re.findall(r"^## ", text, flags=re.M)) >= 6
    assert re.search(r"^\|.*\|\n\|[-| ]+\|$", text, flags=re.M), "no decision table"
    assert "Traps where common belief is wrong" in text


@pytest.mark.parametrize("doc", DOCS)
def test_doc_ends_with_a_references_section(doc):
    body, refs = split_references(read(doc))
    assert "\n## " not in refs, "References must be the last section"
    entries = [line for line in refs.splitlines() if line.startswith("- ")]
    assert len(entries) >= MIN_REFERENCES
    for entry in entries:
        assert re.search(r"\((?:19|20)\d\d\)", entry), f"no year: {entry}"
        assert re.search(r"arXiv:\d{4}\.\d{4,5}|ICLR|NeurIPS|ICML|JMLR|TMLR|ACL|CVPR|PNAS|blog|Blog|"
                         r"course|report|Psychology|KDD|WACV|EACL|NAACL|EMNLP|AAAI|SC 20", entry), entry


CITATION = re.compile(r"\b([A-Z][A-Za-zäöüéÄÖÜ'-]+)(?: et al\.| & [A-Z][A-Za-zäöüé'-]+)? ((?:19|20)\d\d)\b")
NOT_AUTHORS = {"In", "Since", "By", "From", "Until", "Before", "After", "Of", "And", "The", "Llama", "GPT"}


@pytest.mark.parametrize("doc", DOCS)
def test_every_cited_paper_is_listed_in_references(doc):
    body, refs = split_references(read(doc))
    entries = [line for line in refs.splitlines() if line.startswith("- ")]
    cited = {(m.group(1), m.group(2)) for m in CITATION.finditer(strip_code(body))
             if m.group(1) not in NOT_AUTHORS}
    assert len(cited) >= 8, cited
    missing = [(name, year) for name, year in sorted(cited)
               if not any(name in entry.partition(f"({year})")[0] and f"({year})" in entry for entry in entries)]
    assert not missing, f"cited in the body but not in References: {missing}"


# ---------------------------------------------------------------- runnable commands

@pytest.mark.parametrize("doc", DOCS)
def test_bash_blocks_use_only_the_binding_ntjax_commands(doc):
    blocks = commands(doc)
    assert blocks, "no ```bash block with an ntjax command"
    for block in blocks:
        created: set[str] = set()
        for argv in block:
            assert argv[0] == LAUNCHER and argv[1] in ALLOWED, argv
            allowed, n_positional = ALLOWED[argv[1]]
            rest = argv[3:] if argv[1] == "scale" else argv[2:]
            if argv[1] == "scale":
                assert argv[2] == "fit", argv
            flags, positionals = options(rest)
            assert set(flags) <= allowed, f"flags outside the binding list: {set(flags) - allowed}"
            assert len(positionals) == n_positional - (argv[1] == "scale"), argv
            paths = positionals + flags.get("--baseline", [])
            for path in paths:
                assert path in PLACEHOLDERS or path in created, f"{path} is neither a placeholder nor made here"
            if argv[1] in ("train", "sweep"):
                assert int(flags["--steps"][0]) <= MAX_TRAIN_STEPS, argv
                created.add(flags["--out"][0])
            if argv[1] == "train":
                assert "--yes" in flags and flags.get("--preset", ["tiny"]) == ["tiny"], argv
            if argv[1] == "sweep":
                assert int(flags["--max-runs"][0]) <= MAX_SWEEP_RUNS
                assert flags["--strategy"][0] in {"grid", "random", "bayes"}
                for spec in flags["--param"]:
                    lo, hi = re.fullmatch(r"\w+=log:([\d.e-]+):([\d.e-]+)", spec).groups()
                    assert 0 < float(lo) < float(hi)


def test_docs_use_the_placeholders_the_runner_substitutes():
    used = " ".join(" ".join(fenced_blocks(read(doc), "bash")) for doc in DOCS)
    for placeholder in PLACEHOLDERS:
        assert re.search(rf"\b{placeholder}\b", used), placeholder


# ---------------------------------------------------------------- numbers against the reference data

def provenance() -> str:
    return PROVENANCE.read_text(encoding="utf-8")


def fit_rows(text: str) -> dict[str, dict[str, str]]:
    """The `| fit | E | A | B | alpha | beta |` table of scaling-laws.md, keyed by first author."""
    table = find(r"(\| fit \| E \| A \| B \| alpha \| beta \|\n(?:\|[^\n]*\|\n)+)", text, "fit table")
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].split()[0]] = dict(zip(("E", "A", "B", "alpha", "beta"), cells[1:]))
    return rows


def test_chinchilla_and_replication_fits_match_provenance():
    rows, prov = fit_rows(read("scaling-laws.md")), provenance()
    published = dict(re.findall(r"(E|A|B|alpha|beta) = ([\d.]+)",
                                find(r"Approach 3, as published.*?\*\*(.*?)\*\*", flat(prov), "Hoffmann fit")))
    assert len(published) == 5
    epoch = {name: float(v) for name, v in re.findall(r"^\| (E|A|B|alpha|beta) \| ([\d.]+) \|", prov, flags=re.M)}
    assert len(epoch) == 5
    for name in ("E", "A", "B", "alpha", "beta"):
        assert rows["Hoffmann"][name] == published[name], name
        assert agrees(rows["Besiroglu"][name], epoch[name]), (name, rows["Besiroglu"][name], epoch[name])


# (what, pattern in the doc, pattern in PROVENANCE.md); each captures one number.
PROVENANCE_CLAIMS = [
    ("Kaplan N exponent", r"N ∝ C\^(0\.\d+) and D", r"N_opt ∝ C\^(0\.\d+)"),
    ("Kaplan D exponent", r"D ∝ C\^(0\.\d+) \(batch", r"D ∝ C\^(0\.\d+)\."),
    ("Kaplan B exponent", r"B ∝ C\^(0\.\d+)", r"B ∝ C_min\^(0\.\d+)"),
    ("Kaplan alpha_N", r"alpha_N ≈ (0\.\d+)", r"alpha_N ≈ (0\.\d+)"),
    ("Kaplan N_c", r"N_c ≈ ([\d.]+e\d+)", r"N_c ≈ ([\d.]+e\d+)"),
    ("Kaplan alpha_D", r"alpha_D ≈ (0\.\d+)", r"alpha_D ≈ (0\.\d+)"),
    ("Kaplan D_c", r"D_c ≈ ([\d.]+e\d+)", r"D_c ≈ ([\d.]+e\d+)"),
    ("Kaplan alpha_C^min", r"alpha_C\^min ≈ (0\.\d+)", r"alpha_C\^min ≈ (0\.\d+)"),
    ("Kaplan C_c^min", r"C_c\^min ≈ ([\d.]+e\d+)", r"C_c\^min ≈ ([\d.]+e\d+)"),
    ("Kaplan B*", r"B\* ≈ ([\d.]+e\d+)", r"B\* ≈ ([\d.]+e\d+)"),
    ("Kaplan alpha_B", r"alpha_B ≈ (0\.\d+)", r"alpha_B ≈ (0\.\d+)"),
    ("Hoffmann a, approach 1", r"\| 1 \| .*? \| (0\.\d+) \|", r"a \(N exponent\) = (0\.\d+)"),
    ("Hoffmann a, approach 2", r"\| 2 \| .*? \| (0\.\d+) \|", r"a \(N exponent\) = 0\.\d+ / (0\.\d+)"),
    ("Hoffmann a, approach 3", r"\| 3 \| .*? \| (0\.\d+) \|", r"a \(N exponent\) = 0\.\d+ / 0\.\d+ / (0\.\d+)"),
    ("Hoffmann a from the rounded fit", r"a = 0\.28/0\.62 = (0\.\d+)", r"beta/\(alpha\+beta\) = 0\.28/0\.62 = (0\.\d+)"),
    ("Chinchilla budget", r"C = 6 × 70e9 × 1\.4e12 = ([\d.]+e\d+)", r"6 = ([\d.]+e\d+) FLOP"),
    ("Epoch a", r"refit gives a = (0\.\d+)", r"Epoch: a = (0\.\d+)"),
    ("Epoch a s.d.", r"a = 0\.\d+ \(bootstrap s\.d\. (0\.\d+)\)", r"a = 0\.\d+ \(bootstrap s\.d\. (0\.\d+)\)"),
    # Tokens per parameter: the docs now quote what `ntjax scale fit` prints, checked live by
    # tests/test_knowledge_consistency.py (issue 13), instead of the replication's own figures.
    ("s.e. A", r"A (\d+\.\d+), B \d", r"^\| A \| [\d.]+ \| ([\d.]+) \|"),
    ("s.e. B", r"B (\d+\.\d+), E 0", r"^\| B \| [\d.]+ \| ([\d.]+) \|"),
    ("s.e. E", r"E (0\.\d+), alpha", r"^\| E \| [\d.]+ \| ([\d.]+) \|"),
    ("s.e. alpha", r"alpha (0\.\d+), beta", r"^\| alpha \| [\d.]+ \| ([\d.]+) \|"),
    ("s.e. beta", r"beta (0\.\d+)\. B is", r"^\| beta \| [\d.]+ \| ([\d.]+) \|"),
    ("B interval low", r"spans (\d+) to \d+\)", r"^\| B \|.*\| ([\d.]+) … [\d.]+ \|"),
    ("B interval high", r"spans \d+ to (\d+)\)", r"^\| B \|.*\| [\d.]+ … ([\d.]+) \|"),
    ("chi squared", r"freedom = ([\d.]+),", r"= ([\d.]+), p = 1\.7e-49"),
    ("chi squared p", r"p = ([\d.]+e-\d+)\)", r"238\.4, p = ([\d.]+e-\d+)"),
    ("Huber objective, Hoffmann", r"published \(rounded\) values is (0\.\d+)", r"rounded values is (0\.\d+)"),
    ("Huber objective, refit", r"is 0\.\d+ versus\s+(0\.\d+) at the refit", r"Huber objective (0\.\d+)"),
    ("RMSE, Hoffmann", r"log-residuals is (0\.\d+) versus", r"log-residuals (0\.\d+) vs"),
    ("RMSE, refit", r"log-residuals is 0\.\d+ versus (0\.\d+)", r"log-residuals 0\.\d+ vs (0\.\d+)"),
    ("Muennighoff R_D*", r"R_D\* ≈ ([\d.]+)", r"R_D\* = ([\d.]+)"),
    ("Muennighoff R_N*", r"R_N\* ≈ ([\d.]+)", r"R_N\* = ([\d.]+)"),
    ("Muennighoff exponents", r"alpha = beta ≈ (0\.\d+)", r"alpha = beta = (0\.\d+)"),
    ("Epoch points kept", r"refit on (\d+) points", r"→ (\d+) points"),
    ("Epoch points recovered", r"recovered the (\d+) \(N, C, loss\)", r"bytes, (\d+) data rows"),
]


@pytest.mark.parametrize("what,doc_pattern,ref_pattern", PROVENANCE_CLAIMS, ids=[c[0] for c in PROVENANCE_CLAIMS])
def test_scaling_numbers_match_provenance(what, doc_pattern, ref_pattern):
    quoted = find(doc_pattern, flat(read("scaling-laws.md")), what)
    reference = float(re.search(ref_pattern, provenance(), flags=re.M).group(1))
    assert agrees(quoted, reference), f"{what}: doc says {quoted}, reference {reference}"


def compute_optimal_tokens_per_param(E: float, A: float, B: float, alpha: float, beta: float, C: float) -> float:
    """D_opt/N_opt at compute C for L = E + A/N^alpha + B/D^beta with C = 6ND (Hoffmann et al. 2022, eq. 4)."""
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return ((C / 6) ** b / G) / (G * (C / 6) ** a)


def test_rounding_sensitivity_claims_follow_from_the_fits():
    text, prov = read("scaling-laws.md"), provenance()
    hoffmann = {k: float(v) for k, v in fit_rows(text)["Hoffmann"].items()}
    rounded = compute_optimal_tokens_per_param(C=5.88e23, **hoffmann)
    paper_text = find(r"unrounded values recovered from the paper's text:(.*?)Epoch \(", flat(prov), "unrounded fit")
    logs = dict(re.findall(r"log (A|B|E) = ([\d.]+)", paper_text))
    exps = dict(re.findall(r"(alpha|beta) = (0\.\d+)", paper_text))
    unrounded = compute_optimal_tokens_per_param(
        math.exp(float(logs["E"])), math.exp(float(logs["A"])), math.exp(float(logs["B"])),
        float(exps["alpha"]), float(exps["beta"]), 5.88e23)
    assert agrees(find(r"gives about (\d+) tokens per parameter", flat(text), "rounded"), rounded)
    assert agrees(find(r"and about (\d+) with the unrounded", flat(text), "unrounded"), unrounded)
    epoch = {k: float(v) for k, v in fit_rows(text)["Besiroglu"].items()}
    assert agrees(find(r"refit gives a = (0\.\d+)", text, "a"), epoch["beta"] / (epoch["alpha"] + epoch["beta"]))


# (doc, what, pattern capturing a number, the value it must be)
BF16, FP16 = ml_dtypes.finfo(ml_dtypes.bfloat16), np.finfo(np.float16)
ARITHMETIC_CLAIMS = [
    ("scaling-laws.md", "C for 124M at 20 tok/param", r"here ([\d.]+e\d+) FLOPs", 6 * 124e6 * 20 * 124e6),
    ("scaling-laws.md", "C for 1B at 20 tok/param", r"20B tokens and ([\d.]+e\d+) FLOPs", 6 * 1e9 * 20e9),
    ("scaling-laws.md", "saturation of effective data", r"about (\d+) times the unique data", 1 + 15.387756),
    ("optimizer-guide.md", "Adam memory horizon at 0.999", r"\(([\d,]+) steps at 0\.999", 1 / (1 - 0.999)),
    ("optimizer-guide.md", "Adam memory horizon at 0.95", r"steps at 0\.999, (\d+) at 0\.95", 1 / (1 - 0.95)),
    ("optimizer-guide.md", "untuned warmup at 0.95", r"2/\(1 − beta2\) steps: (\d+) at 0\.95", 2 / (1 - 0.95)),
    ("optimizer-guide.md", "untuned warmup at 0.999", r"40 at 0\.95, ([\d,]+) at 0\.999", 2 / (1 - 0.999)),
    ("optimizer-guide.md", "fp16 smallest subnormal", r"smallest subnormal \(about ([\d.]+e-\d+)\)",
     float(FP16.smallest_subnormal)),
    ("optimizer-guide.md", "decay per step", r"lr·wd \(([\d.]+e-\d+) per step", 3e-4 * 0.1),
    ("optimizer-guide.md", "Adam state for 1B", r"A 1B model needs\s+(\d+) GB", 16 * 1e9 / 1e9),
    ("transformer-training.md", "fp16 max", r"\| fp16 \| 5 / 10 \| (\d+) \|", float(FP16.max)),
    ("transformer-training.md", "fp16 spacing at 1", r"\| 65504 \| ([\d.]+e-\d+) \|", float(FP16.eps)),
    ("transformer-training.md", "bf16 spacing at 1", r"\| bf16 \| 8 / 7 \| about [\d.e]+ \| ([\d.]+e-\d+) \|",
     float(BF16.eps)),
    ("transformer-training.md", "bf16 mantissa bits", r"\| bf16 \| 8 / (\d+) \|", float(BF16.nmant)),
    ("transformer-training.md", "fp32 spacing at 1", r"\| fp32 \| 8 / 23 \| about [\d.e]+ \| ([\d.]+e-\d+) \|",
     float(np.finfo(np.float32).eps)),
    ("transformer-training.md", "ln(256)", r"\((\d\.\d+) for 256 bytes", math.log(256)),
    ("transformer-training.md", "ln(50257)", r"(\d+\.\d+)\s+for GPT-2's 50,257", math.log(50257)),
    ("common-failures.md", "ln(256)", r"(\d\.\d+) for 256 byte values", math.log(256)),
    ("common-failures.md", "ln(50257)", r"(\d+\.\d+) for GPT-2's 50,257", math.log(50257)),
    ("common-failures.md", "ln(10)", r"ln\(10\) = (\d\.\d+)", math.log(10)),
    ("common-failures.md", "fp16 max", r"largest fp16 value is (\d+)", float(FP16.max)),
    ("common-failures.md", "exp overflow fp16", r"x above about (\d+\.\d+) \(ln 65504\)", math.log(float(FP16.max))),
    ("common-failures.md", "exp overflow fp32", r"in fp32 above about (\d+\.\d+)", math.log(float(np.finfo(np.float32).max))),
    ("common-failures.md", "fp16 smallest subnormal", r"smallest fp16 subnormal is about (\d+e-\d+)",
     float(FP16.smallest_subnormal)),
    ("fine-tuning-techniques.md", "scale bits", r"cost 32/64 = (0\.\d+) bits", 32 / 64),
    ("fine-tuning-techniques.md", "double-quantised bits", r"32/\(64·256\) ≈ (0\.\d+) bits", 8 / 64 + 32 / (64 * 256)),
    ("fine-tuning-techniques.md", "bits saved", r"saving about (0\.\d+) bits", 0.5 - (8 / 64 + 32 / (64 * 256))),
    ("fine-tuning-techniques.md", "GB saved at 65B", r"\(about (\d+) GB for a 65B", 65e9 * (0.5 - 8 / 64 - 32 / 16384) / 8 / 1e9),
    ("fine-tuning-techniques.md", "full FT memory 7B", r"\((\d+) GB for a 7B", 16 * 7e9 / 1e9),
    ("fine-tuning-techniques.md", "7B weights bf16", r"weights only: (\d+) GB in bf16", 2 * 7e9 / 1e9),
    ("fine-tuning-techniques.md", "7B weights 4-bit", r"about ([\d.]+) GB in 4-bit", 0.5 * 7e9 / 1e9),
    ("fine-tuning-techniques.md", "7B quantisation constants", r"plus about ([\d.]+) GB of\s+quantisation",
     7e9 * (8 / 64 + 32 / 16384) / 8 / 1e9),
]


@pytest.mark.parametrize("doc,what,pattern,value", ARITHMETIC_CLAIMS, ids=[f"{c[0]}:{c[1]}" for c in ARITHMETIC_CLAIMS])
def test_derived_numbers_are_right(doc, what, pattern, value):
    quoted = find(pattern, flat(read(doc)), what).replace(",", "")
    assert agrees(quoted, value), f"{doc}: {what} quoted {quoted}, computed {value}"
