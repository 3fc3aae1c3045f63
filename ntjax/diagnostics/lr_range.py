"""The learning-rate range test (Smith 2015/2017, "Cyclical Learning Rates"; the fastai "LR finder"):
train for a short while with the LR growing exponentially, smooth the loss, stop once it blows up, and
read a peak LR off the curve.

The math here is framework-free: `run_range_test` drives any `step(i, lr) -> loss` callable (the JAX
train step of `ntjax lr-find`, or a PyTorch model and optimizer in `ntjax.bridges.torch.lr_find`).

Two suggestions are reported:
- steepest: where the smoothed loss falls fastest per unit of log LR (Smith's original reading);
- min/10: a decade below the LR at the smoothed loss's minimum.
We recommend min/10. The minimum is a robust feature of the curve, while the steepest point is a
derivative of a noisy smoothed curve that moves by several x between repeats and often lands in the
early, barely-learning region. And the minimum is already where one pass with a rising LR stops
improving; a full run at a constant-ish peak LR spends far longer there, so a decade of margin is what
keeps it stable (it also matches where a warmup + decay schedule's peak belongs). When both agree within
~3x, the choice is not sensitive.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_MIN_LR, DEFAULT_MAX_LR, DEFAULT_STEPS = 1e-7, 1.0, 100
DEFAULT_STOP_FACTOR = 4.0  # stop when the smoothed loss exceeds 4x its minimum
SKIP_START = 0.1  # the first 10% of points: the EMA is still settling, slopes there are noise


def exponential_lrs(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """`steps` LRs from `min_lr` to `max_lr`, each a constant factor above the previous one."""
    if not (0 < min_lr < max_lr) or steps < 2:
        raise ValueError(f"need 0 < min_lr < max_lr and at least 2 steps (got {min_lr}, {max_lr}, {steps})")
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))


def default_beta(steps: int) -> float:
    """EMA factor averaging over ~5% of the test. fastai's fixed 0.98 averages ~50 steps: over a 100-step
    test spanning 7 decades that is 3.5 decades, and the smoothed curve lags so far behind the LR that
    both suggestions move several-fold too high."""
    return float(min(max(1 - 1 / (0.05 * steps), 0.5), 0.98))


def smooth(losses: Sequence[float], beta: float) -> np.ndarray:
    """Exponential moving average with Adam-style bias correction, so early points are not pulled to 0."""
    avg, out = 0.0, np.empty(len(losses))
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


@dataclasses.dataclass(frozen=True)
class RangeTest:
    lrs: np.ndarray  # the LR of each step run
    losses: np.ndarray  # raw training loss of each step
    smoothed: np.ndarray
    stop_reason: str  # "diverged" (smoothed > factor x min), "nonfinite", or "max_lr"


def run_range_test(step: Callable[[int, float], float], lrs: Sequence[float], beta: float | None = None,
                   stop_factor: float = DEFAULT_STOP_FACTOR) -> RangeTest:
    """Call `step(i, lr)` (one training step at `lr`, returning its loss) for each LR until the smoothed
    loss exceeds `stop_factor` times its running minimum, the loss is not finite, or the LRs run out.
    """
    beta = default_beta(len(lrs)) if beta is None else beta
    losses: list[float] = []
    best, reason = math.inf, "max_lr"
    for i, lr in enumerate(lrs):
        losses.append(float(step(i, float(lr))))
        if not math.isfinite(losses[-1]):
            reason = "nonfinite"
            break
        s = smooth(losses, beta)[-1]  # O(n) each step; n is a few hundred at most
        best = min(best, s)
        if s > stop_factor * best:
            reason = "diverged"
            break
    n = len(losses)
    finite = np.isfinite(losses)
    smoothed = np.full(n, np.nan)
    smoothed[finite] = smooth(np.asarray(losses)[finite], beta)  # the non-finite loss can only be the last
    return RangeTest(np.asarray(lrs[:n], dtype=float), np.asarray(losses), smoothed, reason)


@dataclasses.dataclass(frozen=True)
class Suggestion:
    steepest: float | None  # LR of the steepest descent of the smoothed loss vs log LR
    min_over_10: float  # LR at the smoothed loss's minimum, / 10
    min_loss_lr: float
    recommended: float
    rule: str  # which of the two is recommended: "min_over_10"
    why: str


def suggest(test: RangeTest, skip_start: float = SKIP_START) -> Suggestion:
    """Both suggestions from a range test, and the one we recommend (see the module docstring)."""
    finite = np.isfinite(test.smoothed)
    if not finite.any():
        raise ValueError("the range test produced no finite loss; lower --min-lr")
    s = np.where(finite, test.smoothed, np.inf)
    m = int(np.argmin(s))
    lo = int(len(s) * skip_start)
    steepest = None
    if m - lo >= 2:
        slope = np.gradient(s[lo:m + 1], np.log(test.lrs[lo:m + 1]))
        steepest = float(test.lrs[lo + int(np.argmin(slope))])
    min_lr = float(test.lrs[m])
    why = ("min/10: a decade below where the smoothed loss stopped improving; the minimum is a robust "
           "feature of the curve and the decade leaves room for a whole run at that peak LR, while the "
           "steepest point is a noisy derivative")
    if steepest is not None and 1 / 3 <= steepest / (min_lr / 10) <= 3:
        why += f"; the steepest-descent LR ({steepest:.2g}) agrees within 3x"
    if test.stop_reason == "max_lr" and m == len(s) - 1:
        why += ("; the loss was still falling at --max-lr, so the true minimum lies higher: rerun with a "
                "larger --max-lr")
    return Suggestion(steepest=steepest, min_over_10=min_lr / 10, min_loss_lr=min_lr, recommended=min_lr / 10,
                      rule="min_over_10", why=why)


def to_dict(test: RangeTest, sug: Suggestion) -> dict:
    """The JSON view of a range test and its suggestions."""
    def clean(a: np.ndarray) -> list:
        return [float(x) if math.isfinite(x) else None for x in a]
    return {"suggestions": {"steepest": sug.steepest, "min_over_10": sug.min_over_10},
            "recommended": sug.recommended, "recommended_rule": sug.rule, "why": sug.why,
            "min_loss_lr": sug.min_loss_lr, "stop_reason": test.stop_reason, "steps_run": int(len(test.lrs)),
            "lrs": clean(test.lrs), "losses": clean(test.losses), "smoothed": clean(test.smoothed)}
