"""Mandatory metric logging: one `MetricLogger` routing each step's scalars to its backends.

Backends: JSONL (always on, no dependency; the `metrics.jsonl` of the contract), CSV, TensorBoard
(tensorboardX, imported lazily because it imports torch when torch is installed), Weights & Biases
(offline with WANDB_MODE=offline; the API key is never printed or logged) and a user callback.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ntjax.core.runfolder import METRICS_FILE
from ntjax.errors import NtjaxError

BACKENDS = ("jsonl", "csv", "tensorboard", "wandb")


def json_value(v: Any) -> Any:
    """A metric value as strict JSON: floats stay numbers, non-finite ones become "nan"/"inf"/"-inf"."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def strict_json(o: Any) -> Any:
    """Any value as plain strict JSON, the one sanitiser for everything ntjax writes or prints: mappings
    and sequences recursively, numpy/torch scalars and arrays unwrapped (`tolist`), non-finite floats as
    the metrics contract's strings, anything else as its text."""
    if isinstance(o, (str, bool)) or o is None:
        return o
    if hasattr(o, "tolist") and not isinstance(o, (bytes, bytearray)):  # numpy and torch scalars/arrays
        o = o.tolist()
    if isinstance(o, Mapping):
        return {str(k): strict_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [strict_json(v) for v in o]
    if isinstance(o, (int, float)):
        return json_value(o)
    return str(o)


def metrics_line(step: int, metrics: Mapping[str, Any], wall_time: float | None = None) -> str:
    """One `metrics.jsonl` line (with its newline): step, time, then the metrics."""
    record = {"step": int(step), "time": round(time.time() if wall_time is None else wall_time, 3)}
    record.update({k: json_value(v) for k, v in metrics.items()})
    return json.dumps(record, allow_nan=False) + "\n"


class Backend(Protocol):
    def write(self, step: int, metrics: Mapping[str, float], wall_time: float) -> None: ...
    def close(self) -> None: ...


class JsonlBackend:
    """Appends one line per call and flushes it, so a killed run leaves at most one torn last line."""

    def __init__(self, log_dir: Path):
        self.path = log_dir / METRICS_FILE
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, step: int, metrics: Mapping[str, float], wall_time: float) -> None:
        self._f.write(metrics_line(step, metrics, wall_time))
        self._f.flush()

    def rewind(self, step: int) -> None:
        """Drop the lines after `step` (a rollback re-runs those steps) and keep appending."""
        self._f.close()
        truncate_after(self.path, step)
        self._f = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        self._f.close()


class CsvBackend:
    """A wide CSV (`metrics.csv`), a row per call. When a call brings new metric names, a new header
    row is written with the widened column set (the CSV reader treats a repeated header as a new block)."""

    def __init__(self, log_dir: Path):
        self.path = log_dir / "metrics.csv"
        self._f = open(self.path, "a", newline="", encoding="utf-8")
        self._fields: list[str] | None = None
        self._writer: csv.DictWriter | None = None

    def write(self, step: int, metrics: Mapping[str, float], wall_time: float) -> None:
        row = {"step": step, "time": round(wall_time, 3), **{k: json_value(v) for k, v in metrics.items()}}
        writer = self._writer
        if writer is None or self._fields is None or not set(row) <= set(self._fields):
            self._fields = list(dict.fromkeys([*(self._fields or []), *row]))
            writer = self._writer = csv.DictWriter(self._f, fieldnames=self._fields)
            writer.writeheader()
        writer.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class TensorBoardBackend:
    """Scalars every call; histograms when `histogram()` is called (the trainer does it sparsely)."""

    def __init__(self, log_dir: Path):
        from tensorboardX import SummaryWriter  # lazy: imports torch when torch is installed
        self._w = SummaryWriter(logdir=str(log_dir / "tensorboard"))

    def write(self, step: int, metrics: Mapping[str, float], wall_time: float) -> None:
        for k, v in metrics.items():
            self._w.add_scalar(k, float(v), global_step=step, walltime=wall_time)

    def histogram(self, step: int, name: str, values: np.ndarray) -> None:
        self._w.add_histogram(name, np.asarray(values, np.float32).ravel(), global_step=step)

    def close(self) -> None:
        self._w.close()


