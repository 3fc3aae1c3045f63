"""PyTorch bridge: a user's own training loop writes the same run folder as `ntjax train`.

    monitor = TorchMonitor(model, optimizer, log_dir="runs/torch")
    ...
    loss.backward()
    monitor.log(step, loss)          # after backward, before optimizer.step()
    optimizer.step()
    ...
    monitor.close()

Every step: loss, LR per param group, global gradient norm (before clipping: the total that
`torch.nn.utils.clip_grad_norm_` returns), throughput, a non-finite flag. Every `sample_every` steps also:
per-parameter gradient norms, update/parameter ratios (the change `optimizer.step()` made), per-layer
activation mean/std and `nn.MultiheadAttention` entropy (forward hooks armed only for that step's
forward pass, so other steps pay nothing for them). The numbers come from `ntjax.diagnostics`, the
code that measures ntjax's own runs (`to_jax` says how tensors reach it). With `torch.amp.GradScaler`,
call `scaler.unscale_(optimizer)` before `log` so the norms are of the true gradients.

`HFTrainerCallback` (transformers) and `LightningCallback` (lightning) are thin wrappers over the
monitor, imported from here on first use so that importing this module does not import them.
`lr_find` runs the LR range test of `ntjax lr-find` on a PyTorch model.
"""
from __future__ import annotations

import copy
import math
import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np
import torch

from ntjax.bridges import lr_ramp, stats
from ntjax.bridges.record import StepRecorder, warn_nonfinite

MAX_SUMMARY_MODULES = 200
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16, torch.int32, torch.int64)


def to_jax(t: torch.Tensor) -> jax.Array | np.ndarray:
    """A torch tensor as an input to a jitted JAX function.

    CPU tensors of a numpy dtype go as numpy views (no copy on the torch side): measured here, that is
    several times cheaper per tensor than `jax.dlpack.from_dlpack`, whose fixed cost dominates for the
    many small tensors of a model. Other tensors (bfloat16, accelerator tensors) go by DLPack, through
    host memory when JAX itself runs on the CPU.
    """
    t = t.detach()
    if t.device.type == "cpu" and t.dtype in _NUMPY_DTYPES:
        return t.numpy()
    if t.device.type != "cpu" and jax.default_backend() == "cpu":
        t = t.cpu()
    return jax.dlpack.from_dlpack(t)


def first_tensor(x: Any) -> torch.Tensor | None:
    """The first tensor in a module's output (a tensor, a tuple/list, or a dict-like model output)."""
    if isinstance(x, torch.Tensor):
        return x
    values = x.values() if isinstance(x, Mapping) else x if isinstance(x, (tuple, list)) else ()
    return next((t for t in map(first_tensor, values) if t is not None), None)


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside wrappers such as accelerate's `AcceleratedOptimizer` (they hold it as
    `.optimizer` and lack the step hooks)."""
    while not hasattr(optimizer, "_optimizer_step_post_hooks") and hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    return optimizer


def describe_group(group: Mapping[str, Any]) -> dict[str, Any]:
    """One param group's hyperparameters. `lr` is the base LR a scheduler scales (torch's `initial_lr`,
    set once a scheduler exists), `lr_at_start` the value when monitoring began, if different."""
    hyper = {k: v for k, v in group.items() if k not in ("params", "initial_lr")}
    if "initial_lr" in group and float(group["initial_lr"]) != float(group["lr"]):
        hyper["lr"], hyper["lr_at_start"] = group["initial_lr"], group["lr"]
    return {**hyper, "n_params": sum(p.numel() for p in group["params"])}


def describe_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's class and every hyperparameter of every param group (lr, betas, eps, weight decay...)."""
    return {"class": type(optimizer).__name__, "param_groups": [describe_group(g) for g in optimizer.param_groups]}


def describe_model(model: torch.nn.Module) -> dict[str, Any]:
    """The model's class, parameter counts and a module tree summary (name, class, parameters)."""
    modules = [{"name": name, "class": type(m).__name__, "parameters": sum(p.numel() for p in m.parameters())}
               for name, m in list(model.named_modules())[1:MAX_SUMMARY_MODULES + 1]]
    return {"class": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "modules": modules}


