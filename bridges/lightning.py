"""PyTorch Lightning callback: a thin wrapper over `TorchMonitor`.

    trainer = L.Trainer(..., callbacks=[LightningCallback("runs/pl")])

`log_dir` defaults as `TorchMonitor`'s does: `$NTJAX_RUN_DIR`, else a fresh `runs/<model class>-<time>`.

Gradients are read in `on_before_optimizer_step`, which Lightning calls before it clips them, so
`train/grad_norm` is the norm before clipping. The loss is the one handed to `backward` (summed over
accumulated micro-batches, which Lightning has already divided by their number). Validation metrics
logged as `val_<name>` / `val/<name>` become `eval/<name>`. The first optimizer is monitored.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from lightning.pytorch.callbacks import Callback

from ntjax.bridges.torch import TorchMonitor, first_tensor
from ntjax.diagnostics.runtable import normalise_name, split_of


class LightningCallback(Callback):
    """Writes `metrics.jsonl` and `config.json` for a `lightning.Trainer.fit` run (global rank 0 only)."""

    def __init__(self, log_dir: str | os.PathLike | None = None, *, backends: str | Sequence[str] = ("jsonl",),
                 sample_every: int = 50, resume: bool = False):
        self.log_dir, self.backends, self.sample_every, self.resume = log_dir, backends, sample_every, resume
        self.monitor: TorchMonitor | None = None
        self._loss: torch.Tensor | None = None
        self._samples = 0

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero and trainer.optimizers:
            self.monitor = TorchMonitor(pl_module, trainer.optimizers[0], self.log_dir,
                                        backends=self.backends, sample_every=self.sample_every,
                                        resume=self.resume or getattr(trainer, "ckpt_path", None) is not None)
            self.log_dir, self.resume = self.monitor.log_dir, True  # a later fit continues this run

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        t = first_tensor(batch)
        self._samples += int(t.shape[0]) if t is not None and t.dim() > 0 else 0

    def on_before_backward(self, trainer, pl_module, loss):
        loss = loss.detach().float()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.monitor is None:
            return
        self.monitor.log(trainer.global_step, self._loss, batch_size=self._samples or None)
        self._loss, self._samples = None, 0

    def on_validation_end(self, trainer, pl_module):
        if self.monitor is None or trainer.sanity_checking:
            return
        named = {normalise_name(k): v for k, v in trainer.callback_metrics.items()}
        evals = {k: float(v) for k, v in named.items() if split_of(k) == "eval"}
        if evals:
            self.monitor.log_eval(trainer.global_step, evals)

    def on_train_end(self, trainer, pl_module):
        self._close()

    def on_exception(self, trainer, pl_module, exception):
        self._close("crashed", f"{type(exception).__name__}: {exception}")

    def _close(self, state: str = "finished", reason: str | None = None) -> None:
        if self.monitor is not None:
            self.monitor.close(state, reason)
            self.monitor = None
