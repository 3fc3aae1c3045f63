"""Hugging Face `transformers.Trainer` callback: a thin wrapper over `TorchMonitor`.

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[HFTrainerCallback("runs/hf")])

`log_dir` defaults as `TorchMonitor`'s does: `$NTJAX_RUN_DIR`, else a fresh `runs/<model class>-<time>`.

The Trainer clips gradients before any callback sees them, so when `max_grad_norm > 0` the monitor's
norms are of the clipped gradients: its global norm is written as `train/grad_norm_clipped`, and
`train/grad_norm` (before clipping) comes from the Trainer's own logs (every `logging_steps`).
Per-parameter `grad_norm/<name>` are then the clipped ones (scaled by one common factor, so their
relative sizes are exact). The loss is read from the model's output (`outputs.loss`) on each forward pass.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from ntjax.bridges.torch import BridgeHook, TorchMonitor


def output_loss(output: Any) -> torch.Tensor | None:
    """The `loss` of a transformers model output (a `ModelOutput`, a dict or a tuple-less object)."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None


class HFTrainerCallback(TrainerCallback):
    """Writes `metrics.jsonl` and `config.json` for a `transformers.Trainer` run (rank 0 only)."""

    def __init__(self, log_dir: str | os.PathLike | None = None, *, backends: str | Sequence[str] = ("jsonl",),
                 sample_every: int = 50, resume: bool = False):
        self.log_dir, self.backends, self.sample_every, self.resume = log_dir, backends, sample_every, resume
        self.monitor: TorchMonitor | None = None
        self._losses: list[torch.Tensor] = []
        self._loss_hook = None
        self._clipping = False

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if not state.is_world_process_zero or model is None or optimizer is None:
            return
        self._clipping = bool(args.max_grad_norm and args.max_grad_norm > 0)
        resume = self.resume or bool(getattr(args, "resume_from_checkpoint", None))
        self.monitor = monitor = TorchMonitor(model, optimizer, self.log_dir, backends=self.backends,
                                              sample_every=self.sample_every, resume=resume)
        self.log_dir, self.resume = monitor.log_dir, True  # a later fit continues this run
        self._loss_hook = model.register_forward_hook(BridgeHook(self._keep_loss))  # pickles as a no-op

    def _keep_loss(self, module, args, output) -> None:
        loss = output_loss(output)
        if module.training and loss is not None:
            self._losses.append(loss.detach())

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.monitor is None:
            return
        loss = torch.stack(self._losses).float().mean() if self._losses else None
        self._losses = []
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
        self.monitor.log(state.global_step + 1, loss, batch_size=batch,
                         grad_norm_name="train/grad_norm_clipped" if self._clipping else "train/grad_norm")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.monitor is None or not logs:
            return
        extra = {}
        if self._clipping and isinstance(logs.get("grad_norm"), (int, float)):
            extra["train/grad_norm"] = float(logs["grad_norm"])
        if extra:
            self.monitor.recorder.flush()
            self.monitor.recorder.logger.log(state.global_step, extra)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.monitor is None or not metrics:
            return
        numeric = {k.removeprefix("eval_"): v for k, v in metrics.items()
                   if isinstance(v, (int, float)) and k != "epoch"}
        self.monitor.log_eval(state.global_step, numeric)

    def on_train_end(self, args, state, control, **kwargs):
        if self._loss_hook is not None:
            self._loss_hook.remove()
            self._loss_hook = None
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
