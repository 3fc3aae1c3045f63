"""PyTorch bridge: a user's own training loop writes the same run folder as `ntjax train`.

    monitor = TorchMonitor(model, optimizer)     # log_dir: $NTJAX_RUN_DIR, else a fresh runs/<model>-<time>
    ...
    loss.backward()
    monitor.log(step, loss)          # after backward, before clipping and optimizer.step()
    optimizer.step()
    ...
    monitor.close()

No optimizer object (a hand-written SGD update): `TorchMonitor(model)` and `monitor.log(step, loss, lr=lr)`
before the update; the update is measured at the next `log` (or `close`).

Every step: loss, LR per param group, global gradient norm (before clipping: the total that
`torch.nn.utils.clip_grad_norm_` returns), throughput, a non-finite flag. Every `sample_every` steps also:
per-parameter gradient norms, update/parameter ratios (the change the update made), per-layer
activation mean/std and `nn.MultiheadAttention` entropy (forward hooks armed only for that step's
forward pass, so other steps pay nothing for them). With `torch.amp.GradScaler`, call
`scaler.unscale_(optimizer)` before `log` so the norms are of the true gradients.

Where the work happens: every statistic is reduced on the tensors' own device (`torch_device`: fused
per-tensor norms, activation mean/std, attention entropy, all as 0-d tensors), and one small vector per
device (the loss and one float per tensor) is copied to the host, where `ntjax.diagnostics.reduced` turns it into the
metrics. No gradient, parameter or activation is copied to the host, and no JAX runs here (JAX could take
the accelerator's memory).

Update ratios without doubling the model's memory: on a sampled step, a copy is kept of only as many
parameter tensors as fit in `snapshot_bytes` (64 MiB by default; one tensor larger than that is copied
alone), on their device; after the update, `before - after` is computed in place in that copy and reduced
to norms. The next sampled step takes the next tensors, round-robin, so a large model's tensors all get
their ratio over a few sampled steps, and the extra accelerator memory is bounded by
max(`snapshot_bytes`, the largest tensor) whatever the model's size.

Attaching a monitor never stops `torch.save(model)` or `copy.deepcopy(model)`: the hooks it puts on the
model pickle and copy as inert no-ops (the copy is not monitored).

`HFTrainerCallback` (transformers) and `LightningCallback` (lightning) are thin wrappers over the
monitor, imported from here on first use so that importing this module does not import them.
`lr_find` runs the LR range test of `ntjax lr-find` on a PyTorch model.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ntjax.bridges import lr_ramp, stats
from ntjax.bridges import torch_device as dev
from ntjax.bridges.record import StepRecorder, warn_nonfinite

MAX_SUMMARY_MODULES = 200
DEFAULT_SNAPSHOT_BYTES = 64 * 2**20


class InertHook:
    """What a monitor's hook becomes in a pickled or deep-copied model: a no-op."""

    def __call__(self, *args, **kwargs) -> None:
        return None


class BridgeHook:
    """A hook calling back into the monitor. Pickles and deep-copies as `InertHook`: `torch.save(model)` and
    `copy.deepcopy(model)` copy the model's hook dicts, and the monitor behind a hook (its open log files,
    the optimizer) must not go along, nor keep logging from a copy."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        return (InertHook, ())

    def __deepcopy__(self, memo) -> InertHook:
        return InertHook()


def first_tensor(x: Any) -> torch.Tensor | None:
    """The first tensor in a module's output (a tensor, a tuple/list, or a dict-like model output)."""
    if isinstance(x, torch.Tensor):
        return x
    values = x.values() if isinstance(x, Mapping) else x if isinstance(x, (tuple, list)) else ()
    return next((t for t in map(first_tensor, values) if t is not None), None)


def infer_batch_dim(model: torch.nn.Module) -> int | None:
    """Which dimension of the model's first input is the batch: 1 when its recurrent and attention layers
    are all sequence-first (`batch_first=False`, the default of `nn.LSTM`/`nn.GRU`/`nn.Transformer`), 0
    when they are batch-first or there are none, None when they disagree (then pass `batch_size=`)."""
    flags = {bool(m.batch_first) for m in model.modules()
             if isinstance(m, (torch.nn.RNNBase, torch.nn.MultiheadAttention)) and hasattr(m, "batch_first")}
    if not flags or flags == {True}:
        return 0
    return 1 if flags == {False} else None
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


