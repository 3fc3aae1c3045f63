"""Detectors that relate two curves: train vs eval (overfitting, underfitting), eval metric vs eval loss,
LR vs loss (jumps, warmup), and a run vs a baseline run at the same steps.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ntjax.diagnostics.detectors import smoothing as sm
from ntjax.diagnostics.findings import Finding, fmt
from ntjax.diagnostics.runtable import Series

OVERFIT_MIN_STALL = 0.2  # eval has not improved for the last 20% of the run...
OVERFIT_TRAIN_DROP = 0.03  # ...while train fell 3% more: the model memorises instead of generalising
OVERFIT_RISE = 0.03  # eval 3% above its best at the end: past noise, early stopping would have helped
OVERFIT_SMOOTH_POINTS = 20  # with this many eval points the best is read on the smoothed curve, else raw
OVERFIT_NOISE_SIGMAS = 2.0  # ...and twice the eval's own scatter, against a smoothed best
# ...or four times it against the raw lowest of fewer points: the minimum of 10-20 noisy points sits ~1.5
# sigma below the level of a flat curve, so 2 sigma left half a sigma of margin
OVERFIT_NOISE_SIGMAS_RAW = 4.0
UNDERFIT_GAP = 0.05  # eval within 5% of train: no generalisation gap, capacity is the limit
DISAGREE_MIN_LAG = 0.1  # the task metric peaks 10% of the run after the loss does
DISAGREE_LOSS_RISE = 0.02  # while the eval loss rose 2% from its best by then
LR_JUMP = math.log(2)  # LR doubles or halves between two logged points: a schedule step, not a decay...
LR_JUMP_OF_PEAK = 0.1  # ...by at least 10% of the peak (the last tiny steps of a decay to 0 halve too)
LR_RESPONSE_WINDOW = 0.02  # the loss response to an LR step is read over 2% of the run on each side
LR_LOSS_RISE = 0.05  # loss 5% higher right after an LR increase: that LR is too high
WARMUP_LOSS_RISE = math.log(1.1)  # loss rises 10% while the LR warms up: the peak LR is too high
SHORT_WARMUP = 0.02  # warmup under 2% of the run...
EARLY_TROUBLE = 0.1  # ...and trouble within 10% of the run after the LR peak: warmup too short
HIGHER_IS_BETTER = re.compile(r"acc|accuracy|f1|bleu|rouge|iou|auc|map|precision|recall|score|exact|match")
LOWER_IS_BETTER = re.compile(r"wer|cer|error|loss|distance|mae|mse|rmse|perplexity|ppl")


def _smooth(series: Series) -> np.ndarray:
    return sm.rolling_median(series.value, sm.smooth_window(len(series), 0.02))


def _value_at(series: Series, step: float) -> float:
    return float(np.interp(step, series.step, _smooth(series)))


def detect_overfitting(train: Series | None, eval_: Series) -> list[Finding]:
    """Eval stops improving (or rises) while train keeps falling: where eval bottomed and how far it rose."""
    if train is None or len(train) < 3 or len(eval_) < 3:
        return []
    smoothed = len(eval_) >= OVERFIT_SMOOTH_POINTS
    y = _smooth(eval_) if smoothed else eval_.value
    best = int(np.argmin(y))
    span = max(1, int(max(train.step[-1], eval_.step[-1]) - min(train.step[0], eval_.step[0])))
    stall = (eval_.step[-1] - eval_.step[best]) / span
    after = eval_.value[best + 1:]
    if stall < OVERFIT_MIN_STALL or after.size == 0:
        return []
    best_v = float(y[best])
    end_v = float(np.median(after[-max(1, after.size // 2):]))
    rise = end_v / best_v - 1 if best_v > 0 else 0.0
    t_best, t_end = _value_at(train, eval_.step[best]), _value_at(train, eval_.step[-1])
    train_drop = 1 - t_end / t_best if t_best > 0 else 0.0
    if train_drop < OVERFIT_TRAIN_DROP or rise < 0:
        return []
    # past noise: 3%, and 2-4 times the eval's own point-to-point scatter over the second half (a few small
    # eval batches scatter by several percent, the raw minimum of them sits low, and one high point is no trend)
    later = np.log(np.maximum(eval_.value[len(eval_) // 2:], 1e-12))
    noise = (sm.MAD_TO_SIGMA * float(np.median(np.abs(np.diff(later)))) / np.sqrt(2)) if later.size >= 4 else 0.0
    sigmas = OVERFIT_NOISE_SIGMAS if smoothed else OVERFIT_NOISE_SIGMAS_RAW
    severity = "warning" if rise >= max(OVERFIT_RISE, sigmas * noise) else "info"
    return [Finding("overfitting", eval_.name, int(eval_.step[best]), int(eval_.step[-1]), severity,
                    float(np.clip(0.5 + rise + train_drop / 4, 0, 0.95)),
                    f"{eval_.name} best {fmt(best_v)} at step {int(eval_.step[best])}, {fmt(end_v)} at the end "
                    f"(+{100 * rise:.1f}%), while train loss fell {fmt(t_best)} -> {fmt(t_end)} "
                    f"(-{100 * train_drop:.0f}%)",
                    f"keep the checkpoint from step {int(eval_.step[best])} (early stopping); add regularisation "
                    "(dropout, weight decay), more data or augmentation, or train fewer epochs",
                    marks=(int(eval_.step[best]),))]


def detect_underfitting(train: Series | None, eval_: Series | None, plateau: Finding | None) -> list[Finding]:
    """Train and eval flat together and close: the model cannot fit more (too small, too regularised)."""
    if train is None or eval_ is None or plateau is None or plateau.severity == "info" or len(eval_) < 2:
        return []
    t_end = _value_at(train, eval_.step[-1])
    e_end = float(np.median(eval_.value[-max(1, len(eval_) // 5):]))
    gap = (e_end - t_end) / t_end if t_end > 0 else float("inf")
    if abs(gap) > UNDERFIT_GAP:
        return []
    return [Finding("underfitting", train.name, plateau.start_step, plateau.end_step, "warning", 0.7,
                    f"train {fmt(t_end)} and eval {fmt(e_end)} are {100 * abs(gap):.1f}% apart and both flat "
                    f"since step {plateau.start_step}",
                    "the model has room to fit more: a larger model, less weight decay/dropout, a higher LR, "
                    "or a longer run")]


def detect_metric_disagreement(eval_loss: Series, metric: Series) -> list[Finding]:
    """The task metric keeps improving after the eval loss has turned: choose checkpoints by the metric."""
    name = metric.name.split("/", 1)[-1].lower()
    if "ppl" in name or "perplexity" in name or len(metric) < 3 or len(eval_loss) < 3:
        return []
    if LOWER_IS_BETTER.search(name):
        best = int(np.argmin(metric.value))
    elif HIGHER_IS_BETTER.search(name):
        best = int(np.argmax(metric.value))
    else:
        return []
    loss_best = int(np.argmin(eval_loss.value))
    span = max(1, int(eval_loss.step[-1] - eval_loss.step[0]))
    s_metric, s_loss = int(metric.step[best]), int(eval_loss.step[loss_best])
    if (s_metric - s_loss) / span < DISAGREE_MIN_LAG:
        return []
    loss_then = float(np.interp(s_metric, eval_loss.step, eval_loss.value))
    rise = loss_then / float(eval_loss.value[loss_best]) - 1
    if rise < DISAGREE_LOSS_RISE:
        return []
    return [Finding("metric_disagreement", metric.name, s_loss, s_metric, "info", 0.8,
                    f"eval loss is best at step {s_loss} ({fmt(float(eval_loss.value[loss_best]))}) but "
                    f"{metric.name} keeps improving until step {s_metric} ({fmt(float(metric.value[best]))}), "
                    f"when the loss is {100 * rise:.0f}% above its best",
                    f"the loss overfits before the task metric: select checkpoints by {metric.name}",
                    marks=(s_loss, s_metric))]


def warmup_steps(lr: Series) -> tuple[int, int]:
    """(warmup length in steps, step of the peak LR). A warmup climbs gradually (3 or more rises) from under
    half the peak; a single jump is a schedule step, not a warmup."""
    peak = int(np.argmax(lr.value))
    rises = int(np.sum(np.diff(lr.value[:peak + 1]) > 0))
    if lr.value[0] >= 0.5 * lr.value[peak] or rises < min(3, peak):
        return 0, int(lr.step[peak])
    return int(lr.step[peak] - lr.step[0]), int(lr.step[peak])


def detect_lr_loss(train: Series, lr: Series, trouble: list[Finding]) -> list[Finding]:
    """Loss responses to the LR: rises while it warms up, jumps when it steps up, trouble right after a short
    warmup. `trouble` holds the train-loss findings (spikes, divergence, oscillation) already found."""
    lr = lr.finite()
    if len(lr) < 2 or len(train) < 3 or not np.all(lr.value >= 0) or lr.value.max() <= 0:
        return []
    findings = []
    span = max(1, int(train.step[-1] - train.step[0]))
    warm, peak_step = warmup_steps(lr)
    # A wider median (5%, 5+ points) than elsewhere: a rise during warmup must stand out of batch noise.
    window = 1 if len(train) < 20 else 5 if len(train) < 100 else sm.smooth_window(len(train), 0.05, 21)
    smooth = sm.rolling_median(train.value, window)
    y = sm.log_values(smooth)
    during = train.step <= peak_step
    if warm > 0 and during.sum() >= 2:
        low = int(np.argmin(np.where(during, y, np.inf)))
        after = (train.step > train.step[low]) & (train.step <= peak_step + max(warm, 0.05 * span))
        if after.any() and float(y[after].max() - y[low]) >= WARMUP_LOSS_RISE:
            top = int(np.flatnonzero(after)[np.argmax(y[after])])
            v0, v1 = float(smooth[low]), float(smooth[top])  # the smoothed levels the rise was judged on
            findings.append(Finding(
                "lr_loss_correlation", train.name, int(train.step[low]), int(train.step[top]), "warning", 0.8,
                f"loss rose {fmt(v0)} -> {fmt(v1)} (+{100 * (v1 / v0 - 1):.0f}%) while the LR warmed up to "
                f"its peak {lr.value.max():.3g} at step {peak_step}",
                f"the peak LR {lr.value.max():.3g} is too high: try 3-10x lower (`ntjax lr-find`)"))
    early = [f for f in trouble if f.severity != "info" and f.start_step is not None
             and f.start_step <= peak_step + EARLY_TROUBLE * span]
    if warm < SHORT_WARMUP * span and early:
        f = early[0]
        findings.append(Finding(
            "short_warmup", train.name, f.start_step, f.end_step, "warning", 0.7,
            f"warmup is {warm} steps ({100 * warm / span:.1f}% of the run) and the loss shows a {f.kind} at "
            f"step {f.start_step}, just after the LR reached {lr.value.max():.3g}",
            f"warm up over {max(100, int(0.05 * span))} steps (about 5% of the run)"))
    jumps = np.flatnonzero((np.abs(np.diff(np.log(np.maximum(lr.value, 1e-30)))) >= LR_JUMP)
                           & (np.abs(np.diff(lr.value)) >= LR_JUMP_OF_PEAK * lr.value.max()))
    for j in jumps[:5]:
        s = float(lr.step[j + 1])
        w = LR_RESPONSE_WINDOW * span
        before = train.value[(train.step >= s - w) & (train.step < s)]
        after = train.value[(train.step >= s) & (train.step <= s + w)]
        if before.size == 0 or after.size == 0 or lr.value[j] <= 0:
            continue
        change = float(np.median(after) / np.median(before) - 1)
        up = lr.value[j + 1] > lr.value[j]
        if up and change >= LR_LOSS_RISE:
            findings.append(Finding(
                "lr_loss_correlation", train.name, int(s), None, "warning", 0.75,
                f"loss jumped {100 * change:+.0f}% when the LR rose {lr.value[j]:.3g} -> {lr.value[j + 1]:.3g} "
                f"at step {int(s)}", f"keep the LR at or below {lr.value[j]:.3g}"))
        elif not up and change <= -LR_LOSS_RISE / 2:
            findings.append(Finding(
                "lr_loss_correlation", train.name, int(s), None, "info", 0.6,
                f"loss dropped {-100 * change:.0f}% when the LR fell {lr.value[j]:.3g} -> {lr.value[j + 1]:.3g} "
                f"at step {int(s)}", "the LR before the drop was too high to settle: a smooth decay (cosine) "
                "gets this gain without the wait"))
    return findings


def compare_with_baseline(run: Series, base: Series) -> dict | None:
    """The same metric of two runs at their last common step: who is ahead, by how much, and when the run
    first reached the baseline's value there."""
    lo, hi = max(run.step[0], base.step[0]), min(run.step[-1], base.step[-1])
    if len(run) < 2 or len(base) < 2 or hi < lo:
        return None
    r, b = _value_at(run, hi), _value_at(base, hi)
    rel = (r - b) / abs(b) if b else 0.0
    lower_better = not HIGHER_IS_BETTER.search(run.name.split("/", 1)[-1].lower())
    better = (r < b) if lower_better else (r > b)
    ahead = "tie" if abs(rel) < 0.005 else ("run" if better else "baseline")
    reached = np.flatnonzero(_smooth(run) <= b if lower_better else _smooth(run) >= b)
    return {"metric": run.name, "step": int(hi), "run": r, "baseline": b, "difference": r - b,
            "relative": rel, "ahead": ahead,
            "run_reaches_baseline_at": int(run.step[reached[0]]) if reached.size else None}


def baseline_finding(cmp: dict) -> Finding:
    """The baseline comparison as an info finding a person reads."""
    who = {"run": "this run is ahead", "baseline": "the baseline is ahead", "tie": "the runs are level"}
    reach = (f"; this run reached the baseline's {fmt(cmp['baseline'])} at step {cmp['run_reaches_baseline_at']}"
             if cmp["ahead"] == "run" and cmp["run_reaches_baseline_at"] is not None else "")
    return Finding("baseline", cmp["metric"], cmp["step"], None, "info", 0.9,
                   f"at step {cmp['step']}: {fmt(cmp['run'])} vs baseline {fmt(cmp['baseline'])} "
                   f"({100 * cmp['relative']:+.1f}%): {who[cmp['ahead']]}{reach}",
                   "" if cmp["ahead"] != "baseline" else "compare the configs: the baseline's settings did better")
