"""The run folder a bridge writes: `config.json` once, then one `metrics.jsonl` line per step, and
`status.json` (running, then finished or crashed; see `ntjax.core.runfolder`).

A step's line is held back until the step is complete (the optimizer has applied its update, so the
update/parameter ratios can join it) and written as one line: readers see each step once.

Where: the `log_dir` given; else `$NTJAX_RUN_DIR` (set by `ntjax run`); else a fresh folder
`runs/<name>-<date>-<time>` per run. A folder whose `metrics.jsonl` already holds a run is refused unless
`resume=True`: a second run appended to the first would read as one run.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ntjax.core.logger import MetricLogger, strict_json
from ntjax.core.runfolder import CONFIG_FILE, METRICS_FILE, write_status

RUN_DIR_ENV = "NTJAX_RUN_DIR"


class RunFolderInUse(FileExistsError):
    """The log folder already holds a run's metrics and `resume=True` was not given."""


def resolve_log_dir(log_dir: str | os.PathLike | None, name: str = "run") -> Path:
    """The folder a monitor writes to: `log_dir`, else `$NTJAX_RUN_DIR`, else a new `runs/<name>-<time>`."""
    if log_dir is not None:
        return Path(log_dir)
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = base, 1
    while folder.exists():
        folder, n = base.with_name(f"{base.name}-{n}"), n + 1
    return folder


def check_fresh(log_dir: Path, resume: bool) -> None:
    """Refuse a folder whose metrics.jsonl already holds lines, unless resuming that run."""
    metrics = log_dir / METRICS_FILE
    if not resume and metrics.is_file() and metrics.stat().st_size > 0:
        raise RunFolderInUse(f"{metrics} already holds a run: pass resume=True to continue it, or another "
                             "log_dir (with no log_dir, each run gets a fresh folder under runs/)")


def eval_names(metrics: Mapping[str, Any]) -> dict[str, float]:
    """`{"loss": v, "acc": a}` -> `{"eval/loss": v, "eval/acc": a}`; names already under `eval/` stay."""
    return {(k if k.startswith("eval/") else f"eval/{k}"): float(v) for k, v in metrics.items()}


class StepRecorder:
    """Holds the logger, the pending step line and the wall clock behind `train/throughput`."""

    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, log_dir: str | os.PathLike | None, backends: str | Sequence[str], config: Mapping[str, Any],
                 run_name: str | None = None, *, resume: bool = False, name: str = "run"):
        self.log_dir = resolve_log_dir(log_dir, name)
        check_fresh(self.log_dir, resume)
        if log_dir is None:  # say where a defaulted folder is
            print(f"ntjax: logging this run to {self.log_dir}", file=sys.stderr)
        self.logger = MetricLogger(self.log_dir, backends, config=config, run_name=run_name)
        (self.log_dir / CONFIG_FILE).write_text(json.dumps(strict_json(config), indent=2) + "\n")
        self._pending: tuple[int, dict[str, float]] | None = None
        self._last_time: float | None = None
        self.last_step: int | None = None
        self.closed = False
        write_status(self.log_dir, "running")
        atexit.register(_end_at_exit, weakref.ref(self))  # a script that never calls close() still ends its run

    def throughput(self, batch_size: int | None) -> dict[str, float]:
        """`train/throughput` in samples/s over the time since the previous step was logged."""
        now = self.clock()
        last, self._last_time = self._last_time, now
        if last is None or not batch_size or now <= last:
            return {}
        return {"train/throughput": batch_size / (now - last)}

    def stage(self, step: int, metrics: Mapping[str, float]) -> None:
        """Start a step's line (writing the previous one if it is still pending)."""
        self.flush()
        self._pending = (int(step), dict(metrics))

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    def add(self, metrics: Mapping[str, float]) -> None:
        """Add metrics to the pending line (no-op when none is pending)."""
        if self._pending is not None:
            self._pending[1].update(metrics)

    def flush(self) -> None:
        if self._pending is not None:
            step, metrics = self._pending
            self._pending = None
            self.logger.log(step, metrics)
            self.last_step = step

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.flush()
        self.logger.log(int(step), eval_names(metrics))

    def close(self, state: str = "finished", reason: str | None = None) -> None:
        """Write the pending line, close the backends and mark the run `finished` (or `crashed`)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.flush()
        finally:
            self.logger.close()
            write_status(self.log_dir, state, step=self.last_step, reason=reason)


def _end_at_exit(ref: weakref.ref[StepRecorder]) -> None:
    """At interpreter exit, end a run nobody closed: crashed if an uncaught exception is ending the process."""
    recorder = ref()
    if recorder is None or recorder.closed:
        return
    error = getattr(sys, "last_value", None)
    with contextlib.suppress(OSError):  # the folder may be gone (a temporary one): nothing left to mark
        recorder.close("crashed" if error is not None else "finished",
                       reason=f"{type(error).__name__}: {error}" if error is not None else "monitor not closed")


def warn_nonfinite(step: int, loss: float | None, first: str | None, framework: str) -> None:
    """One clear warning naming where the first non-finite value is."""
    where = f"first non-finite gradient in {first!r}" if first else "gradients are finite"
    warnings.warn(f"ntjax {framework} bridge: non-finite values at step {step} (loss={loss}); {where}",
                  RuntimeWarning, stacklevel=3)
