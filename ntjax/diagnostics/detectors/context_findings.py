"""Findings that need the run's context: a loss settled at a trivial baseline (`trivial_solution`) and
metrics worse after a resume or a config change (`resume_regression`)."""
from __future__ import annotations

import numpy as np

from ntjax.diagnostics.context import RunContext
from ntjax.diagnostics.detectors import smoothing as sm
from ntjax.diagnostics.detectors.curve import uniform_match
from ntjax.diagnostics.findings import Finding, fmt
from ntjax.diagnostics.runtable import Series

TRIVIAL_MATCH = 0.02  # the settled loss within 2% of a trivial baseline is that baseline
TRIVIAL_FLAT = 0.03  # and it moved less than 3% over the last 30% of the run: it settled there
TRIVIAL_TAIL = 0.3
TRIVIAL_EARLY = 0.6  # sat within 4% of the level for the last 60% of the run: settled, not passing by
UNIGRAM_SETTLE = 0.2  # token frequencies are learned fast: settled within the first 20% of the run
UNIGRAM_LOW, UNIGRAM_HIGH = 0.5, 0.9  # a byte/token unigram entropy sits at 50-90% of ln V
RESUME_WINDOW = 0.05  # losses compared over 5% of the run (at least 3 points) on each side of a resume
RESUME_WORSE = 0.05  # 5% worse after the resume than before it: the resume lost progress


def detect_trivial_solution(s: Series, ctx: RunContext, init_loss: float | None = None) -> list[Finding]:
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
    # How long it has sat at this level: a loss that settled early and never moved again is stuck, not
    # passing through on its way down.
    smooth = sm.rolling_median(fin.value, sm.smooth_window(len(fin), 0.05, 51))
    settled = fin.step[np.abs(smooth / level - 1) > TRIVIAL_MATCH * 1.5]
    since = float(settled[-1]) if settled.size else float(fin.step[0])
    early = (fin.step[-1] - since) >= TRIVIAL_EARLY * (fin.step[-1] - fin.step[0])
    first = float(fin.value[0])
    k = uniform_match(level, TRIVIAL_MATCH / 2)
    # Without the vocabulary or class count, ln k of a common size counts when the run also started there
    # (a fresh model predicts uniformly) or sat at it for most of the run.
    if k and ctx.task != "regression" and (abs(first / np.log(k) - 1) <= 3 * TRIVIAL_MATCH or early):
        baselines.setdefault(f"ln {k} (uniform over {k} classes/tokens)", float(np.log(k)))
    if ctx.task in ("unknown", "regression") and early and not ctx.baselines:
        baselines.setdefault("1.000 = the MSE of predicting the mean of standardised targets", 1.0)
    # the first logged points are noisy and may come after a few updates (HF logs from step 1): 7.5%
    k0 = uniform_match(float(np.max(fin.value[:2])), 3.75 * TRIVIAL_MATCH)
    if k0 is None and init_loss is not None:  # the first eval, at init, is a cleaner reading of the start
        k0 = uniform_match(init_loss, TRIVIAL_MATCH)
    quick = since - fin.step[0] <= UNIGRAM_SETTLE * (fin.step[-1] - fin.step[0])
    if k0 and early and quick and ctx.task in ("unknown", "lm") \
            and UNIGRAM_LOW * np.log(k0) <= level <= UNIGRAM_HIGH * np.log(k0) \
            and not any("unigram" in b for b in baselines):
        # Started at ln V, fell fast and sat still: what a model that learns only token frequencies does.
        baselines[f"{fmt(level)} ~ the unigram entropy (started at ln {k0}, fell within "
                  f"{int(since - fin.step[0])} steps and never moved again: token frequencies only)"] = level
    best = min(baselines.items(), key=lambda kv: abs(kv[1] - level) / kv[1], default=None)
    if best is None or abs(best[1] - level) / best[1] > TRIVIAL_MATCH:
        return []
    name, value = best
    start = int(fin.step[np.searchsorted(fin.step, since, side="right")]) if early else int(fin.step[tail][0])
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
            if after >= (1 + RESUME_WORSE) * before:
                worse.append(f"{fin.name} {fmt(before)} before -> {fmt(after)} after "
                             f"({100 * (after / before - 1):+.0f}%), {fmt(end)} at the end")
        if worse:
            worse_metric = next(s.name for s in (train, eval_) if s is not None)
            if r.kind == "lr_raised":
                worse.append("(the LR was raised here: a too-high LR, unless this was a resume)")
            out.append(Finding("resume_regression", worse_metric, r.step, None, "warning", 0.8,
                               f"at step {r.step}: {r.what}; " + "; ".join(worse),
                               "resume with the optimizer state and the LR schedule position of the checkpoint "
                               "(same step counter, same LR), and check the config did not change"))
    return out
