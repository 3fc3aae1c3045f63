"""Per-step statistics of another framework's tensors, computed by `ntjax.diagnostics.tree_stats`.

The PyTorch and TensorFlow bridges hand their gradients, parameters and activations to JAX (numpy
views or DLPack, no copy on the framework's side) and call the jitted functions below, so every framework's run is measured by the same
code as an ntjax run. Inputs are dicts {name: array}; outputs are dicts of host floats.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ntjax.diagnostics import tree_stats as diagnostics
@jax.jit
def _grad_stats(grads: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    return diagnostics.global_norm(grads), diagnostics.all_finite(grads), diagnostics.norms_by_layer(grads)


@jax.jit
def _update_ratios(before: dict[str, jax.Array], after: dict[str, jax.Array]) -> dict[str, jax.Array]:
    updates = {k: after[k].astype(jnp.float32) - before[k].astype(jnp.float32) for k in after}
    return diagnostics.update_ratios(updates, before)


@jax.jit
def _activation_stats(acts: dict[str, jax.Array]) -> dict[str, tuple[jax.Array, jax.Array]]:
    return {k: diagnostics.activation_stats(x) for k, x in acts.items()}


@jax.jit
def _attention_entropies(probs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {k: diagnostics.attention_entropy(p) for k, p in probs.items()}


def _host(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: float(np.asarray(x)), jax.device_get(tree))


def grad_metrics(grads: Mapping[str, jax.Array], per_layer: bool) -> tuple[dict[str, float], bool]:
    """`train/grad_norm` (global, before any clipping), and `grad_norm/<name>` per tensor when `per_layer`
    or when a gradient is non-finite. Returns (metrics, all gradients finite)."""
    norm, finite, layers = _grad_stats(dict(grads))
    finite = bool(finite)
    metrics = {"train/grad_norm": float(norm)}
    if per_layer or not finite:
        metrics.update({f"grad_norm/{k}": v for k, v in _host(layers).items()})
    return metrics, finite


def first_nonfinite_name(named: Mapping[str, jax.Array]) -> str | None:
    """The first tensor (in the given order) holding a NaN or Inf."""
    return diagnostics.first_nonfinite(named)


def update_ratio_metrics(before: Mapping[str, jax.Array], after: Mapping[str, jax.Array]) -> dict[str, float]:
    """`update_ratio/<name>`: ||after - before|| / ||before|| for each tensor in both."""
    common = [k for k in after if k in before]
    ratios = _update_ratios({k: before[k] for k in common}, {k: after[k] for k in common})
    return {f"update_ratio/{k}": v for k, v in _host(ratios).items()}


def activation_metrics(acts: Mapping[str, jax.Array]) -> dict[str, float]:
    """`act_mean/<layer>` and `act_std/<layer>` of each layer's output."""
    out: dict[str, float] = {}
    for k, (mean, std) in _host(_activation_stats(dict(acts))).items():
        out[f"act_mean/{k}"], out[f"act_std/{k}"] = mean, std
    return out


def attention_metrics(probs: Mapping[str, jax.Array]) -> dict[str, float]:
    """`attn_entropy/<layer>` (nats) of each layer's attention probabilities, shaped [B, H, Q, K]."""
    return {f"attn_entropy/{k}": v for k, v in _host(_attention_entropies(dict(probs))).items()}
