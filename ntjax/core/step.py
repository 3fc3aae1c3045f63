"""The compiled steps: one pure jitted `(state, batch) -> (state, metrics)` for training, one for eval.

The train step computes, in the same compiled program as the update: loss, global grad norm before
clipping, per-layer grad norms, per-layer update/param ratios, a non-finite flag, the LR of the step
and, with `probes=True` (a second compiled variant run on a sparse schedule), the model's per-layer
activation and attention statistics. Gradient accumulation is a `lax.scan` over micro-batches, which
also yields the two norms the gradient noise scale needs (McCandlish et al. 2018); on a mesh with
data-parallel shards and no accumulation, the shards' own gradients give them instead.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ntjax.core.guards import SpikeGuardState
from ntjax.core.sharding import StepSharding
from ntjax.diagnostics import tree_stats as diagnostics

LossFn = Callable[[nnx.Module, jax.Array, bool], tuple[jax.Array, dict[str, jax.Array]]]


class TrainState(NamedTuple):
    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any  # trainable parameters (nnx.State)
    frozen: Any  # the rest of the model's state (nnx.State; empty unless e.g. LoRA freezes the base)
    opt_state: optax.OptState


def lm_loss(model: nnx.Module, batch_BxT1: jax.Array, probes: bool = False,
            z_loss: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Next-token cross-entropy on a [B, T+1] token batch, plus token accuracy and the model's probes.

    `z_loss` adds z·mean(log Z)² (Chowdhery et al. 2022) to keep the softmax normaliser near 1.
    """
    inputs_BxT, targets_BxT = batch_BxT1[:, :-1], batch_BxT1[:, 1:]
    logits_BxTxV, stats = model(inputs_BxT, probes=probes)
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT).mean()
    loss = ce
    if z_loss:
        loss = loss + z_loss * jnp.mean(jnp.square(jax.nn.logsumexp(logits_BxTxV, axis=-1)))
    accuracy = jnp.mean(jnp.argmax(logits_BxTxV, axis=-1) == targets_BxT)
    return loss, {"accuracy": accuracy, "max_logit": jnp.max(jnp.abs(logits_BxTxV)), **stats}


def init_state(model: nnx.Module, tx: optax.GradientTransformation,
               trainable: Any = nnx.Param) -> tuple[nnx.GraphDef, TrainState]:
    """Split a model into its graph and a TrainState (trainable params + frozen rest + optimizer state)."""
    graphdef, params, frozen = nnx.split(model, trainable, ...)
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, frozen, tx.init(params))


def gradient_parts(accum_steps: int, sharding: StepSharding | None = None) -> int:
    """Into how many equal parts the step splits a batch for the gradient noise scale: the
    accumulation micro-batches, else the data-parallel shards, else 1 (no estimate)."""
    if accum_steps > 1:
        return accum_steps
    return sharding.data_shards if sharding is not None else 1


def _per_shard_grads(grad_fn: Callable, params: Any, batch: jax.Array, sharding: StepSharding):
    """Each data shard's gradient on its own slice of the batch (a vmap over the "data" axis, so every
    slice is computed where it lives), averaged as data parallelism's all-reduce would: the mean loss,
    gradient and aux, and the mean squared norm of the shards' gradients."""
    n = sharding.data_shards
    parts = jax.lax.with_sharding_constraint(batch.reshape(n, -1, *batch.shape[1:]), sharding.per_shard())
    (losses, aux), grads = jax.vmap(grad_fn, in_axes=(None, 0))(params, parts)
    small_sq = jnp.mean(jax.vmap(lambda g: jnp.square(diagnostics.global_norm(g)))(grads))
    # Equal parts: means of means are the batch's means; a maximum ("max_logit") is the parts' maximum.
    aux = {k: jax.tree.map(lambda x: (jnp.max if "max" in k else jnp.mean)(x, axis=0), v) for k, v in aux.items()}
    return jnp.mean(losses), jax.tree.map(lambda g: jnp.mean(g, axis=0), grads), aux, small_sq


