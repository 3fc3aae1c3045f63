"""Pure per-step diagnostics on pytrees of arrays, computed inside ntjax's jitted steps. The PyTorch and
TensorFlow bridges compute the same quantities from per-tensor reductions made on their own device
(`ntjax.diagnostics.reduced`, numpy only: no JAX runs in a user's training process).

Every function is jit-able and returns arrays; names are parameter paths joined with dots
(`blocks.0.attn.qkv.kernel`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def path_name(path: tuple) -> str:
    """A dotted name for a pytree key path (`('blocks', 0, 'mlp', 'kernel')` -> `blocks.0.mlp.kernel`)."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts)


def named_leaves(tree: PyTree) -> dict[str, jax.Array]:
    """Flatten a pytree into {dotted path: leaf}."""
    return {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _sumsq(x: jax.Array) -> jax.Array:
    return jnp.sum(jnp.square(x.astype(jnp.float32)))


def global_norm(tree: PyTree) -> jax.Array:
    """L2 norm of all leaves together, in float32 (what `optax.clip_by_global_norm` clips against)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(_sumsq(x) for x in leaves)) if leaves else jnp.zeros((), jnp.float32)


def norms_by_layer(tree: PyTree) -> dict[str, jax.Array]:
    """L2 norm of each leaf, by path. Their squares sum to `global_norm(tree) ** 2`."""
    return {name: jnp.sqrt(_sumsq(x)) for name, x in named_leaves(tree).items()}


def update_ratios(updates: PyTree, params: PyTree) -> dict[str, jax.Array]:
    """Per-leaf ||update|| / ||param||: ~1e-3 is the healthy range for Adam-style training
    (Karpathy's rule of thumb; much larger means the layer is being rewritten each step). A leaf whose
    parameters are all zero (a freshly initialised bias) has no meaningful ratio and reports 0."""
    u, p = named_leaves(updates), named_leaves(params)

    def ratio(name: str) -> jax.Array:
        pn = jnp.sqrt(_sumsq(p[name]))
        return jnp.where(pn > 0, jnp.sqrt(_sumsq(u[name])) / jnp.where(pn > 0, pn, 1.0), 0.0)
    return {name: ratio(name) for name in u}


def all_finite(tree: PyTree) -> jax.Array:
    """True when every element of every leaf is finite."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def first_nonfinite(named: Mapping[str, jax.Array]) -> str | None:
    """The first name (in the given order) whose array holds a NaN or Inf; None when all are finite.

    Host-side: used after a non-finite flag fires, to name the offending layer.
    """
    for name, x in named.items():
        if not bool(jnp.all(jnp.isfinite(x))):
            return name
    return None


def attention_entropy(probs_BxHxQxK: jax.Array) -> jax.Array:
    """Mean entropy (nats) of attention rows; near 0 means collapsed attention, ln(K) means uniform."""
    p = probs_BxHxQxK.astype(jnp.float32)
    return -jnp.mean(jnp.sum(p * jnp.log(jnp.clip(p, 1e-30, 1.0)), axis=-1))


def activation_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation of an activation tensor, in float32."""
    x = x.astype(jnp.float32)
    return jnp.mean(x), jnp.std(x)
