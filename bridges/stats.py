"""Metric names for the bridges' per-step statistics, computed by `ntjax.diagnostics.reduced` from per-tensor
reductions that the PyTorch and TensorFlow bridges make on their framework's own device.

A bridge moves one small vector per step to the host (a sum of squares per gradient, plus the loss; on
sampled steps also per-layer activation mean/std, attention entropies and, after the optimizer step,
per-tensor update and parameter sums of squares), never the tensors themselves. Outputs are dicts of
host floats. No JAX here: see `ntjax.diagnostics.reduced`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ntjax.diagnostics import reduced


@dataclasses.dataclass
class TransferCount:
    """Bytes of tensor data the bridges have copied from a framework's tensors to the host, and in how
    many copies (the overhead benchmark and the tests read it)."""
    bytes: int = 0
    copies: int = 0

    def add(self, nbytes: int) -> None:
        self.bytes += int(nbytes)
        self.copies += 1


HOST_TRANSFER = TransferCount()


def grad_metrics(names: Sequence[str], sumsq: np.ndarray, per_layer: bool) -> tuple[dict[str, float], str | None]:
    """`train/grad_norm` (global, before any clipping), and `grad_norm/<name>` per tensor when `per_layer`
    or when a gradient is non-finite. Returns (metrics, the first non-finite tensor's name or None)."""
    total = reduced.global_norm(sumsq)
    bad = None if math.isfinite(total) else reduced.first_nonfinite(names, sumsq)  # searched only when needed
    metrics = {"train/grad_norm": total}
    if per_layer or bad is not None:
        metrics.update({f"grad_norm/{k}": v for k, v in reduced.norms(names, sumsq).items()})
    return metrics, bad


def update_ratio_metrics(names: Sequence[str], update_sumsq: np.ndarray, param_sumsq: np.ndarray) -> dict[str, float]:
    """`update_ratio/<name>`: ||after - before|| / ||before|| for each tensor measured."""
    return {f"update_ratio/{k}": v for k, v in reduced.update_ratios(names, update_sumsq, param_sumsq).items()}


def activation_metrics(names: Sequence[str], mean_std: np.ndarray) -> dict[str, float]:
    """`act_mean/<layer>` and `act_std/<layer>` of each layer's output."""
    out: dict[str, float] = {}
    for k, (mean, std) in reduced.activation_stats(names, mean_std).items():
        out[f"act_mean/{k}"], out[f"act_std/{k}"] = mean, std
    return out


def attention_metrics(names: Sequence[str], entropies: np.ndarray) -> dict[str, float]:
    """`attn_entropy/<layer>` (nats): mean entropy of each attention layer's rows."""
    return {f"attn_entropy/{k}": float(v) for k, v in zip(names, np.asarray(entropies, np.float64).reshape(-1))}
