"""Log reading speed: `ntjax.readers.read_run` against the obvious baselines, side by side in one process.

    python benchmarks/readers.py --json [--rows 1000000] [--tb-scalars 200000] [--rounds 3]

- JSONL: an ntjax-style `metrics.jsonl` (train rows plus an eval row every 100 steps) read into a run
  table, against stdlib `json.loads` per line into dicts (no columns built: the baseline does less).
- CSV: a dense CSV, against `pandas.read_csv` when pandas is installed, else the stdlib `csv` module
  plus `float()` per cell into columns.
- TensorBoard: an event file of scalars written by tensorboardX, against TensorBoard's
  `EventAccumulator` (with `size_guidance={"scalars": 0}`, i.e. keeping every point as we do).
Rounds alternate the two sides and the median round is reported, so a busy machine slows both alike.
`*_ratio` fields are ours / baseline (below 1: ntjax reads faster); `*_speedup` fields are the same
figures the other way up (baseline / ours, the "N x faster" of the issues), and `cpu_*_speedup` the same on
this process's CPU time, which the other tenants of a shared machine disturb much less.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ntjax.readers import read_run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # EventAccumulator imports TensorFlow when present


def write_jsonl(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    loss = (3 + rng.random(rows)).tolist()
    with open(path, "w") as f:
        for i in range(rows):
            f.write(f'{{"step": {i}, "time": {1.7e9 + i * 0.1:.3f}, "train/loss": {loss[i]!r}, '
                    f'"train/lr": 0.0003, "train/grad_norm": {loss[i] / 3!r}}}\n')
            if i % 100 == 0:
                f.write(f'{{"step": {i}, "time": {1.7e9 + i * 0.1:.3f}, "eval/loss": {loss[i] + 0.1!r}}}\n')


def write_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    loss = (3 + rng.random(rows)).tolist()
    with open(path, "w") as f:
        f.write("step,time,train/loss,train/lr,train/grad_norm\n")
        for i in range(rows):
            f.write(f"{i},{1.7e9 + i * 0.1:.3f},{loss[i]!r},0.0003,{loss[i] / 3!r}\n")


def write_events(folder: Path, scalars: int) -> None:
    from tensorboardX import SummaryWriter
    rng = np.random.default_rng(2)
    with SummaryWriter(logdir=str(folder)) as w:
        for i in range(scalars // 2):
            w.add_scalar("train/loss", float(3 + rng.random()), global_step=i)
            w.add_scalar("train/lr", 3e-4, global_step=i)


def json_baseline(path: Path) -> int:
    with open(path, "rb") as f:
        return len([json.loads(line) for line in f])


def csv_baseline(path: Path) -> int:
    try:
        import pandas
        return len(pandas.read_csv(path))
    except ImportError:
        with open(path, newline="") as f:
            header, *rows = csv.reader(f)
        columns = [[float(c) for c in col] for col in zip(*rows)]
        return len(columns[0])


def tensorboard_baseline(folder: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])


def ours(path: Path) -> int:
    table = read_run(path)
    return sum(len(s) for s in table.series.values())


def timed(fn, path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one call (CPU time counts every thread of this process)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(path)
    return time.perf_counter() - t0, time.process_time() - c0


def side_by_side(path: Path, baseline, rounds: int) -> tuple[float, float, float, float]:
    """Median wall seconds of ours and of the baseline over alternating rounds, then median CPU seconds."""
    a, b = [], []
    for _ in range(rounds):
        a.append(timed(ours, path))
        b.append(timed(baseline, path))
    def med(xs, i):
        return statistics.median(x[i] for x in xs)
    return med(a, 0), med(b, 0), med(a, 1), med(b, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tb-scalars", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    try:
        import pandas  # noqa: F401
        csv_base = "pandas.read_csv"
    except ImportError:
        csv_base = "stdlib csv + float"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_jsonl(tmp / "metrics.jsonl", args.rows)
        write_csv(tmp / "metrics.csv", args.rows)
        write_events(tmp / "tb", args.tb_scalars)
        write_events(tmp / "warm", 10)  # imports (TensorFlow for EventAccumulator) are not timed
        ours(tmp / "warm")
        tensorboard_baseline(tmp / "warm")
        load_before = os.getloadavg()
        jsonl_s, json_s, jsonl_c, json_c = side_by_side(tmp / "metrics.jsonl", json_baseline, args.rounds)
        csv_s, csv_base_s, csv_c, csv_base_c = side_by_side(tmp / "metrics.csv", csv_baseline, args.rounds)
        tb_s, ea_s, tb_c, ea_c = side_by_side(tmp / "tb", tensorboard_baseline, args.rounds)
        result = {
            "jsonl_rows": args.rows, "jsonl_mb": round((tmp / "metrics.jsonl").stat().st_size / 2**20, 1),
            "jsonl_s": round(jsonl_s, 3), "json_baseline_s": round(json_s, 3),
            "jsonl_ratio": round(jsonl_s / json_s, 3),
            "csv_rows": args.rows, "csv_s": round(csv_s, 3), "csv_baseline": csv_base,
            "csv_baseline_s": round(csv_base_s, 3), "csv_ratio": round(csv_s / csv_base_s, 3),
            "tb_scalars": args.tb_scalars, "tb_s": round(tb_s, 3), "event_accumulator_s": round(ea_s, 3),
            "tb_ratio": round(tb_s / ea_s, 3), "rounds": args.rounds,
            "jsonl_speedup": round(json_s / jsonl_s, 2), "csv_speedup": round(csv_base_s / csv_s, 2),
            "tb_speedup": round(ea_s / tb_s, 2), "cpu_jsonl_speedup": round(json_c / jsonl_c, 2),
            "cpu_csv_speedup": round(csv_base_c / csv_c, 2), "cpu_tb_speedup": round(ea_c / tb_c, 2),
            "load_average": [round(x, 2) for x in load_before] + [round(x, 2) for x in os.getloadavg()],
        }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22s} {v}")


if __name__ == "__main__":
    main()