def _grads(graphdef: nnx.GraphDef, loss_fn: LossFn, params: Any, frozen: Any, batch: jax.Array,
           accum_steps: int, probes: bool, sharding: StepSharding | None = None,
           ) -> tuple[jax.Array, Any, dict[str, jax.Array], jax.Array]:
    """Mean loss and gradient over the batch's `gradient_parts`, the aux metrics averaged, and the mean
    squared norm of the parts' gradients (for the gradient noise scale)."""
    def micro(p: Any, mb: jax.Array):
        return loss_fn(nnx.merge(graphdef, p, frozen), mb, probes)

    grad_fn = jax.value_and_grad(micro, has_aux=True)
    if accum_steps == 1 and gradient_parts(accum_steps, sharding) > 1:
        return _per_shard_grads(grad_fn, params, batch, sharding)
    if accum_steps == 1:
        (loss, aux), grads = grad_fn(params, batch)
        return loss, grads, aux, jnp.square(diagnostics.global_norm(grads))
    micro_batches = batch.reshape(accum_steps, batch.shape[0] // accum_steps, *batch.shape[1:])
    if sharding is not None:  # keep every micro-batch spread over all devices
        micro_batches = jax.lax.with_sharding_constraint(micro_batches, sharding.micro_batches())

    def body(carry, mb):
        (loss, aux), g = grad_fn(params, mb)
        total_loss, total_g, total_aux, total_sq = carry
        return (total_loss + loss, jax.tree.map(jnp.add, total_g, g), jax.tree.map(jnp.add, total_aux, aux),
                total_sq + jnp.square(diagnostics.global_norm(g))), None

    (_, aux0), _ = jax.eval_shape(grad_fn, params, micro_batches[0])
    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params),
             jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux0), jnp.zeros((), jnp.float32))
    (loss, grads, aux, sq), _ = jax.lax.scan(body, zeros, micro_batches)
    scale = 1.0 / accum_steps
    return (loss * scale, jax.tree.map(lambda g: g * scale, grads), jax.tree.map(lambda a: a * scale, aux),
            sq * scale)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    loss_fn: LossFn = lm_loss, accum_steps: int = 1, probes: bool = False,
                    per_layer: bool = True, sharding: StepSharding | None = None, histograms: bool = False,
                    ) -> Callable[[TrainState, jax.Array], tuple[TrainState, dict]]:
    """The instrumented, jitted train step. Metrics are device scalars: fetch them one step late.

    With `histograms`, `metrics["hist"]` also holds the gradients themselves (a pytree by parameter path)
    for TensorBoard histograms; use it only in the sparse probe variant, as it moves every gradient to
    the host. With `sharding` the step runs on its mesh: state and batch in (and the state out) with the given
    layouts, metrics replicated. Norms are taken inside the step on the global arrays.
    """
    parts = gradient_parts(accum_steps, sharding)

    def train_step(state: TrainState, batch: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        loss, grads, aux, micro_sq = _grads(graphdef, loss_fn, state.params, state.frozen, batch,
                                            accum_steps, probes, sharding)
        grad_norm = diagnostics.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, loss=loss)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "train/loss": loss,
            "train/accuracy": aux.pop("accuracy"),
            "train/max_logit": aux.pop("max_logit"),
            "train/grad_norm": grad_norm,
            "train/lr": schedule(state.step),
            "train/param_norm": diagnostics.global_norm(state.params),
            "train/update_norm": diagnostics.global_norm(updates),
            "train/nonfinite": ~(jnp.isfinite(loss) & jnp.isfinite(grad_norm)),
            **aux,
        }
        if isinstance(opt_state, SpikeGuardState):
            metrics["train/skipped"] = opt_state.last_skipped
        if parts > 1:  # |G_small|² (one part of the batch) and |G_big|² (their mean): noise-scale inputs
            metrics["gns/small_sq"] = micro_sq
            metrics["gns/big_sq"] = jnp.square(grad_norm)
        if per_layer:
            pure_grads, pure_params = nnx.to_pure_dict(grads), nnx.to_pure_dict(state.params)
            metrics.update({f"grad_norm/{k}": v for k, v in diagnostics.norms_by_layer(pure_grads).items()})
            ratios = diagnostics.update_ratios(nnx.to_pure_dict(updates), pure_params)
            metrics.update({f"update_ratio/{k}": v for k, v in ratios.items()})
        if histograms:
            metrics["hist"] = nnx.to_pure_dict(grads)
        return TrainState(state.step + 1, params, state.frozen, opt_state), metrics

    # No buffer donation: an async checkpoint save may still be reading the previous state.
    if sharding is None:
        return jax.jit(train_step)
    return jax.jit(train_step, in_shardings=(sharding.state, sharding.batch),
                   out_shardings=(sharding.state, sharding.replicated))


def make_bare_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                         loss_fn: LossFn = lm_loss) -> Callable[[TrainState, jax.Array], tuple[TrainState, jax.Array]]:
    """The same update with nothing measured but the loss: the baseline for overhead benchmarks."""

    def bare_step(state: TrainState, batch: jax.Array) -> tuple[TrainState, jax.Array]:
        def f(p):
            return loss_fn(nnx.merge(graphdef, p, state.frozen), batch, False)[0]
        loss, grads = jax.value_and_grad(f)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, loss=loss)
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), state.frozen, opt_state), loss

    return jax.jit(bare_step)


def make_eval_step(graphdef: nnx.GraphDef, loss_fn: LossFn = lm_loss) -> Callable[[TrainState, jax.Array], dict]:
    """Jitted eval on one batch: loss and token accuracy (perplexity is exp of the mean loss)."""

    def eval_step(state: TrainState, batch: jax.Array) -> dict[str, jax.Array]:
        loss, aux = loss_fn(nnx.merge(graphdef, state.params, state.frozen), batch, False)
        return {"loss": loss, "accuracy": aux["accuracy"]}

    return jax.jit(eval_step)
