"""Plain progress lines for when nobody is watching a terminal: Claude Code's Bash tool, CI logs, `nohup`,
`make train > log`. One line per report, `progress: <what> key=value ...`, at a steady cadence in time and
at every eval or checkpoint, so a reader polling the output every minute or two always has something new.

Format (keys appear only when known):
    progress: train step=120/1500 loss=2.3456 eval_loss=2.4100@100 lr=6.00e-04 grad_norm=0.812
              tokens_per_s=5230 elapsed=1m12s eta=13m20s
    progress: sweep trials=3/8 complete=2 pruned=1 failed=0 running=1 best=2.3456@trial1 elapsed=4m00s eta=6m40s
Values with units carry them (`1m12s`); everything else is a plain number, so `key=value` splitting parses it.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

PREFIX = "progress:"
DEFAULT_EVERY_S = 30.0


def duration(seconds: float | None) -> str:
    """`45s`, `3m20s`, `1h02m`: short and unambiguous."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _num(v: float, spec: str) -> str:
    return format(v, spec) if math.isfinite(v) else str(v)


def line(kind: str, fields: Mapping[str, Any]) -> str:
    """`progress: <kind> k=v ...`, skipping fields that are None."""
    return " ".join([PREFIX, kind] + [f"{k}={v}" for k, v in fields.items() if v is not None])


def train_line(step: int, total: int | None, metrics: Mapping[str, float], last_eval: tuple[int, float] | None,
               elapsed: float, steps_per_s: float | None) -> str:
    """One training progress line from the latest host metrics (pure)."""
    def get(name: str) -> float | None:
        v = metrics.get(name)
        return None if v is None else float(v)

    loss, lr, gnorm = get("train/loss"), get("train/lr"), get("train/grad_norm")
    tok = get("train/tokens_per_s")
    thr = get("train/throughput")
    remaining = (total - step) / steps_per_s if total and steps_per_s else None
    return line("train", {
        "step": f"{step}/{total}" if total else step,
        "loss": _num(loss, ".4f") if loss is not None else None,
        "eval_loss": f"{_num(last_eval[1], '.4f')}@{last_eval[0]}" if last_eval else None,
        "lr": _num(lr, ".2e") if lr is not None else None,
        "grad_norm": _num(gnorm, ".3g") if gnorm is not None else None,
        "tokens_per_s": f"{tok:.0f}" if tok is not None and math.isfinite(tok) else None,
        "samples_per_s": f"{thr:.1f}" if tok is None and thr is not None and math.isfinite(thr) else None,
        "elapsed": duration(elapsed), "eta": duration(remaining) if remaining is not None else None})


def sweep_line(counts: Mapping[str, int], total: int | None, best: tuple[float, int] | None, elapsed: float,
               deadline_in: float | None = None) -> str:
    """One sweep progress line: trials by state, the best value so far (pure)."""
    done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) + counts.get("FAIL", 0)
    rate = done / elapsed if elapsed > 0 and done else None
    eta = (total - done) / rate if total and rate else None
    if deadline_in is not None:
        eta = min(eta, deadline_in) if eta is not None else deadline_in
    return line("sweep", {
        "trials": f"{done}/{total}" if total else done, "complete": counts.get("COMPLETE", 0),
        "pruned": counts.get("PRUNED", 0), "failed": counts.get("FAIL", 0), "running": counts.get("RUNNING", 0),
        "best": f"{best[0]:.4f}@trial{best[1]}" if best else None,
        "elapsed": duration(elapsed), "eta": duration(eta) if eta is not None else None})


class Cadence:
    """Says when the next report is due: every `every_s` seconds (0 or less: never, unless forced)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._last = clock()

    def due(self, force: bool = False) -> bool:
        now = self.clock()
        if (force and self.every_s > 0) or (self.every_s > 0 and now - self._last >= self.every_s):
            self._last = now
            return True
        return False


def line_stream(json_mode: bool) -> IO[str]:
    """Where plain progress goes: stdout, unless `--json` keeps stdout for the one final object."""
    return sys.stderr if json_mode else sys.stdout


def wants_lines(every_s: float) -> bool:
    """Plain lines when stdout is not a terminal (and they are not switched off)."""
    return every_s > 0 and not sys.stdout.isatty()


def emit(text: str, stream: IO[str]) -> None:
    print(text, file=stream, flush=True)


class Ticker:
    """Calls `report()` every `every_s` seconds on a daemon thread until stopped: progress for commands
    whose work happens elsewhere (sweep workers, scaling runs)."""

    def __init__(self, every_s: float, report: Callable[[], None]):
        self._stop = threading.Event()
        self._thread = None
        if every_s > 0:
            self._thread = threading.Thread(target=self._loop, args=(every_s, report), daemon=True)
            self._thread.start()

    def _loop(self, every_s: float, report: Callable[[], None]) -> None:
        while not self._stop.wait(every_s):
            try:
                report()
            except Exception as e:  # a progress report must never kill the work it reports on
                emit(f"{PREFIX} (progress report failed: {type(e).__name__}: {e})", sys.stderr)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
