"""Per-step diagnostics from per-tensor reductions: the host half of the bridges' statistics.

The PyTorch and TensorFlow bridges reduce every tensor on the framework's own device (a sum of squares
per gradient, per update, per parameter; an activation's mean and std) and move one small vector to the
host. These pure functions turn those vectors into the same quantities `ntjax.diagnostics.tree_stats` computes for
an ntjax run: the global norm is sqrt(sum of the per-tensor sums of squares), exactly what
`diagnostics.global_norm` and `torch.nn.utils.clip_grad_norm_` compute; update ratios are
||update|| / ||param|| with the same zero-parameter rule as `diagnostics.update_ratios`.

numpy only (no JAX): the bridges run inside a user's PyTorch or TensorFlow process, where a JAX call
could initialise an accelerator backend and take its memory.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _f64(x: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def global_norm(sumsq: Sequence[float] | np.ndarray) -> float:
    """L2 norm of all tensors together, from their sums of squares (NaN/Inf propagate)."""
    s = _f64(sumsq)
    return math.sqrt(float(s.sum())) if s.size else 0.0


def norms(names: Sequence[str], sumsq: Sequence[float] | np.ndarray) -> dict[str, float]:
    """{name: L2 norm}; their squares sum to `global_norm(sumsq) ** 2`."""
    return dict(zip(names, np.sqrt(_f64(sumsq)).tolist()))


def first_nonfinite(names: Sequence[str], sumsq: Sequence[float] | np.ndarray) -> str | None:
    """The first tensor (in the given order) whose sum of squares is NaN or Inf: it holds a NaN or Inf
    (or values beyond float32 range once squared, which a clipping total would turn into Inf too)."""
    bad = np.flatnonzero(~np.isfinite(_f64(sumsq)))
    return names[int(bad[0])] if bad.size else None


def update_ratios(names: Sequence[str], update_sumsq: Sequence[float] | np.ndarray,
                  param_sumsq: Sequence[float] | np.ndarray) -> dict[str, float]:
    """{name: ||update|| / ||param||} (params before the update); an all-zero parameter reports 0, as in
    `ntjax.diagnostics.tree_stats.update_ratios`."""
    u, p = np.sqrt(_f64(update_sumsq)), np.sqrt(_f64(param_sumsq))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p > 0, u / np.where(p > 0, p, 1.0), 0.0)
    return dict(zip(names, ratio.tolist()))


def activation_stats(names: Sequence[str], mean_std: Sequence[float] | np.ndarray) -> dict[str, tuple[float, float]]:
    """{layer: (mean, std)} from a flat [mean0, std0, mean1, std1, ...] vector."""
    v = _f64(mean_std).reshape(-1, 2)
    return {n: (float(m), float(s)) for n, (m, s) in zip(names, v)}
