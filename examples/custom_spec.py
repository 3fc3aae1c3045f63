"""Train your own Flax NNX model with ntjax: a spec module names the model, the loss and the data.

Either through the CLI:
    ntjax train --spec examples/custom_spec.py --steps 300 --out runs/custom --yes
or as a script (same thing):
    python examples/custom_spec.py --out runs/custom --steps 300

The model here is a small next-byte MLP over a fixed window of previous bytes (Bengio et al. 2003's
neural LM) trained on the source code of CPython's standard library — a model and data set of your own,
with all of ntjax's monitoring, checkpoints, resume, report and diagnosis.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

CONTEXT = 16  # bytes the model sees


class WindowMLP(nnx.Module):
    """Embed the last CONTEXT bytes, concatenate, two dense layers, predict the next byte."""

    def __init__(self, d: int, hidden: int, rngs: nnx.Rngs):
        self.embed = nnx.Embed(256, d, rngs=rngs)
        self.fc = nnx.Linear(CONTEXT * d, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 256, rngs=rngs)

    def __call__(self, window_BxC: jax.Array) -> jax.Array:
        x_BxCD = self.embed(window_BxC).reshape(window_BxC.shape[0], -1)
        return self.out(jax.nn.gelu(self.fc(x_BxCD)))


@functools.lru_cache(maxsize=1)
def _tokens() -> np.ndarray:
    text = "\n".join(inspect.getsource(m) for m in (json, argparse, dataclasses, pathlib, inspect))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _split(cfg) -> tuple[np.ndarray, np.ndarray]:
    tokens = _tokens()
    n_eval = int(len(tokens) * cfg.eval_fraction)
    return tokens[:-n_eval], tokens[-n_eval:]


def _windows(tokens: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return tokens[starts[:, None] + np.arange(CONTEXT + 1)].astype(np.int32)  # [B, CONTEXT+1]


# ---- the spec interface ntjax reads -------------------------------------------------------------

def build_model(cfg, rngs: nnx.Rngs) -> nnx.Module:
    return WindowMLP(d=32, hidden=256, rngs=rngs)


def train_batch(cfg, index: int) -> np.ndarray:
    """Deterministic in `index`, so resuming and rollbacks re-read exactly the same data."""
    train, _ = _split(cfg)
    rng = np.random.default_rng((cfg.seed, index))
    return _windows(train, rng.integers(0, len(train) - CONTEXT - 1, cfg.batch_size))


def eval_batches(cfg) -> list[np.ndarray]:
    _, held_out = _split(cfg)
    starts = np.linspace(0, len(held_out) - CONTEXT - 1, cfg.eval_batches * cfg.batch_size).astype(np.int64)
    return [_windows(held_out, s) for s in np.split(starts, cfg.eval_batches)]


def loss_fn(model: nnx.Module, batch: jax.Array) -> tuple[jax.Array, dict]:
    logits = model(batch[:, :CONTEXT])
    target = batch[:, CONTEXT]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, target).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == target)}


def main() -> None:
    from ntjax.core import config
    from ntjax.trainer import train

    parser = argparse.ArgumentParser(description="train the WindowMLP spec with ntjax")
    parser.add_argument("--out", default="runs/custom")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    cfg = dataclasses.replace(config.preset("default"), spec=str(pathlib.Path(__file__).absolute()),
                              steps=args.steps, batch_size=64, eval_every=100, ckpt_every=100, lr=3e-3)
    result = train(cfg, args.out)
    print(f"best eval loss {result.best_eval_loss:.4f} at step {result.best_eval_step}; see {args.out}/report.md")


if __name__ == "__main__":
    main()
