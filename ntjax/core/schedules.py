"""Learning-rate schedules on optax: warmup + cosine, warmup + linear, warmup-stable-decay, constant.

A schedule is a pure function of the step count, so the LR of any step is recoverable for logging by
calling it (optax keeps no LR in its state).
"""
from __future__ import annotations

import optax


def make_schedule(name: str, peak_lr: float, steps: int, warmup: int, min_lr_ratio: float = 0.1,
                  decay_fraction: float = 0.2) -> optax.Schedule:
    """Linear warmup from 0 to `peak_lr` over `warmup` steps, then:

    - cosine: half-cosine down to `min_lr_ratio · peak` at `steps` (Loshchilov & Hutter 2017);
    - linear: straight line down to `min_lr_ratio · peak` at `steps`;
    - wsd: hold the peak, then decay linearly to `min_lr_ratio · peak` over the last `decay_fraction` of
      the run (warmup-stable-decay, Hu et al. 2024 MiniCPM; Hägele et al. 2024);
    - constant: hold the peak.
    """
    end = peak_lr * min_lr_ratio
    warm = optax.linear_schedule(0.0, peak_lr, max(warmup, 1)) if warmup > 0 else optax.constant_schedule(peak_lr)
    rest = max(steps - warmup, 1)
    if name == "cosine":
        after = optax.cosine_decay_schedule(peak_lr, rest, alpha=min_lr_ratio)
    elif name == "linear":
        after = optax.linear_schedule(peak_lr, end, rest)
    elif name == "wsd":
        decay = max(int(round(decay_fraction * steps)), 1)
        stable = max(rest - decay, 0)
        after = optax.join_schedules([optax.constant_schedule(peak_lr), optax.linear_schedule(peak_lr, end, decay)],
                                     [stable])
    elif name == "constant":
        after = optax.constant_schedule(peak_lr)
    else:
        raise ValueError(f"unknown schedule {name!r}")
    if warmup <= 0:
        return after
    return optax.join_schedules([warm, after], [warmup])
