"""Data: the embedded real-text corpus, byte-level tokens, a held-out split, and deterministic batches.

The corpus is CPython's `pydoc_data.topics` (the text of `help()` topics: ~466 KB of real English prose
and code, present on every CPython), so the main job needs no download. Tokens are bytes (vocab 256).

Batches are a pure function of (seed, index): resuming at step s reads batch s, and a rollback can skip
a data window by moving the index, with no iterator state to save.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ntjax.errors import NtjaxError


def load_corpus() -> bytes:
    """The embedded corpus: every pydoc topic, in sorted order, UTF-8 encoded."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


def load_text(path: str | Path | None) -> bytes:
    """A user's text file, or the embedded corpus when `path` is None."""
    if path is None:
        return load_corpus()
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise NtjaxError(f"cannot read data file {path}: {e.strerror or e}") from None
    if len(data) < 1024:
        raise NtjaxError(f"data file {path} holds {len(data)} bytes; need at least 1 KiB of text")
    return data


def unigram_entropy(tokens: np.ndarray, vocab_size: int = 256) -> float:
    """Entropy (nats/token) of the token frequencies: the loss of the best model that ignores context."""
    counts = np.bincount(tokens, minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@dataclasses.dataclass(frozen=True)
class TextData:
    """A token array split into train and held-out eval parts (the eval part is the corpus's tail)."""

    train: np.ndarray  # uint8/int32 tokens
    eval: np.ndarray
    seq_len: int
    seed: int

    def train_batch(self, index: int, batch_size: int) -> np.ndarray:
        """Batch `index`: `batch_size` random windows of seq_len+1 tokens, int32 [B, T+1]."""
        rng = np.random.default_rng((self.seed, index))
        starts = rng.integers(0, len(self.train) - self.seq_len - 1, size=batch_size)
        return _windows(self.train, starts, self.seq_len)

    def eval_batches(self, n_batches: int, batch_size: int) -> list[np.ndarray]:
        """Fixed, evenly spaced windows over the held-out part: the same numbers every time."""
        total = n_batches * batch_size
        starts = np.linspace(0, len(self.eval) - self.seq_len - 1, total).astype(np.int64)
        return [_windows(self.eval, starts[i * batch_size:(i + 1) * batch_size], self.seq_len)
                for i in range(n_batches)]


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    return tokens[idx].astype(np.int32)


def make_data(seq_len: int, seed: int, eval_fraction: float, path: str | Path | None = None) -> TextData:
    """Tokenise the text as bytes and hold out its last `eval_fraction` for evaluation."""
    tokens = np.frombuffer(load_text(path), dtype=np.uint8)
    n_eval = int(len(tokens) * eval_fraction)
    if n_eval < seq_len + 2 or len(tokens) - n_eval < seq_len + 2:
        raise NtjaxError(f"text of {len(tokens)} bytes is too short for seq_len {seq_len} with a "
                         f"{eval_fraction:.0%} held-out split")
    return TextData(train=tokens[:-n_eval], eval=tokens[-n_eval:], seq_len=seq_len, seed=seed)
