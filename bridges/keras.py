"""Keras 3 callback (TensorFlow backend): `model.fit(..., callbacks=[KerasCallback("runs/keras")])`.

`fit` computes gradients inside its compiled train step, out of a callback's reach. The callback wraps
the model's optimizer (`apply_gradients` and `scale_loss`, on the instance, while training) so that the
step also reduces its gradients, before clipping, to one sum of squares per variable, and keeps those and
the loss in two small variables the callback reads after the batch: no gradient is copied (on the device
or to the host). With `steps_per_execution > 1` only the last batch of each execution is seen.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from ntjax.bridges import lr_ramp
from ntjax.bridges.tensorflow import TFMonitor, dense_values


class KerasCallback(keras.callbacks.Callback):
    """Writes `metrics.jsonl` and `config.json` for a `model.fit` run; `val_*` logs become `eval/*`."""

    def __init__(self, log_dir: str | os.PathLike | None = None, *, backends: str | Sequence[str] = ("jsonl",),
                 sample_every: int = 50, batch_size: int | None = None, resume: bool = False):
        super().__init__()
        self.log_dir, self.backends, self.sample_every, self.batch_size = log_dir, backends, sample_every, batch_size
        self.resume = resume
        self.monitor: TFMonitor | None = None
        self._step = 0
        self._sumsq: tf.Variable | None = None
        self._loss: tf.Variable | None = None
        self._originals: dict[str, object] = {}
        self._seen = 0.0

    def on_train_begin(self, logs=None):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("ntjax KerasCallback reads gradients on the TensorFlow backend only "
                               f"(this Keras runs on {keras.backend.backend()!r})")
        model = self._fitted()
        self.monitor = TFMonitor(self.log_dir, model=model, optimizer=model.optimizer,
                                 backends=self.backends, sample_every=self.sample_every,
                                 batch_size=self.batch_size, resume=self.resume)
        self.log_dir, self.resume = self.monitor.log_dir, True  # a later fit continues this run
        self._step = int(model.optimizer.iterations.numpy())
        self._wrap_optimizer()

    def _fitted(self):
        """The model Keras hands this callback for the length of `fit` (None outside it)."""
        if self.model is None:
            raise RuntimeError("ntjax KerasCallback is used by model.fit, which sets its model")
        return self.model

    def _wrap_optimizer(self) -> None:
        """Make the optimizer keep each step's loss and per-variable gradient sums of squares."""
        model = self._fitted()
        opt = model.optimizer
        variables = model.trainable_variables
        self._sumsq = sumsq = tf.Variable(tf.zeros([len(variables)], tf.float32), trainable=False)
        self._loss = loss_value = tf.Variable(float("nan"), trainable=False, dtype=tf.float32)
        position = {id(v): i for i, v in enumerate(variables)}
        apply_gradients, scale_loss = opt.apply_gradients, opt.scale_loss

        def copying_apply_gradients(grads_and_vars):
            grads_and_vars = list(grads_and_vars)
            sums = [tf.zeros([], tf.float32)] * len(variables)
            for g, v in grads_and_vars:
                if g is not None and id(v) in position:
                    sums[position[id(v)]] = tf.reduce_sum(tf.square(tf.cast(dense_values(g), tf.float32)))
            sumsq.assign(tf.stack(sums))
            return apply_gradients(grads_and_vars)

        def copying_scale_loss(loss):
            loss_value.assign(tf.cast(loss, tf.float32))
            return scale_loss(loss)

        self._originals = {"apply_gradients": apply_gradients, "scale_loss": scale_loss}
        opt.apply_gradients, opt.scale_loss = copying_apply_gradients, copying_scale_loss

    def on_train_batch_begin(self, batch, logs=None):
        lr_ramp.keras_before(self)  # `ntjax lr-find --command`: the LR ramp sets this step's LR
        if self.monitor is not None and self.monitor.is_sampling(self._step):
            self.monitor.snapshot(self._fitted().trainable_variables)

    def on_train_batch_end(self, batch, logs=None):
        if self.monitor is None:
            return
        self.monitor.log_sums(self._step, self._loss, self._sumsq, self._fitted().trainable_variables,
                              batch_size=self._batch_samples())
        self.monitor.finish_step()
        self._step += 1
        lr_ramp.keras_after(self)  # stops fit once the range test is over

    def _batch_samples(self) -> int | None:
        """The batch size, given or read off Keras's loss tracker (it counts the samples seen this epoch)."""
        if self.batch_size:
            return self.batch_size
        count = getattr(getattr(self.model, "_loss_tracker", None), "count", None)
        if count is None:
            return None
        seen = float(count)
        new = seen - self._seen if seen > self._seen else seen  # the tracker restarts every epoch
        self._seen = seen
        return int(new) or None

    def on_epoch_end(self, epoch, logs=None):
        evals = {k.removeprefix("val_"): v for k, v in (logs or {}).items() if k.startswith("val_")}
        if self.monitor is not None and evals:
            self.monitor.log_eval(self._step, evals)

    def on_train_end(self, logs=None):
        opt = self._fitted().optimizer
        for name in self._originals:
            opt.__dict__.pop(name, None)  # the class's own method shows through again
        self._originals = {}
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
