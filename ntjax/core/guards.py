"""Guards against instability, as optax transformations so they compose with any optimizer.

`spike_guard` keeps a window of recent losses and gradient norms on device and turns an update into a
no-op when the loss or the (pre-clipping) gradient norm is far outside that window, or non-finite. The
inner optimizer's state is left untouched on a skipped step, as if the batch had never been seen.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ntjax.diagnostics.tree_stats import global_norm

# 1.4826·MAD estimates the standard deviation of normal noise; a robust z-score uses it.
MAD_TO_SIGMA = 1.4826
# Early in training the window is tight and grad norms swing up to ~10x from batch to batch (clipping
# handles those): a spike must also be this far above the window's median, not just many MADs (an
# injected or pathological spike is 10-100x).
MIN_LOSS_RATIO, MIN_NORM_RATIO = 1.25, 20.0


class SpikeGuardState(NamedTuple):
    losses: jax.Array  # [window] recent accepted losses (ring buffer)
    norms: jax.Array  # [window] recent accepted gradient norms
    count: jax.Array  # accepted steps so far
    skipped: jax.Array  # updates skipped so far
    last_skipped: jax.Array  # whether the latest update was skipped
    inner: optax.OptState


def robust_z(window: jax.Array, x: jax.Array) -> jax.Array:
    """How many robust standard deviations x lies above the window's median."""
    med = jnp.median(window)
    mad = MAD_TO_SIGMA * jnp.median(jnp.abs(window - med))
    return (x - med) / (mad + 1e-6 * jnp.abs(med) + 1e-12)


def spike_guard(inner: optax.GradientTransformation, window: int = 32,
                threshold: float = 6.0) -> optax.GradientTransformationExtraArgs:
    """Wrap `inner`: skip updates whose loss or grad norm is a spike or non-finite.

    A spike lies more than `threshold` robust standard deviations above the window's median and more
    than MIN_LOSS_RATIO (loss) or MIN_NORM_RATIO (grad norm) times that median.

    Needs `loss=` passed to `update` (ntjax's train step does). No skipping until the window is full.
    """

    def init(params: Any) -> SpikeGuardState:
        z = jnp.zeros((window,), jnp.float32)
        zero = jnp.zeros((), jnp.int32)
        return SpikeGuardState(z, z, zero, zero, jnp.zeros((), bool), inner.init(params))

    def update(updates: Any, state: SpikeGuardState, params: Any = None, *, loss: jax.Array, **extra):
        gnorm = global_norm(updates)
        loss = jnp.asarray(loss, jnp.float32)
        full = state.count >= window
        loss_spike = (robust_z(state.losses, loss) > threshold) & (loss > MIN_LOSS_RATIO * jnp.median(state.losses))
        norm_spike = (robust_z(state.norms, gnorm) > threshold) & (gnorm > MIN_NORM_RATIO * jnp.median(state.norms))
        spike = full & (loss_spike | norm_spike)
        skip = spike | ~jnp.isfinite(loss) | ~jnp.isfinite(gnorm)
        new_updates, new_inner = inner.update(updates, state.inner, params, **extra)
        out = jax.tree.map(lambda u: jnp.where(skip, jnp.zeros_like(u), u), new_updates)
        kept_inner = jax.tree.map(lambda new, old: jnp.where(skip, old, new), new_inner, state.inner)
        slot = state.count % window
        losses = jnp.where(skip, state.losses, state.losses.at[slot].set(loss))
        norms = jnp.where(skip, state.norms, state.norms.at[slot].set(gnorm))
        return out, SpikeGuardState(losses, norms, state.count + (~skip).astype(jnp.int32),
                                    state.skipped + skip.astype(jnp.int32), skip, kept_inner)

    return optax.GradientTransformationExtraArgs(init, update)
