"""The μP coordinate check (Yang et al. 2022, §D.1 / Figure 5; the `mup` package's `get_coord_data`):
train ntjax's GPT for a few steps at several widths, under SP and μP, and measure the typical size (RMS)
of each layer's output coordinates and of their change since initialisation.

Under μP every curve stays flat in width (a Θ(1) quantity); under SP with Adam the hidden updates and the
readout grow with width, and a curve that grows is the signature of a parametrization bug. The check
trains with a constant LR, no warmup, no weight decay and no gradient clipping (a fixed global-norm
threshold is not width-invariant and would hide the growth).

Layers measured: `embed` (token + position embedding), per block `blocks.i.attn` and `blocks.i.mlp` (the
residual branches' outputs) and `blocks.i` (the residual stream after the block), and `logits`.
Pure computation: no plotting, no files (`ntjax mup check` draws and writes).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ntjax.core import config as config_lib
from ntjax.errors import NtjaxError

DEFAULT_WIDTHS = (32, 64, 128, 256)
DEFAULT_STEPS = 10
DEFAULT_LR = 1e-2  # large enough that a few Adam steps dominate the init, as in the paper's checks


def check_config(width: int, parametrization: str, base_width: int, *, lr: float = DEFAULT_LR,
                 steps: int = DEFAULT_STEPS, n_layers: int = 2, n_heads: int = 2, seq_len: int = 32,
                 batch_size: int = 8, seed: int = 0) -> config_lib.TrainConfig:
    """The tiny preset at `width` (heads fixed, so d_head grows with width as μP's 1/d_head assumes)."""
    base = config_lib.preset("tiny")
    model = dataclasses.replace(base.model, d_model=width, n_heads=n_heads, n_layers=n_layers, seq_len=seq_len)
    cfg = dataclasses.replace(base, model=model, steps=steps, batch_size=batch_size, micro_batch_size=batch_size,
                              lr=lr, warmup=0, schedule="constant", weight_decay=0.0, clip_norm=0.0,
                              optimizer="adam", parametrization=parametrization, base_width=base_width, seed=seed)
    return config_lib.resolve(cfg)


def _rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(x.astype(jnp.float32))))


def layer_outputs(model: nnx.Module, tokens_BxT: jax.Array) -> dict[str, jax.Array]:
    """Every measured layer's output for ntjax's GPT (the forward of `GPT.__call__`, kept step by step)."""
    T = tokens_BxT.shape[1]
    x = model.embed(tokens_BxT) + model.pos_embed(jnp.arange(T))[None]
    out = {"embed": x}
    for i, block in enumerate(model.blocks):
        a, _ = block.attn(block.ln1(x), False)
        x = x + a
        m = block.mlp(block.ln2(x))
        x = x + m
        out.update({f"blocks.{i}.attn": a, f"blocks.{i}.mlp": m, f"blocks.{i}": x})
    out["logits"] = model(tokens_BxT)[0]
    return out


def _measurer(graphdef: nnx.GraphDef, tokens_BxT: jax.Array):
    """One jitted function: per layer, the output's RMS, the RMS of its change from `ref`, and the outputs."""
    @jax.jit
    def measure(params: Any, frozen: Any, ref: dict[str, jax.Array]) -> tuple[dict, dict, dict]:
        outs = layer_outputs(nnx.merge(graphdef, params, frozen), tokens_BxT)
        return {k: _rms(v) for k, v in outs.items()}, {k: _rms(v - ref[k]) for k, v in outs.items()}, outs
    return measure


