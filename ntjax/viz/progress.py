"""The live progress bar of a training run (rich, on stderr): loss, LR, grad norm, throughput and ETA."""
from __future__ import annotations

import math
from typing import Any


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
