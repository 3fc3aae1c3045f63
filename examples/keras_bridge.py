"""A small Keras 3 (TensorFlow backend) next-byte model on ntjax's embedded corpus, monitored by
`KerasCallback`.

    python examples/keras_bridge.py --out runs/keras --steps 200
    ntjax curves runs/keras
    ntjax debug runs/keras

The model reads the previous `--context` bytes (embedded, flattened, two dense layers) and predicts the
next one. The monitor is the one callback passed to `fit`, marked `# ntjax`.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ntjax.bridges.tensorflow import KerasCallback  # noqa: E402
from ntjax.core.data import load_corpus  # noqa: E402


def windows(tokens: np.ndarray, n: int, context: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random (previous `context` bytes, next byte) pairs."""
    starts = np.random.default_rng(seed).integers(0, len(tokens) - context - 1, n)
    x = np.stack([tokens[s:s + context] for s in starts]).astype("int32")
    return x, tokens[starts + context].astype("int32")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/keras_bridge")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--epochs", type=int, default=4, help="the steps are split into this many epochs (evals)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sample-every", type=int, default=25)
    p.add_argument("--log", default="jsonl", help="comma list of jsonl,csv,tensorboard,wandb")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    keras.utils.set_random_seed(args.seed)
    tokens = np.frombuffer(load_corpus(), dtype=np.uint8)
    split = int(0.9 * len(tokens))
    epochs = max(1, min(args.epochs, args.steps))
    steps_per_epoch = max(1, args.steps // epochs)
    x, y = windows(tokens[:split], steps_per_epoch * args.batch_size, args.context, args.seed)
    x_eval, y_eval = windows(tokens[split:], 1024, args.context, args.seed + 1)

    model = keras.Sequential([
        keras.Input((args.context,), dtype="int32"),
        keras.layers.Embedding(256, 32, name="embed"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(args.width, activation="gelu", name="hidden1"),
        keras.layers.Dense(args.width, activation="gelu", name="hidden2"),
        keras.layers.Dense(256, name="logits"),
    ], name="byte_mlp")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=args.lr, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    monitor = KerasCallback(args.out, backends=args.log.split(","), sample_every=args.sample_every)  # ntjax
    history = model.fit(x, y, batch_size=args.batch_size, epochs=epochs, validation_data=(x_eval, y_eval),
                        callbacks=[monitor], verbose=0)
    print(f"final train loss {history.history['loss'][-1]:.3f}, eval loss {history.history['val_loss'][-1]:.3f}")
    print(f"wrote {args.out}/metrics.jsonl and config.json; next: ntjax curves {args.out}")


if __name__ == "__main__":
    main()
