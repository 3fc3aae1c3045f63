"""Cost of monitoring inside the compiled step: the instrumented train step against a bare jitted optax step.

    python benchmarks/step_overhead.py --json [--presets default small] [--probe-every 50]

For each preset, four steps on the same model, optimizer and batches, in interleaved rounds in one process:
- bare: `make_bare_train_step`, loss and update only;
- global: the instrumented step without per-layer metrics (loss, accuracy, global grad/param/update
  norms, LR, non-finite flag) — it splits the overhead into its global and per-layer parts;
- instrumented: what the trainer runs every step (the above plus per-layer grad norms and update ratios);
- probe: the sampled variant the trainer runs every `probe_every` steps (plus activation stats,
  attention entropy and max attention logit per layer).
Each round runs one step of each variant (the finest interleaving: neighbouring steps see the same load),
timed to `block_until_ready` on all its outputs; speeds are 1 / the median step time, on the wall clock
(the contract's fields) and on this process's CPU time (`cpu_*`: steadier on a shared machine).
XLA's cost analysis of each compiled step (FLOPs, bytes accessed) gives a noise-free view of the same overhead.
The amortised figure is the trainer's mix: one probe step and `probe_every - 1` instrumented steps.
The top-level contract fields (`bare_steps_per_s`, `instrumented_steps_per_s`, `ratio`) are the first
preset's (the default preset unless --presets says otherwise).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from common import Runner, Stopwatch, Timing, emit, interleaved, machine, parser, spread, steps_per_s

from ntjax.core import config as config_lib
from ntjax.core.state import build_state
from ntjax.core.step import make_bare_train_step, make_train_step

# Rounds of one step per variant: the default preset's step takes ~0.2 s on 2 cores, the small one's ~4 s.
DEFAULT_ROUNDS = {"tiny": 200, "default": 60, "small": 8}


def stepper(step_fn, state, batches: list[jax.Array]) -> Runner:
    """A runner that advances its own copy of the state, timing each step to completion."""
    box = [state, 0]  # the state and the number of steps taken

    def run(n: int) -> list[Timing]:
        times = []
        for _ in range(n):
            clock = Stopwatch()
            box[0], out = step_fn(box[0], batches[box[1] % len(batches)])
            jax.block_until_ready((box[0], out))
            box[1] += 1
            times.append(clock.per_step())
        return times
    return run


def xla_cost(step_fn, state, batch: jax.Array) -> dict[str, float]:
    """XLA's own count of the compiled step's FLOPs and bytes accessed: a noise-free view of the overhead."""
    cost = step_fn.lower(state, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost["flops"]), "bytes": float(cost["bytes accessed"])}


def amortise(every_step: float, probe: float, probe_every: int) -> float:
    """Steps/s of the trainer's mix: one probe step per `probe_every` steps, instrumented steps otherwise."""
    return probe_every / ((probe_every - 1) / every_step + 1.0 / probe)


def measure(cfg: config_lib.TrainConfig, rounds: int, steps: int, probe_every: int) -> dict:
    """Steps/s of the bare, global-only, instrumented and probe steps of one config, and their ratios."""
    cfg = config_lib.resolve(cfg)
    task, graphdef, state, make_tx = build_state(cfg)
    tx, schedule = make_tx(1.0)
    kw = dict(loss_fn=task.loss_fn, accum_steps=cfg.accum_steps)
    steps_fns = {
        "bare": make_bare_train_step(graphdef, tx, loss_fn=task.loss_fn),
        "global": make_train_step(graphdef, tx, schedule, per_layer=False, **kw),
        "instrumented": make_train_step(graphdef, tx, schedule, **kw),
        "probe": make_train_step(graphdef, tx, schedule, probes=True, **kw),
    }
    batches = [jnp.asarray(task.train_batch(i)) for i in range(4)]
    cost = {k: xla_cost(f, state, batches[0]) for k, f in steps_fns.items()}
    samples = interleaved({k: stepper(f, state, batches) for k, f in steps_fns.items()}, rounds, steps)
    rate = {k: steps_per_s(v) for k, v in samples.items()}
    cpu = {k: steps_per_s(v, "cpu") for k, v in samples.items()}
    return {
        "preset": cfg.preset, "n_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
        "parameter_leaves": len(jax.tree.leaves(state.params)), "accum_steps": cfg.accum_steps,
        "batch": [cfg.batch_size, cfg.model.seq_len],
        "bare_steps_per_s": rate["bare"],
        "instrumented_steps_per_s": rate["instrumented"],
        "ratio": rate["instrumented"] / rate["bare"],
        "global_only_steps_per_s": rate["global"],
        "global_only_ratio": rate["global"] / rate["bare"],
        "probe_steps_per_s": rate["probe"],
        "probe_ratio": rate["probe"] / rate["bare"],
        "probe_every": probe_every,
        "amortised_steps_per_s": amortise(rate["instrumented"], rate["probe"], probe_every),
        "amortised_ratio": amortise(rate["instrumented"], rate["probe"], probe_every) / rate["bare"],
        "cpu_ratio": cpu["instrumented"] / cpu["bare"],
        "cpu_global_only_ratio": cpu["global"] / cpu["bare"],
        "cpu_probe_ratio": cpu["probe"] / cpu["bare"],
        "cpu_amortised_ratio": amortise(cpu["instrumented"], cpu["probe"], probe_every) / cpu["bare"],
        # bare / variant, like the speed ratios: below 1 means the variant does more work.
        "xla_flops_ratio": {k: cost["bare"]["flops"] / c["flops"] for k, c in cost.items()},
        "xla_bytes_ratio": {k: cost["bare"]["bytes"] / c["bytes"] for k, c in cost.items()},
        "step_ms": {k: 1e3 / v for k, v in rate.items()},
        "cpu_step_ms": {k: 1e3 / v for k, v in cpu.items()},
        "relative_iqr": {k: spread(v) for k, v in samples.items()},
        "samples_per_variant": len(samples["bare"]),
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--presets", nargs="+", default=None, help="presets to measure (default: default small)")
    p.add_argument("--probe-every", type=int, default=config_lib.TrainConfig.probe_every,
                   help="the trainer's probe schedule, for the amortised figure")
    args = p.parse_args()
    presets = args.presets or (["tiny"] if args.quick else ["default", "small"])
    load_before = machine()["load_average"]
    results = []
    for name in presets:
        rounds = args.rounds or (2 if args.quick else DEFAULT_ROUNDS.get(name, 10))
        results.append({**measure(config_lib.preset(name), rounds, args.steps or 1, args.probe_every),
                        "rounds": rounds})
    first = results[0]
    out = {key: first[key] for key in ("bare_steps_per_s", "instrumented_steps_per_s", "ratio", "probe_steps_per_s",
                                       "probe_ratio", "amortised_ratio", "cpu_ratio")}
    out.update(presets={r["preset"]: r for r in results}, load_average_before=load_before, machine=machine())
    emit(out, args.json)


if __name__ == "__main__":
    main()