def run_config(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """`config.json`: framework, model summary and, when there is an optimizer object, its settings."""
    config = {"framework": "pytorch", "torch_version": torch.__version__, "model": describe_model(model)}
    if optimizer is not None:
        config["optimizer"] = describe_optimizer(optimizer)
    return config



class TorchMonitor:
    """Per-step training diagnostics of a PyTorch model (and optimizer, if there is one), written to
    `log_dir` (default: `$NTJAX_RUN_DIR`, else a fresh `runs/<model class>-<date>-<time>`). A folder whose
    `metrics.jsonl` already holds a run is refused unless `resume=True`.

    Throughput (`train/throughput`, samples/s) counts, in this order of precedence: the `batch_size` given
    to `log`, the one given here, else the samples the model's training forward passes saw since the
    previous `log` (summed, so gradient accumulation counts every micro-batch), read from dimension
    `batch_dim` of the first input tensor. `batch_dim` defaults to `infer_batch_dim(model)`: 1 for a model
    whose recurrent/attention layers are sequence-first (`batch_first=False`), else 0; never the sequence
    length. When that cannot be told (layers disagree) and no `batch_size` is given, no throughput is logged.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                 log_dir: str | os.PathLike | None = None, *, backends: str | Sequence[str] = ("jsonl",),
                 sample_every: int = 50, batch_size: int | None = None, batch_dim: int | None | str = "auto",
                 run_name: str | None = None, resume: bool = False,
                 snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES):
        optimizer = unwrap_optimizer(optimizer) if optimizer is not None else None
        self.model, self.optimizer = model, optimizer
        self.sample_every = max(1, int(sample_every))
        self.batch_size = batch_size
        self.batch_dim = infer_batch_dim(model) if batch_dim == "auto" else batch_dim
        self.snapshot_bytes = int(snapshot_bytes)
        self.recorder = StepRecorder(log_dir, backends, run_config(model, optimizer), run_name, resume=resume,
                                     name=type(model).__name__)
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._samples_seen = 0
        self._steps_logged = 0
        self._cursor = 0  # the next parameter tensor whose update a sampled step measures
        self._snapshot: tuple[list[str], list[torch.Tensor], list[torch.Tensor]] | None = None
        self._acts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._attn: dict[str, torch.Tensor] = {}
        self._sample_hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._hooks = [model.register_forward_pre_hook(BridgeHook(self._see_batch), with_kwargs=True)]
        if optimizer is not None:
            self._hooks.append(optimizer.register_step_post_hook(BridgeHook(self._after_optimizer_step)))
        self._arm()  # the first logged step is always sampled

    @property
    def log_dir(self):
        return self.recorder.log_dir

    @property
    def step(self) -> int:
        """How many steps have been logged: a step counter for a script without one (`log(monitor.step, loss)`)."""
        return self._steps_logged

    def is_sampling(self, step: int) -> bool:
        return step % self.sample_every == 0

    def log(self, step: int, loss: torch.Tensor | float | None, *, lr: float | None = None,
            batch_size: int | None = None, grad_norm_name: str = "train/grad_norm") -> dict[str, float]:
        """Record step `step`: call after `loss.backward()` and before clipping and the update.

        `lr` is the step's learning rate when there is no optimizer object (or to override its groups').
        `grad_norm_name` lets a caller that only sees clipped gradients say so in the name. Returns the
        step's metrics (the line is written once the optimizer step completes, or at the next call).
        """
        lr_ramp.torch_before(self)  # `ntjax lr-find --command`: the LR ramp sets this step's LR
        if self.optimizer is None:
            self._measure_update()  # a hand-written update has run since the last log
        self._snapshot = None  # one left over means the last optimizer step was skipped (e.g. GradScaler)
        sampling = self.is_sampling(step) or self._steps_logged == 0
        self._steps_logged += 1
        grads = [(n, p.grad) for n, p in self._params if p.grad is not None]
        names = [n for n, _ in grads]
        acts, attn = list(self._acts.items()), list(self._attn.items())
        parts = dev.norms([g for _, g in grads])
        if sampling:
            parts += [x for _, pair in acts for x in pair] + [e for _, e in attn]
        has_loss_tensor = isinstance(loss, torch.Tensor)
        if has_loss_tensor:
            parts.append(dev.scalar(loss))
        host = dev.to_host(parts)  # the step's one small device-to-host copy
        n = len(names)
        metrics, bad = stats.grad_metrics(names, host[:n] ** 2, per_layer=sampling)
        metrics[grad_norm_name] = metrics.pop("train/grad_norm")
        loss_value = float(host[-1]) if has_loss_tensor else None if loss is None else float(loss)
        if loss_value is not None:
            metrics["train/loss"] = loss_value
        if lr is not None:
            metrics["train/lr"] = float(lr)
        elif self.optimizer is not None:
            for i, group in enumerate(self.optimizer.param_groups):
                metrics["train/lr" if i == 0 else f"train/lr/group{i}"] = float(group["lr"])
        nonfinite = bad is not None or (loss_value is not None and not math.isfinite(loss_value))
        metrics["train/nonfinite"] = float(nonfinite)
        if nonfinite:
            warn_nonfinite(step, loss_value, bad, "pytorch")
        samples = batch_size or self.batch_size or self._samples_seen
        self._samples_seen = 0
        metrics.update(self.recorder.throughput(samples))
        if sampling:
            k = n + 2 * len(acts)
            metrics.update(stats.activation_metrics([a for a, _ in acts], host[n:k]))
            metrics.update(stats.attention_metrics([a for a, _ in attn], host[k:k + len(attn)]))
            self._take_snapshot()
        self._acts, self._attn = {}, {}
        self.recorder.stage(step, metrics)
        self._disarm()
        if self.is_sampling(step + 1):
            self._arm()
        lr_ramp.torch_after(self, loss_value)  # ends the run once the range test is over
        return metrics

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write eval metrics: `{"loss": v, "acc": a}` -> `eval/loss`, `eval/acc`."""
        if self.optimizer is None:
            self._measure_update()
        self.recorder.log_eval(step, {k: float(v) for k, v in metrics.items()})

    def close(self, state: str = "finished", reason: str | None = None) -> None:
        """Write the pending line, remove every hook, close the logging backends and mark the run's end
        (`status.json`: finished, or crashed)."""
        if self.optimizer is None and state == "finished":
            self._measure_update()
        self._snapshot = None
        self._disarm()
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.recorder.close(state, reason)

    def __enter__(self) -> TorchMonitor:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close("crashed", f"{exc_type.__name__}: {exc}")

    # -- update ratios -----------------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        """Copy the next parameter tensors (round-robin, within `snapshot_bytes`) before the update."""
        chosen: list[tuple[str, torch.Tensor]] = []
        used = 0
        for k in range(len(self._params)):
            name, p = self._params[(self._cursor + k) % len(self._params)]
            size = p.numel() * p.element_size()
            if chosen and used + size > self.snapshot_bytes:
                break
            chosen.append((name, p))
            used += size
        if not chosen:
            return
        self._cursor = (self._cursor + len(chosen)) % len(self._params)
        with torch.no_grad():
            self._snapshot = ([n for n, _ in chosen], [p for _, p in chosen], [p.detach().clone() for _, p in chosen])

    def _measure_update(self) -> None:
        """The pending step's update ratios, from the snapshot and the parameters now: norms of `before`,
        then `before - after` in place in the snapshot (no second copy), then its norms."""
        if self._snapshot is None:
            return
        names, params, before = self._snapshot
        self._snapshot = None
        with torch.no_grad():
            param_norms = dev.norms(before)
            torch._foreach_sub_(before, [p.detach() for p in params])
            update_norms = dev.norms(before)
            host = dev.to_host(update_norms + param_norms)
        self.recorder.add(stats.update_ratio_metrics(names, host[:len(names)] ** 2, host[len(names):] ** 2))

    # -- hooks -------------------------------------------------------------------------------------
    def _see_batch(self, module, args, kwargs) -> None:
        t = first_tensor((args, kwargs))
        if module.training and t is not None and self.batch_dim is not None and t.dim() > self.batch_dim:
            self._samples_seen += int(t.shape[self.batch_dim])

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._measure_update()
        self.recorder.flush()

    def _arm(self) -> None:
        """Hook every module that owns parameters (its output's mean/std) and every multi-head attention
        (its head-wise attention weights) for the next training forward pass."""
        for name, m in self.model.named_modules():
            if isinstance(m, torch.nn.MultiheadAttention):
                self._sample_hooks.append(m.register_forward_pre_hook(_ask_for_weights, with_kwargs=True))
                self._sample_hooks.append(m.register_forward_hook(BridgeHook(self._keep_attention(name))))
            if name and any(True for _ in m.parameters(recurse=False)):
                self._sample_hooks.append(m.register_forward_hook(BridgeHook(self._keep_activation(name))))

    def _disarm(self) -> None:
        for h in self._sample_hooks:
            h.remove()
        self._sample_hooks = []

    def _keep_activation(self, name: str):
        def hook(module, args, output) -> None:
            t = first_tensor(output)
            if module.training and t is not None and t.is_floating_point() and t.numel():
                self._acts[name] = dev.mean_std(t)  # reduced now, on the device: nothing is kept
        return hook

    def _keep_attention(self, name: str):
        def hook(module, args, output) -> None:
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if module.training and weights is not None and weights.dim() >= 3:  # [B,] H, Q, K
                self._attn[name] = dev.attention_entropy(weights)
        return hook


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
# `ntjax lr-find` for a PyTorch model and optimizer: the math is ntjax.diagnostics.lr_range's; this only runs the steps
# and puts everything back afterwards.

def lr_find(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches, loss_fn, *,
            min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 100, beta: float | None = None,
            stop_factor: float = 4.0, plot: str | os.PathLike | None = None) -> dict:
    """Learning-rate range test on `model` with `optimizer`: `loss_fn(model, batch)` returns the loss of
    one batch; `batches` is iterated (cycled if shorter than `steps`). Each param group's LR follows the
    exponential ramp (scaled by its share of the largest group LR). Afterwards the model's and optimizer's
    state dicts, the gradients, the training mode and torch's RNG state are restored exactly.

    Returns `ntjax.diagnostics.lr_range.to_dict` (suggestions, recommended LR, curve), plus the plot path if asked.
    """
    import copy
    import itertools

    from ntjax.diagnostics import lr_range as rt
    from ntjax.viz.lr_range import plot_range_test
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
        out["plot"] = str(plot_range_test(test, suggestion, plot, title="LR range test (PyTorch)"))
    return out
