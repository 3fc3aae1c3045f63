"""Shared timing for the JAX benchmarks: interleaved rounds, medians, the machine and its load, one JSON object.

Every benchmark here compares variants measured side by side in one process. Each round runs every
variant once, in an order rotated from round to round, after a discarded warm-up round (compilation);
speeds are 1 / the median sample, so a busy machine slows all variants alike and a load spike does not
decide a ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import jax


class Timing(NamedTuple):
    """One timing sample, in seconds per step."""

    wall: float
    cpu: float


Runner = Callable[[int], list[Timing]]  # run n steps, return timing samples


class Stopwatch:
    """Wall-clock and process CPU time since construction."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def per_step(self, steps: int = 1) -> Timing:
        return Timing((time.perf_counter() - self.wall0) / steps, (time.process_time() - self.cpu0) / steps)


def parser(doc: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: --json, --quick (a seconds-long smoke run), --rounds, --steps."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few rounds: a smoke test, not a measurement")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds after the warm-up round")
    p.add_argument("--steps", type=int, default=None, help="steps of each variant per round")
    return p


def interleaved(runners: dict[str, Runner], rounds: int, steps: int) -> dict[str, list[Timing]]:
    """Timing samples of each runner over `rounds` rounds of `steps` steps, the order rotated each round.

    Round 0 compiles and warms every runner up and is discarded.
    """
    names = list(runners)
    samples: dict[str, list[Timing]] = {k: [] for k in names}
    for r in range(rounds + 1):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            took = runners[name](steps)
            if r:
                samples[name].extend(took)
    return samples


def steps_per_s(samples: list[Timing], clock: str = "wall") -> float:
    """1 / the median seconds per step on `clock` ("wall" or "cpu")."""
    return 1.0 / statistics.median(getattr(t, clock) for t in samples)


def spread(samples: list[Timing], clock: str = "wall") -> float:
    """Relative interquartile range of the samples: how noisy this measurement was."""
    values = [getattr(t, clock) for t in samples]
    q1, med, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / med


def machine() -> dict:
    """What ran the benchmark, and how loaded the host was (1, 5 and 15-minute load averages)."""
    dev = jax.devices()[0]
    return {"backend": dev.platform, "device_kind": dev.device_kind, "device_count": jax.device_count(),
            "host_cpus": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def emit(out: dict, as_json: bool) -> None:
    """One JSON object on stdout, or an aligned human-readable listing."""
    if as_json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:>32}: {v:.4g}" if isinstance(v, float) else f"{k:>32}: {v}")
