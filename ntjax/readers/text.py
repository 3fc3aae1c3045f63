"""Text logs: nanoGPT (`iter 100: loss 2.3, time 23.4ms`), llm.c (`step 1/5000 | train loss 3.2 | norm
1.1 | lr 6e-4 | 120 ms | 4500 tok/s`, `val loss 3.3`, `s:100 trl:3.2`), modded-nanogpt
(`step:100/5100 val_loss:3.28 train_time:1234ms`), `step 100 | loss 3.2 | lr ...`, console captures
(W&B `output.log`), and any `key value` / `key: value` / `key=value` lines.

One tokenizer covers them all: `key:value` / `key=value` pairs, words that name the next number
(`train loss 3.2`: a split word like train/val joins the name), numbers with units, and separators
(`| , ; ( ) [ ]`) that end a name. The step comes from a step-like key on the line (step, iter, s,
global step; epoch only when there is no other); a line without one (llm.c's `val loss`) belongs to
the last step seen.
"""
from __future__ import annotations

import re

import numpy as np

from ntjax.diagnostics.runtable import RunTable
from ntjax.readers.columns import Chunks, add_chunk, build_table

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")
# A quoted key in a printed Python dict or JSON: {'loss': 2.3} -> loss: 2.3.
_QUOTED_KEY = re.compile(r"""['"]([A-Za-z_][\w./-]*)['"]\s*:""")
_NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|infinity|inf)"
_UNIT = r"ms|s|us|%|[kKMGT]i?B|tok/s|tokens/s|it/s|samples/s"
_TOKEN = re.compile(rf"""
    (?P<key>[A-Za-z_][\w./-]*?)\s*[:=]\s*(?P<kval>{_NUM})(?P<ktot>/\d+)?(?P<kunit>{_UNIT})?(?![\w.])
  | (?P<word>(?!(?:nan|inf|infinity)\b)[A-Za-z_][\w./-]*):?
  | (?P<num>{_NUM})(?P<tot>/\d+)?(?:(?P<unit>{_UNIT})|\s(?P<sunit>{_UNIT}))?(?![\w.])
  | (?P<sep>[|,;()\[\]])
""", re.VERBOSE | re.IGNORECASE)
# Words that qualify the next one: `train loss`, `val loss`, `learning rate`, `grad norm`, `global step`.
_QUALIFIERS = frozenset("train training val valid validation eval test dev grad gradient learning total "
                        "global tokens mean avg average best final".split())
# Step-like keys, best first; epoch counts only when a line has none of the others.
_STEP_KEYS = ("step", "global_step", "global step", "iter", "iteration", "it", "s", "epoch")
# A bare number whose unit says what it is (llm.c prints `123.4 ms | 4500 tok/s`).
_UNIT_NAMES = {"ms": "step_time_ms", "tok/s": "tok/s", "tokens/s": "tok/s", "it/s": "it/s",
               "samples/s": "samples/s"}


def _name(words: list[str]) -> str:
    """The metric name from the words before a number: the last word, with a qualifier before it."""
    if len(words) >= 2 and words[-2].lower() in _QUALIFIERS:
        return f"{words[-2]} {words[-1]}"
    return words[-1]


def scan_line(line: str) -> list[tuple[str, float, str, int | None]]:
    """(name, value, unit, total) for every named number on a line."""
    pairs: list[tuple[str, float, str, int | None]] = []
    words: list[str] = []
    for m in _TOKEN.finditer(line):
        if m["key"]:
            tot = m["ktot"]
            pairs.append((_name([*words, m["key"]]), float(m["kval"]), m["kunit"] or "",
                          int(tot[1:]) if tot else None))
            words = []
        elif m["word"]:
            words.append(m["word"])
        elif m["num"]:
            unit = m["unit"] or m["sunit"] or ""
            tot = m["tot"]
            if words:
                pairs.append((_name(words), float(m["num"]), unit, int(tot[1:]) if tot else None))
            elif unit.lower() in _UNIT_NAMES:
                pairs.append((_UNIT_NAMES[unit.lower()], float(m["num"]), unit, None))
            words = []
        else:
            words = []
    return pairs


def _step_of(pairs: list[tuple[str, float, str, int | None]]) -> tuple[int | None, int | None]:
    """Index of the pair holding the line's step, and the planned total if logged as `step i/N`."""
    keys = [p[0].lower() for p in pairs]
    for candidate in _STEP_KEYS:
        if candidate in keys:
            i = keys.index(candidate)
            return i, pairs[i][3]
    return None, None


def clean_console(text: str) -> str:
    """A console capture as plain lines: ANSI escapes and backspaces removed, a line redrawn with carriage
    returns (tqdm) kept as its last state, quotes around dict keys dropped (`{'loss': 2.3}`)."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    if "\b" in text:
        text = re.sub(r".\x08", "", text).replace("\x08", "")
    lines = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        lines.append(parts[-1] if parts else "")
    return _QUOTED_KEY.sub(r"\1:", "\n".join(lines))


def read_text(source: str, text: str, fmt: str = "text") -> RunTable:
    """Every named number of every line as a series, keyed by the line's (or the last seen) step."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    units: dict[str, str] = {}
    meta: dict = {}
    problems: list[str] = []
    text = clean_console(text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    torn_last = bool(lines) and not text.endswith(("\n", "\r"))
    last_step, any_step, ordinal = float("nan"), False, 0
    for number, line in enumerate(lines, 1):
        if not any(c.isdigit() for c in line):
            continue
        pairs = scan_line(line)
        step_at, total = _step_of(pairs)
        if step_at is not None:
            last_step, any_step = pairs[step_at][1], True
            if total:
                meta["total_steps"] = total
        metrics = [p for i, p in enumerate(pairs) if i != step_at]
        if number == len(lines) and torn_last and metrics:
            problems.append(f"line {number}: the file ends mid-line, its last value ({metrics[-1][0]}) dropped")
            metrics = metrics[:-1]
        if not metrics:
            continue
        step = last_step if any_step else -1.0 - ordinal  # before any step: placeholder, fixed below
        ordinal += 1
        for name, value, unit, _ in metrics:
            steps, values = series.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)
            if unit:
                units[name] = unit
    chunks: Chunks = {}
    for name, (steps, values) in series.items():
        s = np.asarray(steps)
        # With no step anywhere, the order of metric lines is the step; once steps exist, lines
        # before the first one (config dumps, banners) are dropped.
        s = -1.0 - s if not any_step else np.where(s < 0, np.nan, s)
        add_chunk(chunks, name, s, np.asarray(values))
    if units:
        meta["units"] = units
    if not any_step and series:
        meta["step_from"] = "line order (no step key found)"
    return build_table(source, fmt, chunks, problems, meta)
