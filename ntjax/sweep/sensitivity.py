"""Learning-rate sensitivity: how much final loss a configuration gives up across a log-spaced LR sweep.

Wortsman et al. 2023 ("Small-scale proxies for large-scale Transformer training instabilities",
arXiv:2309.14322) define it as

    LR sensitivity = E_{η in sweep} [ min(ℓ(A(η)), ℓ0) − ℓ* ],   ℓ* = min_η ℓ(A(η)),

where ℓ(A(η)) is the final loss of training with peak LR η, ℓ0 the loss at initialisation (so a run that
diverges counts as "learned nothing", never worse), and the expectation is the mean over the LRs of an
evenly log-spaced sweep (they use 3e-4 to 3e-1). Lower is better: a configuration (e.g. with qk-layernorm,
or with warmup) that reaches nearly its best loss over orders of magnitude of LR is less sensitive.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

PAPER_RANGE = (3e-4, 3e-1)
DEFAULT_POINTS = 7  # half-decade steps over the paper's three decades


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    value: float  # E[min(L, L0) - L*]
    init_loss: float  # L0
    best_loss: float  # L*
    best_lr: float
    lrs: tuple[float, ...]
    losses: tuple[float, ...]  # final losses as given (inf/nan for diverged runs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def lr_sensitivity(lrs: Sequence[float], final_losses: Sequence[float], init_loss: float) -> Sensitivity:
    """The LR sensitivity of one configuration from its sweep (one final loss per LR; a non-finite loss,
    i.e. a diverged run, counts as the initial loss)."""
    lrs_arr = np.asarray(lrs, dtype=float)
    losses = np.asarray(final_losses, dtype=float)
    if lrs_arr.size == 0 or lrs_arr.shape != losses.shape:
        raise ValueError("need one final loss per learning rate")
    if not math.isfinite(init_loss):
        raise ValueError("the loss at initialisation must be finite")
    capped = np.where(np.isfinite(losses), np.minimum(losses, init_loss), init_loss)
    best = int(np.argmin(capped))
    return Sensitivity(value=float(np.mean(capped - capped[best])), init_loss=float(init_loss),
                       best_loss=float(capped[best]), best_lr=float(lrs_arr[best]),
                       lrs=tuple(map(float, lrs_arr)), losses=tuple(map(float, losses)))
