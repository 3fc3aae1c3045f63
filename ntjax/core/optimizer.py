"""The optimizer factory: AdamW (or another optax optimizer by name) behind global-norm clipping, with
decoupled weight decay masked off biases, norm scales and embeddings."""
from __future__ import annotations

from typing import Any

import jax
import optax

from ntjax.core.config import TrainConfig
from ntjax.diagnostics.tree_stats import path_name

NO_DECAY_WORDS = ("embed", "ln", "norm", "bias", "scale")


def decay_mask(params: Any) -> Any:
    """True for the leaves weight decay applies to: matrices that are not embeddings.

    Decaying norm gains and biases pulls them to 0 and hurts; decaying embeddings penalises rare tokens
    (the convention of GPT-2/nanoGPT and Loshchilov & Hutter's AdamW applied to transformers).
    """
    def keep(path: tuple, leaf: Any) -> bool:
        name = path_name(path).lower()
        return getattr(leaf, "ndim", 0) >= 2 and not any(w in name for w in NO_DECAY_WORDS)
    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(cfg: TrainConfig, schedule: optax.Schedule, params: Any) -> optax.GradientTransformation:
    """`cfg.optimizer` with `schedule`, behind `clip_by_global_norm(cfg.clip_norm)` when clipping is on, and
    followed by μP's per-tensor LR multipliers under `--parametrization mup` (`ntjax.core.mup.with_mup`)."""
    from ntjax.core.mup import with_mup

    mask = decay_mask(params)
    name = cfg.optimizer
    if name == "adamw":
        base = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=mask)
    elif name == "adam":
        base = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif name == "sgd":
        base = optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask),
                           optax.sgd(schedule, momentum=cfg.b1, nesterov=True))
    elif name == "lion":
        base = optax.lion(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=mask)
    elif name == "adafactor":
        base = optax.adafactor(schedule, weight_decay_rate=cfg.weight_decay or None, weight_decay_mask=mask)
    elif name == "muon":
        base = optax.contrib.muon(schedule, adam_b1=cfg.b1, adam_b2=cfg.b2, eps=cfg.eps,
                                  weight_decay=cfg.weight_decay, weight_decay_mask=mask)
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    base = with_mup(base, cfg, params)
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), base) if cfg.clip_norm > 0 else base
