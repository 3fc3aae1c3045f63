"""μP hyperparameter transfer on CPU-sized widths: the best LR of a log grid at each width, SP vs μP.

    python benchmarks/mup_transfer.py --json [--quick]

ntjax's GPT (1 block, 2 heads fixed, byte-level, seq 32, batch 8) at widths 32 → 256 is trained for a
fixed number of AdamW steps (300) (cosine schedule, 10% warmup, no weight decay, no gradient clipping) at every
LR of a factor-2 grid, under SP and under μP with base width = the narrowest width. All LRs of one width
train at once (`jax.vmap` over the LR, one compilation per width and parametrization). The score is the
final held-out loss (16 batches); a diverged run scores +inf. One block and 300 steps: a first run with two
blocks and 150 steps left the models near the unigram plateau, with jagged loss-vs-LR curves whose
argmin was noise (benchmarks/RESULTS.md). Fields:

  sp_best_lr, mup_best_lr   the grid's best LR at each width (lists in the order of `widths`)
  lr_grid_step              the log10 spacing of the grid (log10 2 = 0.301: one step = a factor of 2)
  sp_lr_shift, mup_lr_shift the spread of the best LR across widths, in grid steps (max − min index)
  sp_coord_ratio, mup_coord_ratio   the coordinate check (`ntjax.scaling.coord_check`): the largest activation
                            RMS ratio, widest / narrowest, after `coord_steps` steps at lr 1e-2
  sp_coord_slope, mup_coord_slope   the largest log-log slope of activation RMS against width
  losses                    the final eval loss of every (parametrization, width, LR)

μP predicts mup_lr_shift ≤ 1 and mup_coord_ratio near 1; SP's best LR drifts down with width and its
coordinates grow. --quick is a seconds-long smoke run (two tiny widths, three LRs), not a measurement.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import emit, machine, parser  # noqa: E402
from ntjax.core import config as config_lib  # noqa: E402
from ntjax.core.optimizer import make_optimizer  # noqa: E402
from ntjax.core.schedules import make_schedule  # noqa: E402
from ntjax.core.task import default_task  # noqa: E402
from ntjax.scaling.coord_check import coord_check  # noqa: E402

FULL = {"widths": (32, 64, 128, 256), "lrs": tuple(3.75e-4 * 2 ** k for k in range(8)), "steps": 300,
        "coord_steps": 10, "layers": 1}
QUICK = {"widths": (16, 32), "lrs": (1e-3, 2e-3, 4e-3), "steps": 4, "coord_steps": 2, "layers": 1}


def bench_config(width: int, parametrization: str, base_width: int, steps: int, layers: int) -> config_lib.TrainConfig:
    base = config_lib.preset("tiny")
    model = dataclasses.replace(base.model, d_model=width, n_heads=2, n_layers=layers, seq_len=32)
    cfg = dataclasses.replace(base, model=model, steps=steps, batch_size=8, micro_batch_size=8, lr=1.0,
                              warmup=max(1, steps // 10), schedule="cosine", optimizer="adamw", weight_decay=0.0,
                              clip_norm=0.0, parametrization=parametrization, base_width=base_width, eval_batches=16)
    return config_lib.resolve(cfg)


def lr_losses(cfg: config_lib.TrainConfig, lrs: tuple[float, ...]) -> list[float]:
    """Final eval loss after `cfg.steps` steps at each LR (vmapped over the LRs; one compilation)."""
    task = default_task(cfg)
    graphdef, params, rest = nnx.split(task.model, nnx.Param, ...)
    shape = make_schedule(cfg.schedule, 1.0, cfg.steps, cfg.warmup, cfg.min_lr_ratio)  # peak 1, times the LR
    batches = jnp.asarray(np.stack([task.train_batch(i) for i in range(cfg.steps)]))
    evals = jnp.asarray(np.stack(task.eval_batches))

    def loss_of(p: Any, batch: jax.Array) -> jax.Array:
        return task.loss_fn(nnx.merge(graphdef, p, rest), batch)[0]

    def train(lr: jax.Array) -> jax.Array:
        tx = make_optimizer(cfg, lambda count: lr * shape(count), params)  # SP or μP: ntjax's own optimizer

        def body(carry, batch):
            p, opt = carry
            g = jax.grad(loss_of)(p, batch)
            updates, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, updates), opt), None

        (p, _), _ = jax.lax.scan(body, (params, tx.init(params)), batches)
        return jnp.mean(jax.vmap(lambda b: loss_of(p, b))(evals))

    out = jax.jit(jax.vmap(train))(jnp.asarray(lrs, jnp.float32))
    return [float(x) if math.isfinite(float(x)) else math.inf for x in np.asarray(out)]


def best(lrs: tuple[float, ...], losses: list[float]) -> tuple[float, int]:
    i = int(np.argmin(losses))
    return lrs[i], i


def main() -> None:
    p = parser(__doc__)
    args = p.parse_args()
    setup = QUICK if args.quick else FULL
    widths, lrs, steps = setup["widths"], setup["lrs"], args.steps or setup["steps"]
    started = time.time()
    out: dict[str, Any] = {"widths": list(widths), "lr_grid": list(lrs), "lr_grid_step": math.log10(lrs[1] / lrs[0]),
                           "steps": steps, "base_width": widths[0], "losses": {}}
    for param in ("sp", "mup"):
        found, index = [], []
        out["losses"][param] = {}
        for w in widths:
            losses = lr_losses(bench_config(w, param, widths[0], steps, setup["layers"]), lrs)
            out["losses"][param][str(w)] = losses
            lr, i = best(lrs, losses)
            found.append(lr)
            index.append(i)
            print(f"{param} width {w}: best lr {lr:.3g}; losses {[round(x, 3) for x in losses]}", file=sys.stderr)
        out[f"{param}_best_lr"] = found
        out[f"{param}_lr_shift"] = max(index) - min(index)
    check = coord_check(widths, setup["coord_steps"], n_layers=setup["layers"])
    for param in ("sp", "mup"):
        r = check["results"][param]
        out[f"{param}_coord_ratio"] = r["coord_ratio"]
        out[f"{param}_update_ratio"] = r["update_ratio"]
        out[f"{param}_coord_slope"] = max(r["activation_slope"].values())
    out["coord_steps"] = setup["coord_steps"]
    out["wall_s"] = time.time() - started
    out["machine"] = machine()
    emit(out, args.json)


if __name__ == "__main__":
    main()
