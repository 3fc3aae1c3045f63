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
then) or at `close()`. TensorFlow is imported on first use, not with this module.

Where the work happens: TensorFlow reduces every gradient to its sum of squares on the device it lives
on (one compiled `tf.function`), and one small vector (those sums and the loss) is copied to the host,
where `ntjax.diagnostics.reduced` makes the metrics: no gradient or variable is copied to the host, and no JAX runs.
Update ratios copy, on a sampled step, only as many variables as fit in `snapshot_bytes` (round-robin
over sampled steps, as `TorchMonitor` does), so the extra device memory stays bounded.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ntjax.bridges import stats
from ntjax.bridges.record import StepRecorder, warn_nonfinite
from ntjax.core.logger import strict_json

MAX_SUMMARY_LAYERS = 200
DEFAULT_SNAPSHOT_BYTES = 64 * 2**20
_COMPILED: dict[str, Any] = {}


def dense_values(g: Any) -> Any:
    """A gradient as a tensor whose sum of squares is the dense gradient's: an `IndexedSlices` has its
    rows for repeated indices summed first (small: one row per distinct index), never densified."""
    import tensorflow as tf
    if isinstance(g, tf.IndexedSlices):
        unique, position = tf.unique(g.indices)
        return tf.math.unsorted_segment_sum(g.values, position, tf.shape(unique)[0])
    return tf.convert_to_tensor(g)


def _sums_of_squares():
    """The compiled per-tensor sum of squares (float32), stacked into one vector on the device."""
    if "sumsq" not in _COMPILED:
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def sumsq(tensors):
            return tf.stack([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors])
        _COMPILED["sumsq"] = sumsq
    return _COMPILED["sumsq"]


def _update_sumsq(before: Any, variable: Any) -> Any:
    """Sum of squares of one variable's update, on its device (one variable's temporary at a time)."""
    import tensorflow as tf
    return tf.reduce_sum(tf.square(tf.cast(before - tf.convert_to_tensor(variable), tf.float32)))


