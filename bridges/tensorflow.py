"""TensorFlow / Keras bridge: a custom `tf.GradientTape` loop or `model.fit` writes the same run folder as
`ntjax train`.

    monitor = TFMonitor("runs/tf", model=model, optimizer=optimizer)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    monitor.log(step, loss, grads, model.trainable_variables)    # before apply_gradients
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    ...
    monitor.close()

or `model.fit(..., callbacks=[KerasCallback("runs/keras")])` (Keras 3, TensorFlow backend).

Every step: loss, LR, global gradient norm (`tf.linalg.global_norm` of the gradients, before any
clipping), throughput, a non-finite flag; every `sample_every` steps also per-variable gradient norms and
update/variable ratios. A step's line is written when the next step is logged (its update is known
then) or at `close()`. The numbers come from `ntjax.diagnostics.tree_stats`: TF tensors go to JAX by DLPack.
TensorFlow is imported on first use, not with this module.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import jax

from ntjax.bridges import stats
from ntjax.bridges.record import StepRecorder, warn_nonfinite
from ntjax.core.logger import strict_json

MAX_SUMMARY_LAYERS = 200


def to_jax(t: Any) -> jax.Array:
    """A TF tensor, variable or `IndexedSlices` as a JAX array (the TF tensor itself goes to DLPack)."""
    import tensorflow as tf
    return jax.dlpack.from_dlpack(tf.convert_to_tensor(t))


def variable_names(variables: Sequence[Any]) -> list[str]:
    """Unique readable names: Keras 3 `path` (`dense/kernel`), else the TF name without `:0`."""
    names: list[str] = []
    for v in variables:
        name = str(getattr(v, "path", None) or v.name).removesuffix(":0")
        names.append(name if name not in names else f"{name}_{len(names)}")
    return names


def current_lr(optimizer: Any) -> float | None:
    """The optimizer's learning rate now (a schedule evaluated at the current iteration)."""
    lr = getattr(optimizer, "learning_rate", None)
    if lr is None:
        return None
    if callable(lr):
        lr = lr(optimizer.iterations)
    try:
        return float(lr)
    except (TypeError, ValueError):
        return None


def describe(model: Any = None, optimizer: Any = None) -> dict[str, Any]:
    """`config.json` evidence: the optimizer's class and config, the model's class, size and layers."""
    import tensorflow as tf
    config: dict[str, Any] = {"framework": "tensorflow", "tensorflow_version": tf.__version__}
    if optimizer is not None:
        cfg = optimizer.get_config() if hasattr(optimizer, "get_config") else {}
        config["optimizer"] = {"class": type(optimizer).__name__, "param_groups": [strict_json(cfg)]}
    if model is not None:
        layers = [{"name": layer.name, "class": type(layer).__name__, "parameters": int(layer.count_params())}
                  for layer in getattr(model, "layers", [])[:MAX_SUMMARY_LAYERS] if layer.built]
        n = sum(int(math.prod(v.shape)) for v in model.weights)
        trainable = sum(int(math.prod(v.shape)) for v in model.trainable_weights)
        config["model"] = {"class": type(model).__name__, "parameters": n, "trainable_parameters": trainable,
                           "modules": layers}
    return config


class TFMonitor:
    """Per-step training diagnostics of a TensorFlow loop, written to `log_dir`."""

    def __init__(self, log_dir: str | os.PathLike, *, model: Any = None, optimizer: Any = None,
                 backends: str | Sequence[str] = ("jsonl",), sample_every: int = 50,
                 batch_size: int | None = None, run_name: str | None = None):
        self.optimizer = optimizer
        self.sample_every = max(1, int(sample_every))
        self.batch_size = batch_size
        self.recorder = StepRecorder(log_dir, backends, describe(model, optimizer), run_name)
        self._snapshot: tuple[list[str], list[Any], list[Any]] | None = None  # names, variables, values
        self._steps_logged = 0

    @property
    def log_dir(self):
        return self.recorder.log_dir

    def is_sampling(self, step: int) -> bool:
        return step % self.sample_every == 0 or self._steps_logged == 0

    def snapshot(self, variables: Sequence[Any]) -> None:
        """Keep the variables' values before the update (taken by `log` on sampled steps when not before)."""
        import tensorflow as tf
        self._snapshot = (variable_names(variables), list(variables),
                          [tf.identity(tf.convert_to_tensor(v)) for v in variables])

    def log(self, step: int, loss: Any, grads: Sequence[Any], variables: Sequence[Any], *,
            batch_size: int | None = None, lr: float | None = None) -> dict[str, float]:
        """Record step `step` from its loss and gradients (call before the optimizer applies them)."""
        if self.recorder.has_pending:  # the previous step's update has been applied since
            self.finish_step()
        sampling = self.is_sampling(step)
        self._steps_logged += 1
        pairs = [(n, g) for n, g in zip(variable_names(variables), grads) if g is not None]
        jgrads = {n: to_jax(g) for n, g in pairs}
        metrics, finite = stats.grad_metrics(jgrads, per_layer=sampling)
        loss_value = None if loss is None else float(loss)
        if loss_value is not None:
            metrics["train/loss"] = loss_value
        lr = lr if lr is not None else current_lr(self.optimizer)
        if lr is not None:
            metrics["train/lr"] = lr
        nonfinite = not finite or (loss_value is not None and not math.isfinite(loss_value))
        metrics["train/nonfinite"] = float(nonfinite)
        if nonfinite:
            warn_nonfinite(step, loss_value, None if finite else stats.first_nonfinite_name(jgrads), "tensorflow")
        metrics.update(self.recorder.throughput(batch_size or self.batch_size))
        if sampling and self._snapshot is None:
            self.snapshot(variables)
        elif not sampling:
            self._snapshot = None
        self.recorder.stage(step, metrics)
        return metrics

    def finish_step(self) -> None:
        """Add the update/variable ratios of the pending step (its update is applied now) and write it."""
        if self._snapshot is not None:
            names, variables, before = self._snapshot
            self._snapshot = None
            self.recorder.add(stats.update_ratio_metrics(
                {n: to_jax(b) for n, b in zip(names, before)}, {n: to_jax(v) for n, v in zip(names, variables)}))
        self.recorder.flush()

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write eval metrics: `{"loss": v, "accuracy": a}` -> `eval/loss`, `eval/accuracy`."""
        self.finish_step()
        self.recorder.log_eval(step, {k: float(v) for k, v in metrics.items()})

    def close(self) -> None:
        self.finish_step()
        self.recorder.close()

    def __enter__(self) -> "TFMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def __getattr__(name: str):
    if name == "KerasCallback":
        from ntjax.bridges.keras import KerasCallback
        return KerasCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
