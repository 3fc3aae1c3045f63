"""The run folder a bridge writes: `config.json` once, then one `metrics.jsonl` line per step.

A step's line is held back until the step is complete (the optimizer has applied its update, so the
update/parameter ratios can join it) and written as one line: readers see each step once.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from ntjax.core.logger import MetricLogger
from ntjax.core.logger import strict_json
from ntjax.core.runfolder import CONFIG_FILE



def eval_names(metrics: Mapping[str, Any]) -> dict[str, float]:
    """`{"loss": v, "acc": a}` -> `{"eval/loss": v, "eval/acc": a}`; names already under `eval/` stay."""
    return {(k if k.startswith("eval/") else f"eval/{k}"): float(v) for k, v in metrics.items()}


class StepRecorder:
    """Holds the logger, the pending step line and the wall clock behind `train/throughput`."""

    def __init__(self, log_dir: str | os.PathLike, backends: str | Sequence[str], config: Mapping[str, Any],
                 run_name: str | None = None):
        self.log_dir = Path(log_dir)
        self.logger = MetricLogger(self.log_dir, backends, config=config, run_name=run_name)
        (self.log_dir / CONFIG_FILE).write_text(json.dumps(strict_json(config), indent=2) + "\n")
        self._pending: tuple[int, dict[str, float]] | None = None
        self._last_time: float | None = None

    def throughput(self, batch_size: int | None) -> dict[str, float]:
        """`train/throughput` in samples/s over the time since the previous step was logged."""
        now = time.perf_counter()
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

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.flush()
        self.logger.log(int(step), eval_names(metrics))

    def close(self) -> None:
        self.flush()
        self.logger.close()


def warn_nonfinite(step: int, loss: float | None, first: str | None, framework: str) -> None:
    """One clear warning naming where the first non-finite value is."""
    where = f"first non-finite gradient in {first!r}" if first else "gradients are finite"
    warnings.warn(f"ntjax {framework} bridge: non-finite values at step {step} (loss={loss}); {where}",
                  RuntimeWarning, stacklevel=3)
