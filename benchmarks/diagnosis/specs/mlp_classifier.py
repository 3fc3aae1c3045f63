"""An `ntjax train --spec` task that is not a transformer: an MLP classifier on synthetic data.

Inputs are 20-d Gaussian vectors; the label is the argmax over 8 classes of a fixed random two-layer
teacher network, so the task is learnable but not trivial (chance loss ln 8 = 2.079). Batches pack the
inputs and the label as one float array [B, 21]. Variants (init scale, shuffled labels) are the sibling
files that call `make_spec`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

N_IN, N_CLASSES, N_TRAIN, N_EVAL = 20, 8, 8192, 1024
INIT_SCALE = 1.0  # variants multiply every weight matrix by this after the default init
SHUFFLED = False  # variants shuffle the training labels (a data pipeline bug)


class MLP(nnx.Module):
    def __init__(self, hidden: int, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(N_IN, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, N_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x)))))


def _data(seed: int, n: int, shuffled: bool) -> np.ndarray:
    t = np.random.default_rng(1234)
    w1, w2 = t.normal(size=(N_IN, 32)), t.normal(size=(32, N_CLASSES))
    x = np.random.default_rng(seed).normal(size=(n, N_IN)).astype(np.float32)
    y = np.argmax(np.tanh(x @ w1) @ w2, axis=1)
    if shuffled:
        y = np.random.default_rng(seed + 1).permutation(y)
    return np.concatenate([x, y[:, None].astype(np.float32)], axis=1)


def make_spec(init_scale: float = INIT_SCALE, shuffled: bool = SHUFFLED) -> dict:
    """The spec functions for one variant."""
    train = _data(10, N_TRAIN, shuffled)
    held = _data(5000, N_EVAL, False)

    def build_model(cfg, rngs: nnx.Rngs) -> nnx.Module:
        model = MLP(64, rngs)
        if init_scale != 1.0:
            for layer in (model.fc1, model.fc2, model.out):
                layer.kernel.value = layer.kernel.value * init_scale
        return model

    def train_batch(cfg, index: int) -> np.ndarray:
        rng = np.random.default_rng((cfg.seed, index))
        return train[rng.integers(0, N_TRAIN, cfg.batch_size)]

    def eval_batches(cfg) -> list[np.ndarray]:
        return np.array_split(held, max(1, cfg.eval_batches))

    def loss_fn(model: nnx.Module, batch: jax.Array) -> tuple[jax.Array, dict]:
        logits = model(batch[:, :N_IN])
        target = batch[:, N_IN].astype(jnp.int32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, target).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == target)}

    return {"build_model": build_model, "train_batch": train_batch, "eval_batches": eval_batches,
            "loss_fn": loss_fn}


globals().update(make_spec())
