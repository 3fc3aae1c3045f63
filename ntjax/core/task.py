"""What is trained: a model, its loss and its data — the default GPT on the embedded corpus, or a user's
spec module (`--spec my_spec.py`).

A spec module defines:
    build_model(cfg: TrainConfig, rngs: flax.nnx.Rngs) -> nnx.Module
    train_batch(cfg: TrainConfig, index: int) -> array      # deterministic in index: resume and
                                                            # rollback re-read exactly the same data
    eval_batches(cfg: TrainConfig) -> list of arrays        # a fixed held-out set
and optionally
    loss_fn(model, batch) -> (loss, {"accuracy": ..., ...})  # default: next-token cross-entropy on
                                                            # [B, T+1] token batches
    TOKENS_PER_STEP = int                                   # enables tokens/s in the logs
    MUP_ROLES = {regex: role}                               # --parametrization mup: input | hidden |
                                                            # output | vector by parameter path; the
                                                            # width is cfg.model.d_model (ntjax.core.mup)
    MUP_HIDDEN_INIT = "constant" | "fan_in"                 # how the spec's hidden init scales
See examples/custom_spec.py.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from flax import nnx

from ntjax.core import mup
from ntjax.core.config import TrainConfig
from ntjax.core.data import make_data, unigram_entropy
from ntjax.core.model import GPT
from ntjax.core.spec import load_spec
from ntjax.core.step import LossFn, lm_loss
from ntjax.errors import NtjaxError


@dataclasses.dataclass
class Task:
    model: nnx.Module
    loss_fn: LossFn
    train_batch: Callable[[int], Any]
    eval_batches: list[Any]
    data_info: dict[str, Any]  # evidence for config.json and the report
    tokens_per_step: int | None  # for tokens/s and MFU; None when a spec's batches are not token windows


def default_task(cfg: TrainConfig) -> Task:
    """The GPT family on the embedded corpus (or `cfg.data`), the tail held out for eval."""
    data = make_data(cfg.model.seq_len, cfg.seed, cfg.eval_fraction, cfg.data)
    info = {
        "source": cfg.data or "embedded: CPython pydoc_data.topics",
        "tokenizer": "bytes (vocab 256)",
        "train_tokens": int(len(data.train)),
        "eval_tokens": int(len(data.eval)),
        "held_out": f"last {cfg.eval_fraction:.0%} of the text ({len(data.eval):,} tokens), never trained on",
        "unigram_entropy": unigram_entropy(data.train),
    }

    def loss_fn(model, batch, probes=False):
        return lm_loss(model, batch, probes, cfg.z_loss)

    micro = cfg.micro_batch_size or cfg.batch_size
    model = mup.apply_init(GPT(cfg.model, nnx.Rngs(cfg.seed), mup.widths_of(cfg)), cfg)
    return Task(model=model, loss_fn=loss_fn,
                train_batch=lambda i: data.train_batch(i, cfg.batch_size),
                eval_batches=data.eval_batches(cfg.eval_batches, micro), data_info=info,
                tokens_per_step=cfg.tokens_per_step)


def spec_task(cfg: TrainConfig) -> Task:
    """A user's model, loss and data from `cfg.spec`."""
    module = load_spec(cfg.spec)
    user_loss = getattr(module, "loss_fn", None)

    def loss_fn(model, batch, probes=False):
        if user_loss is None:
            return lm_loss(model, batch, probes, cfg.z_loss)
        loss, aux = user_loss(model, batch)
        return loss, {"accuracy": aux.get("accuracy", 0.0 * loss), "max_logit": aux.get("max_logit", 0.0 * loss),
                      **{k: v for k, v in aux.items() if k not in ("accuracy", "max_logit")}}

    eval_batches = list(module.eval_batches(cfg))
    if not eval_batches:
        raise NtjaxError(f"spec {cfg.spec}: eval_batches() returned nothing; a run needs a held-out set")
    return Task(model=mup.apply_init(module.build_model(cfg, nnx.Rngs(cfg.seed)), cfg), loss_fn=loss_fn,
                train_batch=lambda i: np.asarray(module.train_batch(cfg, i)), eval_batches=eval_batches,
                data_info={"source": f"spec {cfg.spec}", "eval_batches": len(eval_batches)},
                tokens_per_step=getattr(module, "TOKENS_PER_STEP", None))


def build_task(cfg: TrainConfig) -> Task:
    return spec_task(cfg) if cfg.spec else default_task(cfg)
