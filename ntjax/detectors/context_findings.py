"""Findings that need the run's context: a loss settled at a trivial baseline (`trivial_solution`) and
metrics worse after a resume or a config change (`resume_regression`)."""
from __future__ import annotations

import numpy as np

from ntjax.context import RunContext
from ntjax.detectors.curve import uniform_match
from ntjax.findings import Finding, fmt
from ntjax.runtable import Series

TRIVIAL_MATCH = 0.02  # the settled loss within 2% of a trivial baseline is that baseline
TRIVIAL_FLAT = 0.03  # and it moved less than 3% over the last 30% of the run: it settled there
TRIVIAL_TAIL = 0.3
RESUME_WINDOW = 0.05  # losses compared over 5% of the run (at least 3 points) on each side of a resume
RESUME_WORSE = 0.05  # 5% worse after the resume than before it: the resume lost progress


def detect_trivial_solution(s: Series, ctx: RunContext) -> list[Finding]:
    """The loss settled exactly at what predicting without the input gives (ln K, ln V, the mean)."""
    fin = s.finite()
    if len(fin) < 8:
        return []
    tail = fin.step >= fin.step[0] + (1 - TRIVIAL_TAIL) * (fin.step[-1] - fin.step[0])
    v = fin.value[tail]
    if v.size < 3:
        return []
    level = float(np.median(v[-max(3, v.size // 3):]))
    half = v.size // 2
    a, b = float(np.median(v[:max(1, half)])), float(np.median(v[half:]))
    if level <= 0 or abs(a - b) / level > TRIVIAL_FLAT:
        return []
    baselines = dict(ctx.baselines)
    k = uniform_match(level, TRIVIAL_MATCH / 2)
    # Without the vocabulary or class count, ln k of a common size counts only when the run also started
    # there (a fresh model predicts uniformly): a loss that merely passes ln 65 on its way down is no evidence.
    if k and ctx.task != "regression" and abs(float(fin.value[0]) / np.log(k) - 1) <= 3 * TRIVIAL_MATCH:
        baselines.setdefault(f"ln {k} (uniform over {k} classes/tokens)", float(np.log(k)))
    best = min(baselines.items(), key=lambda kv: abs(kv[1] - level) / kv[1], default=None)
    if best is None or abs(best[1] - level) / best[1] > TRIVIAL_MATCH:
        return []
    name, value = best
    start = int(fin.step[tail][0])
    label = name if name[:1].isdigit() else f"{fmt(value)} = {name}"
    return [Finding("trivial_solution", s.name, start, int(fin.step[-1]), "warning", 0.85,
                    f"{s.name} settled at {fmt(level)} from step {start}; {label}: the model ignores its "
                    f"input ({100 * (level / value - 1):+.1f}% from the baseline)",
                    "check that inputs reach the model and labels match them (shuffled/misaligned targets, a "
                    "constant feature, a dead last layer); a higher LR or normalised targets if it learns nothing")]


def _median_between(s: Series, lo: float, hi: float) -> float | None:
    keep = (s.step >= lo) & (s.step < hi)
    return float(np.median(s.value[keep])) if keep.sum() >= 1 else None


def detect_resume_regression(train: Series | None, eval_: Series | None, ctx: RunContext) -> list[Finding]:
    """Train (and eval) losses worse after a resume point than before it, naming what changed."""
    out = []
    for r in ctx.resumes:
        worse = []
        for s in (train, eval_):
            if s is None or len(s.finite()) < 6:
                continue
            fin = s.finite()
            w = max(RESUME_WINDOW * (fin.step[-1] - fin.step[0]), 3 * float(np.median(np.diff(fin.step))))
            before = _median_between(fin, r.step - w, r.step)
            after = _median_between(fin, r.step, r.step + w)
            if before is None or after is None or before <= 0:
                continue
            end = float(np.median(fin.value[-max(2, len(fin) // 20):]))
            if after >= (1 + RESUME_WORSE) * before and end >= before * (1 - RESUME_WORSE / 2):
                worse.append(f"{fin.name} {fmt(before)} before -> {fmt(after)} after "
                             f"({100 * (after / before - 1):+.0f}%), {fmt(end)} at the end")
        if worse:
            out.append(Finding("resume_regression", (train or eval_).name, r.step, None, "warning", 0.8,
                               f"at step {r.step}: {r.what}; " + "; ".join(worse),
                               "resume with the optimizer state and the LR schedule position of the checkpoint "
                               "(same step counter, same LR), and check the config did not change"))
    return out
