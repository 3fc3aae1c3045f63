"""A small Keras script of the kind users bring: synthetic regression, `model.fit`, the ntjax callback
logging into $NTJAX_RUN_DIR. `--nan-at N` poisons a weight before training step N (a NaN loss follows)."""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np
import tensorflow as tf

from ntjax.bridges.tensorflow import KerasCallback

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--nan-at", type=int, default=-1)
args = p.parse_args()
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

rng = np.random.default_rng(0)
x = rng.normal(size=(640, 8)).astype("float32")
y = (x @ rng.normal(size=(8, 1)) + 0.1 * rng.normal(size=(640, 1))).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(args.lr), loss="mse")


class Poison(keras.callbacks.Callback):
    """Sets the output bias to NaN before global step --nan-at (the kind of blow-up a bad batch causes)."""

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == args.nan_at:
            k = self.model.layers[-1].bias
            k.assign(np.full(k.shape, np.nan, "float32"))


model.fit(x[:512], y[:512], validation_data=(x[512:], y[512:]), batch_size=32, epochs=args.epochs, verbose=2,
          callbacks=[Poison(), KerasCallback(log_dir=os.environ["NTJAX_RUN_DIR"], sample_every=10)])