def reduce_to_host(tensors: Sequence[Any], extra: Sequence[Any] = ()) -> np.ndarray:
    """Each tensor's sum of squares, then the `extra` scalars, as one float64 host vector: the step's
    only device-to-host copy."""
    import tensorflow as tf
    parts = []
    if tensors:
        parts.append(_sums_of_squares()([dense_values(t) for t in tensors]))
    parts += [tf.reshape(tf.cast(x, tf.float32), [1]) for x in extra]
    if not parts:
        return np.zeros(0)
    vector = tf.concat(parts, 0).numpy()
    stats.HOST_TRANSFER.add(vector.nbytes)
    return vector.astype(np.float64)


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

    def __init__(self, log_dir: str | os.PathLike | None = None, *, model: Any = None, optimizer: Any = None,
                 backends: str | Sequence[str] = ("jsonl",), sample_every: int = 50,
                 batch_size: int | None = None, run_name: str | None = None, resume: bool = False,
                 snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES):
        self.optimizer = optimizer
        self.sample_every = max(1, int(sample_every))
        self.batch_size = batch_size
        self.snapshot_bytes = int(snapshot_bytes)
        self.recorder = StepRecorder(log_dir, backends, describe(model, optimizer), run_name, resume=resume,
                                     name=type(model).__name__ if model is not None else "tf")
        self._snapshot: tuple[list[str], list[Any], list[Any]] | None = None  # names, variables, values
        self._cursor = 0  # the next variable whose update a sampled step measures
        self._steps_logged = 0

    @property
    def log_dir(self):
        return self.recorder.log_dir

    def is_sampling(self, step: int) -> bool:
        return step % self.sample_every == 0 or self._steps_logged == 0

    def snapshot(self, variables: Sequence[Any]) -> None:
        """Keep the values before the update of the next variables (round-robin) that fit in
        `snapshot_bytes` (taken by `log` on sampled steps when not before)."""
        import tensorflow as tf
        names, variables = variable_names(variables), list(variables)
        chosen, used = [], 0
        for k in range(len(variables)):
            i = (self._cursor + k) % len(variables)
            size = int(math.prod(variables[i].shape)) * tf.as_dtype(variables[i].dtype).size
            if chosen and used + size > self.snapshot_bytes:
                break
            chosen.append(i)
            used += size
        self._cursor = (self._cursor + len(chosen)) % max(1, len(variables))
        self._snapshot = ([names[i] for i in chosen], [variables[i] for i in chosen],
                          [tf.identity(tf.convert_to_tensor(variables[i])) for i in chosen])

    def log(self, step: int, loss: Any, grads: Sequence[Any], variables: Sequence[Any], *,
            batch_size: int | None = None, lr: float | None = None) -> dict[str, float]:
        """Record step `step` from its loss and gradients (call before the optimizer applies them)."""
        pairs = [(n, g) for n, g in zip(variable_names(variables), grads) if g is not None]
        names = [n for n, _ in pairs]
        if self.recorder.has_pending:  # the previous step's update has been applied since
            self.finish_step()
        host = reduce_to_host([g for _, g in pairs], [] if loss is None else [loss])
        return self._record(step, names, host, loss is not None, variables, batch_size, lr)

    def log_sums(self, step: int, loss: Any, sums_of_squares: Any, variables: Sequence[Any], *,
                 batch_size: int | None = None, lr: float | None = None) -> dict[str, float]:
        """`log` for a caller that reduced the gradients inside its own compiled step (the Keras callback):
        `sums_of_squares` holds one float32 per variable, in `variables`' order."""
        import tensorflow as tf
        if self.recorder.has_pending:
            self.finish_step()
        parts = [tf.reshape(tf.cast(sums_of_squares, tf.float32), [-1])]
        parts += [] if loss is None else [tf.reshape(tf.cast(loss, tf.float32), [1])]
        vector = tf.concat(parts, 0).numpy()
        stats.HOST_TRANSFER.add(vector.nbytes)
        return self._record(step, variable_names(variables), vector.astype(np.float64), loss is not None,
                            variables, batch_size, lr)

    def _record(self, step: int, names: list[str], host: np.ndarray, has_loss: bool, variables: Sequence[Any],
                batch_size: int | None, lr: float | None) -> dict[str, float]:
        """Stage step `step` from its host vector: per-tensor gradient sums of squares, then the loss."""
        sampling = self.is_sampling(step)
        self._steps_logged += 1
        metrics, bad = stats.grad_metrics(names, host[:len(names)], per_layer=sampling)
        loss_value = float(host[-1]) if has_loss else None
        if loss_value is not None:
            metrics["train/loss"] = loss_value
        lr = lr if lr is not None else current_lr(self.optimizer)
        if lr is not None:
            metrics["train/lr"] = lr
        nonfinite = bad is not None or (loss_value is not None and not math.isfinite(loss_value))
        metrics["train/nonfinite"] = float(nonfinite)
        if nonfinite:
            warn_nonfinite(step, loss_value, bad, "tensorflow")
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
            host = reduce_to_host(before, [_update_sumsq(b, v) for b, v in zip(before, variables)])
            host = np.concatenate([host[len(names):], host[:len(names)]])  # updates first, then params
            self.recorder.add(stats.update_ratio_metrics(names, host[:len(names)], host[len(names):]))
        self.recorder.flush()

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write eval metrics: `{"loss": v, "accuracy": a}` -> `eval/loss`, `eval/accuracy`."""
        self.finish_step()
        self.recorder.log_eval(step, {k: float(v) for k, v in metrics.items()})

    def close(self, state: str = "finished", reason: str | None = None) -> None:
        """Write the pending line, close the backends and mark the run's end (`status.json`)."""
        if state == "finished":
            self.finish_step()
        self.recorder.close(state, reason)

    def __enter__(self) -> TFMonitor:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close("crashed", f"{exc_type.__name__}: {exc}")


def __getattr__(name: str):
    if name == "KerasCallback":
        from ntjax.bridges.keras import KerasCallback
        return KerasCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
