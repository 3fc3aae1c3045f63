"""Build a run's state from its config: the task, the model's graph, a fresh `TrainState` and the
optimizer factory. Building never reads a run folder; a fine-tune's base weights come in as an argument
(`core.runfolder.load_base_params` loads them), so a fine-tuned checkpoint, which holds every weight,
restores without its base run.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import optax
from flax import nnx

from ntjax.core.config import TrainConfig
from ntjax.core.guards import spike_guard
from ntjax.core.lora import DEFAULT_TARGETS, add_lora
from ntjax.core.optimizer import make_optimizer
from ntjax.core.schedules import make_schedule
from ntjax.core.step import TrainState, init_state
from ntjax.core.task import Task, build_task

MakeTx = Callable[[float], tuple[optax.GradientTransformation, optax.Schedule]]


def build_state(cfg: TrainConfig, lr_factor: float = 1.0, base_params: Any = None,
                ) -> tuple[Task, Any, TrainState, MakeTx]:
    """The task, the model's graph, a fresh TrainState and a `make_tx(lr_factor)` for this config.

    `base_params` (an `nnx.State` of `nnx.Param`, e.g. from `load_base_params`) is copied into the model
    before LoRA wrapping; without it a fine-tune's structure is still built (LoRA layers included), ready
    for a checkpoint restore.
    """
    task = build_task(cfg)
    trainable: Any = nnx.Param
    if base_params is not None:
        nnx.update(task.model, base_params)
    if cfg.init_from and cfg.lora_rank > 0:  # train only the adapters; the base kernels stay frozen
        add_lora(task.model, cfg.lora_rank, cfg.lora_targets or DEFAULT_TARGETS, seed=cfg.seed)
        trainable = nnx.LoRAParam
    params = nnx.state(task.model, trainable)

    lr = cfg.lr
    if lr is None:
        raise ValueError("build_state needs a resolved config (config.resolve sets the LR)")

    def make_tx(factor: float) -> tuple[optax.GradientTransformation, optax.Schedule]:
        base = make_schedule(cfg.schedule, lr * factor, cfg.steps, cfg.warmup, cfg.min_lr_ratio,
                             cfg.decay_fraction)
        tx = make_optimizer(cfg, base, params)
        if cfg.on_instability != "stop":
            tx = spike_guard(tx, cfg.spike_window, cfg.spike_threshold)
        return tx, base

    tx, _ = make_tx(lr_factor)
    graphdef, state = init_state(task.model, tx, trainable)
    return task, graphdef, state, make_tx


def evaluate(eval_step: Callable, state: TrainState, batches: list) -> dict[str, float]:
    """Mean loss and accuracy over the fixed eval batches, and the perplexity exp(loss)."""
    outs = [eval_step(state, b) for b in batches]
    loss = float(np.mean([float(o["loss"]) for o in outs]))
    acc = float(np.mean([float(o["accuracy"]) for o in outs]))
    return {"eval/loss": loss, "eval/ppl": math.exp(min(loss, 50.0)), "eval/accuracy": acc}
