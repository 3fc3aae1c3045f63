"""Progress of a training run: the live rich bar on a terminal, plain `progress:` lines off one
(loss, LR, grad norm, throughput, elapsed and ETA in both)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import IO, Any

from ntjax.viz.progress_lines import Cadence, emit, train_line


class ProgressBar:
    """A rich progress bar on stderr showing loss, LR, grad norm, throughput and ETA (or nothing)."""

    def __init__(self, enabled: bool, total: int, start: int, console: Any):
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             TextColumn("{task.fields[info]}"), console=console or Console(stderr=True),
                             transient=False)
        self._task = self._bar.add_task("train", total=total, completed=start, info="")
        self._bar.start()

    def update(self, m: dict[str, float]) -> None:
        if self._bar is None:
            return
        info = (f"loss {m.get('train/loss', math.nan):.4f}  lr {m.get('train/lr', math.nan):.2e}  "
                f"gnorm {m.get('train/grad_norm', math.nan):.3f}  {m.get('train/tokens_per_s', 0):,.0f} tok/s")
        self._bar.update(self._task, advance=1, info=info)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class LineProgress:
    """Plain `progress: train ...` lines at a steady cadence and at every eval/checkpoint (or nothing when
    `every_s` <= 0): what a reader of a piped or redirected output sees instead of the rich bar."""

    def __init__(self, every_s: float, total: int, start: int, stream: IO[str] | None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.stream, self.clock = total, stream, clock
        self.enabled = every_s > 0 and stream is not None
        self._cadence = Cadence(every_s, clock)
        self._t0 = clock()
        self._first: tuple[int, float] | None = None  # (step, time) after the compile step, for the rate
        self._step, self._metrics = start, {}
        self._last_eval: tuple[int, float] | None = None

    def _emit(self) -> None:
        if self.enabled and self._metrics:
            now = self.clock()
            rate = None
            if self._first is not None and self._step > self._first[0] and now > self._first[1]:
                rate = (self._step - self._first[0]) / (now - self._first[1])
            emit(train_line(self._step, self.total, self._metrics, self._last_eval, now - self._t0, rate),
                 self.stream)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        self._step, self._metrics = step, metrics
        if self._first is None:
            self._first = (step, self.clock())
        if self._cadence.due():
            self._emit()

    def eval(self, step: int, metrics: dict[str, float]) -> None:
        if "eval/loss" in metrics:
            self._last_eval = (step, float(metrics["eval/loss"]))
        if self._cadence.due(force=True):
            self._emit()

    def checkpoint(self) -> None:
        if self._cadence.due(force=True):
            self._emit()

    def warn(self, message: str) -> None:
        """Warnings appear at once in the same stream as the progress lines."""
        if self.enabled:
            emit(f"warning: {message}", self.stream)

    def close(self) -> None:
        if self._cadence.due(force=True):
            self._emit()