def run_width(cfg: config_lib.TrainConfig, steps: int) -> dict[str, dict[str, list[float]]]:
    """Activation RMS and update RMS (|h_t − h_0|) of every layer after 0..steps Adam steps, on a fixed batch."""
    from ntjax.core.optimizer import make_optimizer
    from ntjax.core.step import init_state, make_bare_train_step
    from ntjax.core.task import default_task

    task = default_task(cfg)
    params = nnx.state(task.model, nnx.Param)
    tx = make_optimizer(cfg, optax.constant_schedule(cfg.lr), params)
    graphdef, state = init_state(task.model, tx)
    step = make_bare_train_step(graphdef, tx, task.loss_fn)
    tokens = jnp.asarray(task.train_batch(0))[:, :-1]
    measure = _measurer(graphdef, tokens)
    shapes = jax.eval_shape(lambda p, f: layer_outputs(nnx.merge(graphdef, p, f), tokens), state.params, state.frozen)
    rms0, _, init = measure(state.params, state.frozen, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))
    act: dict[str, list[float]] = {k: [float(v)] for k, v in rms0.items()}
    delta: dict[str, list[float]] = {k: [0.0] for k in rms0}
    for i in range(steps):
        state, _ = step(state, jnp.asarray(task.train_batch(i)))
        a, d, _ = measure(state.params, state.frozen, init)
        for k in act:
            act[k].append(float(a[k]))
            delta[k].append(float(d[k]))
    return {"activation": act, "update": delta}


def ratios(curves: dict[str, dict[str, list[float]]], widths: Sequence[int], step: int = -1) -> dict[str, float]:
    """Per layer, RMS at the widest width / RMS at the narrowest, at `step` (default: the last)."""
    lo, hi = str(min(widths)), str(max(widths))
    return {layer: curves[hi][layer][step] / max(curves[lo][layer][step], 1e-30) for layer in curves[lo]}


def slopes(curves: dict[str, dict[str, list[float]]], widths: Sequence[int], step: int = -1) -> dict[str, float]:
    """Per layer, the least-squares slope of log RMS against log width at `step` (0: flat; 1: ∝ width)."""
    x = np.log([float(w) for w in widths])
    out = {}
    for layer in curves[str(widths[0])]:
        y = np.log([max(curves[str(w)][layer][step], 1e-30) for w in widths])
        out[layer] = float(np.polyfit(x, y, 1)[0])
    return out


def coord_check(widths: Sequence[int] = DEFAULT_WIDTHS, steps: int = DEFAULT_STEPS, *, lr: float = DEFAULT_LR,
                parametrizations: Sequence[str] = ("sp", "mup"), base_width: int | None = None,
                seed: int = 0, n_layers: int = 2, n_heads: int = 2) -> dict[str, Any]:
    """The coordinate check: for each parametrization and width, per-layer activation and update RMS over
    steps 0..`steps`, and their widest/narrowest ratios and log-log slopes at the last step.

    `coord_ratio` is the largest activation-RMS ratio (widest / narrowest) over layers; `update_ratio` the
    same for the change since init. Both stay near 1 under μP and grow with the width range under SP.
    """
    widths = sorted(set(int(w) for w in widths))
    if len(widths) < 2 or widths[0] <= 0:
        raise NtjaxError(f"the coordinate check needs at least two positive widths (got {widths})")
    if steps < 1:
        raise NtjaxError(f"--steps must be at least 1 (got {steps})")
    bad = [w for w in widths if w % n_heads]
    if bad:
        raise NtjaxError(f"widths {bad} are not divisible by the {n_heads} heads")
    base = base_width or widths[0]
    result: dict[str, Any] = {"widths": widths, "steps": steps, "lr": lr, "base_width": base, "seed": seed,
                              "n_layers": n_layers, "n_heads": n_heads, "results": {}}
    for p in parametrizations:
        act: dict[str, dict[str, list[float]]] = {}
        upd: dict[str, dict[str, list[float]]] = {}
        for w in widths:
            cfg = check_config(w, p, base, lr=lr, steps=steps, n_layers=n_layers, n_heads=n_heads, seed=seed)
            r = run_width(cfg, steps)
            act[str(w)], upd[str(w)] = r["activation"], r["update"]
        act_ratio, upd_ratio = ratios(act, widths), ratios(upd, widths)
        result["results"][p] = {
            "activation": act, "update": upd,
            "activation_ratio": act_ratio, "update_ratio_by_layer": upd_ratio,
            "activation_slope": slopes(act, widths), "update_slope": slopes(upd, widths),
            "coord_ratio": max(act_ratio.values()), "update_ratio": max(upd_ratio.values()),
            "finite": all(math.isfinite(v) for c in act.values() for vs in c.values() for v in vs),
        }
    result["layers"] = list(next(iter(result["results"].values()))["activation"][str(widths[0])])
    return result