class WandbBackend:
    """Logs to W&B; offline unless the user configured online mode. Never touches the API key."""

    def __init__(self, log_dir: Path, config: Mapping[str, Any] | None, run_name: str | None):
        import wandb
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        self._run = wandb.init(dir=str(log_dir), config=dict(config or {}), name=run_name,
                               project=os.environ.get("WANDB_PROJECT", "ntjax"), reinit="finish_previous")
        self.url = getattr(self._run, "url", None)

    def write(self, step: int, metrics: Mapping[str, float], wall_time: float) -> None:
        self._run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self._run.finish()


class CallbackBackend:
    def __init__(self, fn: Callable[[int, Mapping[str, float]], None]):
        self._fn = fn

    def write(self, step: int, metrics: Mapping[str, float], wall_time: float) -> None:
        self._fn(step, metrics)

    def close(self) -> None:
        pass


def parse_backends(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"jsonl,tensorboard"` -> ("jsonl", "tensorboard"). JSONL is always included; `none` is refused."""
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else (spec or ())) if s.strip()]
    if "none" in names or (spec is not None and not names):
        raise NtjaxError("training without logging is refused: a run you cannot read afterwards cannot be "
                         "diagnosed; use --log jsonl (the default) or add csv,tensorboard,wandb")
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise NtjaxError(f"unknown log backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(["jsonl", *names]))


def check_writable(log_dir: Path, min_free_mb: float = 50.0) -> None:
    """Fail before training, not an hour in, when the log folder is unwritable or the disk nearly full."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        probe = log_dir / ".ntjax-write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise NtjaxError(f"cannot write to the run folder {log_dir}: {e.strerror or e}") from None
    free_mb = os.statvfs(log_dir).f_bavail * os.statvfs(log_dir).f_frsize / 2**20
    if free_mb < min_free_mb:
        raise NtjaxError(f"only {free_mb:.0f} MiB free under {log_dir}; need at least {min_free_mb:.0f} MiB "
                         "for logs and checkpoints")


class MetricLogger:
    """Routes each step's scalar metrics to every configured backend. Use as a context manager."""

    def __init__(self, log_dir: str | os.PathLike, backends: str | Sequence[str] | None = ("jsonl",),
                 config: Mapping[str, Any] | None = None, callback: Callable | None = None,
                 run_name: str | None = None):
        self.log_dir = Path(log_dir)
        check_writable(self.log_dir)
        self.names = parse_backends(backends)
        self.backends: list[Backend] = []
        for name in self.names:
            if name == "jsonl":
                self.backends.append(JsonlBackend(self.log_dir))
            elif name == "csv":
                self.backends.append(CsvBackend(self.log_dir))
            elif name == "tensorboard":
                self.backends.append(TensorBoardBackend(self.log_dir))
            elif name == "wandb":
                self.backends.append(WandbBackend(self.log_dir, config, run_name))
        if callback is not None:
            self.backends.append(CallbackBackend(callback))

    @property
    def metrics_path(self) -> Path:
        return self.log_dir / METRICS_FILE

    @property
    def wandb_url(self) -> str | None:
        return next((b.url for b in self.backends if isinstance(b, WandbBackend)), None)

    def log(self, step: int, metrics: Mapping[str, Any], wall_time: float | None = None) -> None:
        """Write one step's metrics (host scalars: numbers or 0-d arrays) to every backend."""
        wall = time.time() if wall_time is None else wall_time
        plain = {k: (float(v) if not isinstance(v, (bool, np.bool_)) else bool(v)) for k, v in metrics.items()}
        for b in self.backends:
            b.write(int(step), plain, wall)

    def rewind(self, step: int) -> None:
        """Forget the steps after `step` in metrics.jsonl (the other backends keep them; readers take
        the last write of a repeated step)."""
        for b in self.backends:
            if isinstance(b, JsonlBackend):
                b.rewind(step)

    def histogram(self, step: int, name: str, values: np.ndarray) -> None:
        for b in self.backends:
            if isinstance(b, TensorBoardBackend):
                b.histogram(step, name, values)

    def close(self) -> None:
        for b in self.backends:
            b.close()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def truncate_after(path: Path, step: int) -> int:
    """Drop `metrics.jsonl` lines after `step` and any torn line (atomic rewrite). Returns lines kept.

    On resume from a checkpoint at `step`, the steps logged after it are re-run, so their old lines go:
    the file then holds each step once.
    """
    if not path.exists():
        return 0
    kept = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
                if int(rec["step"]) <= step:
                    kept.append(raw if raw.endswith(b"\n") else raw + b"\n")
            except (ValueError, KeyError, TypeError):
                continue
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)
    return len(kept)
