"""Cost of reading metrics on the host: steps/s of the instrumented step with its metrics fetched every step
synchronously, every N steps, one step late (the trainer's pattern), and never.

    python benchmarks/logging_sync.py --json [--presets default tiny] [--every 10]

- none: dispatch steps and never read their metrics (the speed the device alone allows);
- every_step: dispatch a step, then read its metrics at once: the host waits for the device each step,
  and the device waits while the host reads and dispatches the next step;
- every_n: the same read on every N-th step only;
- one_step_late: dispatch step N+1, then read step N's metrics (nanodo's and our trainer's pattern):
  the read overlaps the next step's compute.
A read is what the trainer does: `jax.device_get` of the whole metrics dict and a float per metric. Each
round runs `--steps` steps of every variant, in rotated order, ending when the last state is ready; a
sample is the round's time per step, and speeds are 1 / the median sample. `read_ms` times one read of
a finished step's metrics alone: the host work that one-step-late reading overlaps but does not remove. The top-level
`ratio` is the
trainer's pattern over no reading at all, for the first preset.
"""
from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
from common import Runner, Stopwatch, Timing, emit, interleaved, machine, parser, spread, steps_per_s

from ntjax.core import config as config_lib
from ntjax.core.state import build_state
from ntjax.core.step import make_train_step

POLICIES = ("none", "every_step", "every_n", "one_step_late")
# Steps per round: a round of the default preset takes ~2 s on 2 cores, the tiny one's ~0.1 s.
DEFAULT_STEPS = {"tiny": 50, "default": 10}
DEFAULT_ROUNDS = {"tiny": 40, "default": 20}


def read(metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Metrics to host floats, as the trainer reads them."""
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def training_loop(step_fn, state, batches: list[jax.Array], policy: str, every: int) -> Runner:
    """A runner that trains `n` steps reading metrics by `policy`; one timing sample per call."""
    box = [state, 0]  # the state and the number of steps taken

    def run(n: int) -> list[Timing]:
        clock = Stopwatch()
        state, taken, pending = box[0], box[1], None
        for _ in range(n):
            state, metrics = step_fn(state, batches[taken % len(batches)])
            taken += 1
            if policy == "every_step" or (policy == "every_n" and taken % every == 0):
                read(metrics)
            elif policy == "one_step_late":
                if pending is not None:
                    read(pending)
                pending = metrics
        if pending is not None:
            read(pending)
        jax.block_until_ready(state)
        box[0], box[1] = state, taken
        return [clock.per_step(n)]
    return run


def read_ms(step_fn, state, batch: jax.Array, repeats: int) -> float:
    """Median milliseconds of one read of a finished step's metrics: the host work each read costs."""
    _, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        fresh = jax.tree.map(lambda x: x + 0, metrics)  # new arrays: nothing cached on the host yet
        jax.block_until_ready(fresh)
        clock = Stopwatch()
        read(fresh)
        times.append(clock.per_step().wall)
    return 1e3 * statistics.median(times)


def measure(cfg: config_lib.TrainConfig, rounds: int, steps: int, every: int) -> dict:
    """Steps/s of each reading policy on one config, and each one's ratio to not reading at all."""
    cfg = config_lib.resolve(cfg)
    task, graphdef, state, make_tx = build_state(cfg)
    tx, schedule = make_tx(1.0)
    step_fn = make_train_step(graphdef, tx, schedule, loss_fn=task.loss_fn, accum_steps=cfg.accum_steps)
    batches = [jnp.asarray(task.train_batch(i)) for i in range(4)]
    samples = interleaved({p: training_loop(step_fn, state, batches, p, every) for p in POLICIES}, rounds, steps)
    rate = {p: steps_per_s(v) for p, v in samples.items()}
    cpu = {p: steps_per_s(v, "cpu") for p, v in samples.items()}
    out: dict = {"preset": cfg.preset, "batch": [cfg.batch_size, cfg.model.seq_len], "every": every,
                 "metrics_per_step": len(jax.eval_shape(step_fn, state, batches[0])[1])}
    for p in POLICIES:
        out[f"{p}_steps_per_s"] = rate[p]
    for p in POLICIES[1:]:
        out[f"{p}_ratio"] = rate[p] / rate["none"]
        out[f"cpu_{p}_ratio"] = cpu[p] / cpu["none"]
    out.update(read_ms=read_ms(step_fn, state, batches[0], 50),
               step_ms={p: 1e3 / v for p, v in rate.items()},
               relative_iqr={p: spread(v) for p, v in samples.items()},
               rounds=rounds, steps_per_round=steps)
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--presets", nargs="+", default=None, help="presets to measure (default: default tiny)")
    p.add_argument("--every", type=int, default=10, help="N of the every-N-steps policy")
    args = p.parse_args()
    presets = args.presets or (["tiny"] if args.quick else ["default", "tiny"])
    load_before = machine()["load_average"]
    results = []
    for name in presets:
        rounds = args.rounds or (2 if args.quick else DEFAULT_ROUNDS.get(name, 20))
        steps = args.steps or (args.every if args.quick else DEFAULT_STEPS.get(name, 10))
        results.append(measure(config_lib.preset(name), rounds, steps, args.every))
    first = results[0]
    out = {"no_logging_steps_per_s": first["none_steps_per_s"],
           "one_step_late_steps_per_s": first["one_step_late_steps_per_s"],
           "ratio": first["one_step_late_ratio"],
           "every_step_ratio": first["every_step_ratio"], "every_n_ratio": first["every_n_ratio"],
           "presets": {r["preset"]: r for r in results}, "load_average_before": load_before, "machine": machine()}
    emit(out, args.json)


if __name__ == "__main__":
    main()
