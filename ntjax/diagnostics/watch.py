"""Early warnings while training: streaming checks on host scalars, cheap enough to run every step.

These only raise the alarm the moment something happens; the full analysis of a finished log is
`ntjax curves` / `ntjax debug`.
"""
from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

# A loss this many robust standard deviations (1.4826·MAD) above the recent median is a spike: MAD-based
# so ordinary minibatch noise (a few sigma) does not trip it.
SPIKE_Z = 6.0
# A grad norm this many times the recent median is an explosion (clipping hides it from the loss at first).
GRAD_EXPLOSION_RATIO = 10.0
# Recent history the checks compare against, and how much of it they need before judging.
WINDOW, MIN_HISTORY = 50, 20


@dataclasses.dataclass
class Event:
    step: int
    kind: str  # "spike" | "nan" | "grad_explosion"
    message: str


class Watch:
    """Feed it each step's metrics; it returns the events that step raised (and keeps them all)."""

    def __init__(self) -> None:
        self.loss = collections.deque(maxlen=WINDOW)
        self.grad = collections.deque(maxlen=WINDOW)
        self.events: list[Event] = []
        self._nan_seen = False

    def update(self, step: int, metrics: dict[str, float]) -> list[Event]:
        new: list[Event] = []
        loss, grad = metrics.get("train/loss", math.nan), metrics.get("train/grad_norm", math.nan)
        if not (math.isfinite(loss) and math.isfinite(grad)):
            if not self._nan_seen:
                new.append(Event(step, "nan", f"non-finite loss/grad norm at step {step} "
                                              f"(loss={loss}, grad_norm={grad})"))
            self._nan_seen = True
        else:
            if len(self.loss) >= MIN_HISTORY:
                hist = np.asarray(self.loss)
                med = float(np.median(hist))
                mad = 1.4826 * float(np.median(np.abs(hist - med))) + 1e-8
                if (loss - med) / mad > SPIKE_Z:
                    new.append(Event(step, "spike", f"loss spike at step {step}: {loss:.4g} vs recent median "
                                                    f"{med:.4g} ({(loss - med) / mad:.1f} robust sd)"))
            if len(self.grad) >= MIN_HISTORY:
                med_g = float(np.median(np.asarray(self.grad)))
                if grad > GRAD_EXPLOSION_RATIO * med_g:
                    new.append(Event(step, "grad_explosion", f"grad norm {grad:.3g} at step {step} is "
                                                             f"{grad / med_g:.0f}x its recent median {med_g:.3g}"))
            self.loss.append(loss)
            self.grad.append(grad)
        self.events.extend(new)
        return new


def gradient_noise_scale(small_sq: float, big_sq: float, b_small: int, b_big: int) -> tuple[float, float]:
    """Unbiased |G|² and tr(Σ) from squared gradient norms at two batch sizes (McCandlish et al. 2018,
    appendix A.1); B_simple = tr(Σ)/|G|² is the critical-batch estimate. Returns (|G|², tr Σ)."""
    g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


class NoiseScale:
    """EMA-smoothed B_simple: both estimates are noisy per step, so their ratio is taken after smoothing."""

    def __init__(self, b_small: int, b_big: int, decay: float = 0.95):
        self.b_small, self.b_big, self.decay = b_small, b_big, decay
        self.g2 = self.trace = None

    def update(self, small_sq: float, big_sq: float) -> float:
        g2, trace = gradient_noise_scale(small_sq, big_sq, self.b_small, self.b_big)
        if self.g2 is None:
            self.g2, self.trace = g2, trace
        else:
            self.g2 = self.decay * self.g2 + (1 - self.decay) * g2
            self.trace = self.decay * self.trace + (1 - self.decay) * trace
        return self.trace / self.g2 if self.g2 > 0 else math.nan