def run_config(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {"framework": "pytorch", "torch_version": torch.__version__,
            "model": describe_model(model), "optimizer": describe_optimizer(optimizer)}


class TorchMonitor:
    """Per-step training diagnostics of a PyTorch model and optimizer, written to `log_dir`."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, log_dir: str | os.PathLike,
                 *, backends: str | Sequence[str] = ("jsonl",), sample_every: int = 50,
                 batch_size: int | None = None, run_name: str | None = None):
        optimizer = unwrap_optimizer(optimizer)
        self.model, self.optimizer = model, optimizer
        self.sample_every = max(1, int(sample_every))
        self.batch_size = batch_size
        self.recorder = StepRecorder(log_dir, backends, run_config(model, optimizer), run_name)
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._seen_batch: int | None = None
        self._steps_logged = 0
        self._snapshot: dict[str, torch.Tensor] | None = None
        self._acts: dict[str, torch.Tensor] = {}
        self._attn: dict[str, torch.Tensor] = {}
        self._sample_hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._hooks = [optimizer.register_step_post_hook(self._after_optimizer_step),
                       model.register_forward_pre_hook(self._see_batch, with_kwargs=True)]
        self._arm()  # the first logged step is always sampled

    @property
    def log_dir(self):
        return self.recorder.log_dir

    def is_sampling(self, step: int) -> bool:
        return step % self.sample_every == 0

    def log(self, step: int, loss: torch.Tensor | float | None, *, batch_size: int | None = None,
            grad_norm_name: str = "train/grad_norm") -> dict[str, float]:
        """Record step `step`: call after `loss.backward()` and before `optimizer.step()`.

        `grad_norm_name` lets a caller that only sees clipped gradients say so in the name. Returns the
        step's metrics (the line is written once the optimizer step completes, or at the next call).
        """
        lr_ramp.torch_before(self)  # `ntjax lr-find --command`: the LR ramp sets this step's LR
        grads = {n: to_jax(p.grad) for n, p in self._params if p.grad is not None}
        sampling = self.is_sampling(step) or self._steps_logged == 0
        self._snapshot = None  # one left over means the last optimizer step was skipped (e.g. GradScaler)
        self._steps_logged += 1
        metrics, finite = stats.grad_metrics(grads, per_layer=sampling)
        metrics[grad_norm_name] = metrics.pop("train/grad_norm")
        loss_value = None if loss is None else float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        if loss_value is not None:
            metrics["train/loss"] = loss_value
        for i, group in enumerate(self.optimizer.param_groups):
            metrics["train/lr" if i == 0 else f"train/lr/group{i}"] = float(group["lr"])
        nonfinite = not finite or (loss_value is not None and not math.isfinite(loss_value))
        metrics["train/nonfinite"] = float(nonfinite)
        if nonfinite:
            warn_nonfinite(step, loss_value, None if finite else stats.first_nonfinite_name(grads), "pytorch")
        metrics.update(self.recorder.throughput(batch_size or self.batch_size or self._seen_batch))
        if sampling:
            metrics.update(self._sampled_metrics())
            self._snapshot = {n: p.detach().clone() for n, p in self._params}
        self._acts, self._attn = {}, {}
        self.recorder.stage(step, metrics)
        self._disarm()
        if self.is_sampling(step + 1):
            self._arm()
        lr_ramp.torch_after(self, loss_value)  # ends the run once the range test is over
        return metrics

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write eval metrics: `{"loss": v, "acc": a}` -> `eval/loss`, `eval/acc`."""
        self.recorder.log_eval(step, {k: float(v) for k, v in metrics.items()})

    def close(self) -> None:
        """Write the pending line, remove every hook and close the logging backends."""
        self._disarm()
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.recorder.close()

    def __enter__(self) -> "TorchMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- hooks -------------------------------------------------------------------------------------
    def _see_batch(self, module, args, kwargs) -> None:
        t = first_tensor((args, kwargs))
        if module.training and t is not None and t.dim() > 0:
            self._seen_batch = int(t.shape[0])

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._snapshot is not None:
            before = {n: to_jax(t) for n, t in self._snapshot.items()}
            after = {n: to_jax(p) for n, p in self._params}
            self.recorder.add(stats.update_ratio_metrics(before, after))
            self._snapshot = None
        self.recorder.flush()

    def _arm(self) -> None:
        """Hook every module that owns parameters (its output's mean/std) and every multi-head attention
        (its head-wise attention weights) for the next training forward pass."""
        for name, m in self.model.named_modules():
            if isinstance(m, torch.nn.MultiheadAttention):
                self._sample_hooks.append(m.register_forward_pre_hook(_ask_for_weights, with_kwargs=True))
                self._sample_hooks.append(m.register_forward_hook(self._keep_attention(name)))
            if name and any(True for _ in m.parameters(recurse=False)):
                self._sample_hooks.append(m.register_forward_hook(self._keep_activation(name)))

    def _disarm(self) -> None:
        for h in self._sample_hooks:
            h.remove()
        self._sample_hooks = []

    def _keep_activation(self, name: str):
        def hook(module, args, output) -> None:
            t = first_tensor(output)
            if module.training and t is not None and t.is_floating_point():
                self._acts[name] = t.detach().clone()  # a later in-place op must not change what we measure
        return hook

    def _keep_attention(self, name: str):
        def hook(module, args, output) -> None:
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if module.training and weights is not None and weights.dim() >= 3:  # [B,] H, Q, K
                self._attn[name] = weights.detach().clone().reshape(-1, *weights.shape[-3:])
        return hook

    def _sampled_metrics(self) -> dict[str, float]:
        metrics = stats.activation_metrics({n: to_jax(t) for n, t in self._acts.items()}) if self._acts else {}
        probs = {n: to_jax(t) for n, t in self._attn.items()}
        if probs:
            metrics.update(stats.attention_metrics(probs))
        return metrics


def _ask_for_weights(module, args, kwargs):
    """Make a multi-head attention return its per-head weights on a sampled step (slower path, once)."""
    return args, {**kwargs, "need_weights": True, "average_attn_weights": False}


def __getattr__(name: str):
    if name == "HFTrainerCallback":
        from ntjax.bridges.hf import HFTrainerCallback
        return HFTrainerCallback
    if name == "LightningCallback":
        from ntjax.bridges.lightning import LightningCallback
        return LightningCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- LR range test -----------------------------------------------------------------------------------
# `ntjax lr-find` for a PyTorch model and optimizer: the math is ntjax.lr_find's; this only runs the steps
# and puts everything back afterwards.

def lr_find(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches, loss_fn, *,
            min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 100, beta: float | None = None,
            stop_factor: float = 4.0, plot: str | os.PathLike | None = None) -> dict:
    """Learning-rate range test on `model` with `optimizer`: `loss_fn(model, batch)` returns the loss of
    one batch; `batches` is iterated (cycled if shorter than `steps`). Each param group's LR follows the
    exponential ramp (scaled by its share of the largest group LR). Afterwards the model's and optimizer's
    state dicts, the gradients, the training mode and torch's RNG state are restored exactly.

    Returns `ntjax.lr_find.to_dict` (suggestions, recommended LR, curve), plus the plot path if asked.
    """
    import copy
    import itertools

    from ntjax import lr_find as rt

    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    saved_rng, was_training = torch.get_rng_state(), model.training
    base = [g["lr"] for g in optimizer.param_groups]
    scales = [b / max(base) for b in base] if max(base) > 0 else [1.0] * len(base)
    stream = itertools.cycle(batches)

    def step(i: int, lr: float) -> float:
        for group, scale in zip(optimizer.param_groups, scales):
            group["lr"] = lr * scale
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, next(stream))
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    model.train()
    try:
        test = rt.run_range_test(step, rt.exponential_lrs(min_lr, max_lr, steps), beta=beta, stop_factor=stop_factor)
    finally:
        with torch.no_grad():
            model.load_state_dict(saved_model)
            for p, g in zip(model.parameters(), saved_grads):
                p.grad = g
        optimizer.load_state_dict(saved_opt)
        torch.set_rng_state(saved_rng)
        model.train(was_training)
    suggestion = rt.suggest(test)
    out = rt.to_dict(test, suggestion)
    if plot is not None:
        out["plot"] = str(rt.plot_range_test(test, suggestion, plot, title="LR range test (PyTorch)"))
    return out
