"""The TensorFlow bridge against real TensorFlow: tape helper norms equal `tf.linalg.global_norm`, and
the Keras callback (Keras 3, TensorFlow backend) writes a readable run folder from a real `fit`."""
from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow", reason="the TensorFlow bridge needs tensorflow (pip install 'ntjax[tensorflow]')")
keras = pytest.importorskip("keras", reason="the Keras callback needs keras 3")

from ntjax.bridges.tensorflow import TFMonitor  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="needs Keras on TensorFlow")


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def small_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu", name="dense"),
                             keras.layers.Dense(16, activation="relu", name="dense_1"),
                             keras.layers.Dense(1, name="dense_2")], name="mlp")


def regression_data(n: int = 64):
    x = np.random.default_rng(0).normal(size=(n, 6)).astype("float32")
    return x, (x @ np.arange(1, 7, dtype="float32"))[:, None]


def test_tape_helper_grad_norm_equals_tf_global_norm_and_layers_sum(tmp_path):
    model, (x, y) = small_model(), regression_data()
    opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    expected = []
    with TFMonitor(tmp_path, model=model, optimizer=opt, sample_every=2, batch_size=16) as mon:
        for step in range(5):
            xb, yb = x[step * 8:(step + 1) * 8], y[step * 8:(step + 1) * 8]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
            grads = tape.gradient(loss, model.trainable_variables)
            expected.append(float(tf.linalg.global_norm(grads)))
            mon.log(step, loss, grads, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
        mon.log_eval(5, {"loss": 1.5})
    lines = read_lines(tmp_path / "metrics.jsonl")
    steps = [r for r in lines if "train/loss" in r]
    assert [r["step"] for r in steps] == list(range(5))
    for rec, norm in zip(steps, expected):
        assert rec["train/grad_norm"] == pytest.approx(norm, rel=1e-5)
        assert rec["train/lr"] == pytest.approx(0.01) and rec["train/nonfinite"] == 0.0
    for rec in (steps[0], steps[2], steps[4]):
        squares = sum(v ** 2 for k, v in rec.items() if k.startswith("grad_norm/"))
        assert squares == pytest.approx(rec["train/grad_norm"] ** 2, rel=1e-5)
        assert "update_ratio/mlp/dense/kernel" in rec
    assert "update_ratio/mlp/dense/kernel" not in steps[1]
    assert steps[1]["train/throughput"] > 0
    assert lines[-1]["eval/loss"] == 1.5
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["optimizer"]["class"] == "SGD" and cfg["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert cfg["model"]["parameters"] == model.count_params()


def test_tape_helper_flags_nan_gradient_with_its_variable(tmp_path):
    model, (x, y) = small_model(), regression_data()
    with warnings.catch_warnings(record=True) as caught, TFMonitor(tmp_path, sample_every=100) as mon:
        warnings.simplefilter("always")
        for step in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            grads = tape.gradient(loss, model.trainable_variables)
            if step == 1:
                grads[3] = grads[3] * float("nan")  # the second layer's bias
            mon.log(step, loss, grads, model.trainable_variables)
    by_step = {r["step"]: r for r in read_lines(tmp_path / "metrics.jsonl")}
    assert [s for s, r in by_step.items() if r["train/nonfinite"]] == [1]
    assert by_step[1]["grad_norm/mlp/dense_1/bias"] == "nan"
    assert any("step 1" in str(w.message) and "dense_1/bias" in str(w.message) for w in caught)


@pytest.mark.slow
def test_keras_callback_in_fit_writes_the_same_metrics(tmp_path):
    from ntjax.bridges.tensorflow import KerasCallback

    model, (x, y) = small_model(), regression_data()
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=0.01, global_clipnorm=0.1),
                  loss="mse")
    callback = KerasCallback(tmp_path, sample_every=3)
    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0, callbacks=[callback])
    lines = read_lines(tmp_path / "metrics.jsonl")
    steps = [r for r in lines if "train/loss" in r]
    assert [r["step"] for r in steps] == list(range(6))  # 48 training rows / 16 per batch, two epochs
    assert all(math.isfinite(r["train/loss"]) and r["train/lr"] == pytest.approx(3e-3) for r in steps)
    # The gradients are read before the optimizer clips them to 0.1.
    assert all(r["train/grad_norm"] > 1.0 for r in steps)
    assert all(r["train/throughput"] > 0 for r in steps[1:])
    assert "update_ratio/mlp/dense_2/kernel" in steps[3] and "grad_norm/mlp/dense/bias" in steps[3]
    assert [r["step"] for r in lines if "eval/loss" in r] == [3, 6]
    assert "apply_gradients" not in vars(model.optimizer)  # the optimizer is unwrapped after training
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["optimizer"]["class"] == "AdamW" and cfg["optimizer"]["param_groups"][0]["weight_decay"] == 0.01


def test_tape_helper_moves_one_float_per_variable_and_bounds_its_snapshot(tmp_path):
    from ntjax.bridges.stats import HOST_TRANSFER

    model, (x, y) = small_model(), regression_data()
    variables = model.trainable_variables
    budget = max(int(np.prod(v.shape)) * 4 for v in variables)  # the largest variable alone
    opt = keras.optimizers.SGD(learning_rate=0.05)
    measured = []
    with TFMonitor(tmp_path, optimizer=opt, sample_every=1, snapshot_bytes=budget) as mon:
        for step in range(6):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            grads = tape.gradient(loss, variables)
            before = HOST_TRANSFER.bytes
            mon.log(step, loss, grads, variables)
            assert HOST_TRANSFER.bytes - before == 4 * (len(variables) + 1)  # a sum of squares each, and the loss
            assert sum(int(np.prod(t.shape)) * 4 for t in mon._snapshot[2]) <= budget
            norms = [(float(tf.norm(g)), float(tf.norm(v))) for g, v in zip(grads, variables)]
            expected = {v.path: 0.05 * g / p if p > 0 else 0.0  # SGD's update is lr * grad; zero params: 0
                        for v, (g, p) in zip(variables, norms) if v.path in mon._snapshot[0]}
            opt.apply_gradients(zip(grads, variables))
            mon.finish_step()
            line = read_lines(tmp_path / "metrics.jsonl")[-1]
            ratios = {k.removeprefix("update_ratio/"): v for k, v in line.items() if k.startswith("update_ratio/")}
            assert ratios == pytest.approx(expected, rel=1e-4)
            measured.append(set(ratios))
    assert set().union(*measured) == {v.path for v in variables}
    assert all(0 < len(m) < len(variables) for m in measured)
