"""What a monitor frame shows: the run's status (step, ETA, throughput, latest eval, active warnings) and
its loss / LR / grad-norm curves, as plain text, as plotext charts, or as a rich panel.

`run_status` is pure over a RunTable; the renderers only format it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from ntjax.diagnostics.runtable import RunTable

CHARTS = (("loss", ("train/loss", "eval/loss")), ("learning rate", ("train/lr",)),
          ("grad norm", ("train/grad_norm",)))
RATE_WINDOW = 50  # recent logged steps the step rate (and so the ETA) is measured over
CHART_POINTS = 300


@dataclasses.dataclass
class Status:
    source: str
    format: str
    step: int | None
    total_steps: int | None
    steps_per_s: float | None
    eta_s: float | None
    throughput: float | None  # samples/s as logged
    tokens_per_s: float | None
    latest: dict[str, float]  # last value of the main train metrics
    latest_eval: dict[str, Any] | None  # {"step": .., "eval/loss": .., ...}
    warnings: list[str]
    last_write_age_s: float | None
    finished: bool
    ended_as: str | None = None  # "finished" / "crashed" when the run folder's status.json says so

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _last(table: RunTable, name: str) -> float | None:
    s = table.get(name)
    return None if s is None or not len(s) else float(s.value[-1])


def step_rate(table: RunTable) -> float | None:
    """Steps per second over the last RATE_WINDOW logged steps of the train loss (wall times as logged)."""
    s = table.get("train/loss") or next(iter(table.series.values()), None)
    if s is None:
        return None
    ok = np.isfinite(s.time)
    step, t = s.step[ok][-RATE_WINDOW:], s.time[ok][-RATE_WINDOW:]
    if len(step) < 2 or t[-1] <= t[0]:
        return None
    return float((step[-1] - step[0]) / (t[-1] - t[0]))


def active_warnings(table: RunTable) -> list[str]:
    """Warnings worth a glance now: the trainer's early-warning checks replayed over the logged curve, and
    the curve detectors' warning/critical findings."""
    from ntjax.diagnostics.watch import Watch

    out: list[str] = []
    loss, grad = table.get("train/loss"), table.get("train/grad_norm")
    if loss is not None:
        watch = Watch()
        grad_at = dict(zip(grad.step.tolist(), grad.value.tolist())) if grad is not None else {}
        for step, value in zip(loss.step.tolist(), loss.value.tolist()):
            watch.update(step, {"train/loss": value, "train/grad_norm": grad_at.get(step, 1.0)})
        out += [e.message for e in watch.events[-3:]]
    try:
        from ntjax.diagnostics.detectors import analyse
        findings = analyse(table).findings
    except Exception as e:  # a detector failing on a half-written log must not stop the monitor
        return out + [f"curve detectors unavailable on this log: {type(e).__name__}: {e}"]
    out += [f"{f.severity} {f.kind} ({f.metric}): {f.evidence}" for f in findings
            if f.severity in ("warning", "critical")]
    return out


def run_status(table: RunTable, total: int | None = None, finished: bool = False, ended_as: str | None = None,
               now: float | None = None) -> Status:
    """The status panel's numbers for a run read so far (`total`: the planned steps; `finished`: the run
    has ended), computed from the table alone."""
    now = time.time() if now is None else now
    steps = [int(s.step[-1]) for s in table.series.values() if len(s)]
    step = max(steps) if steps else None
    rate = step_rate(table)
    eta = (total - step) / rate if (total and step is not None and rate) else None
    ev = table.get("eval/loss")
    latest_eval = None
    if ev is not None and len(ev):
        at = int(ev.step[-1])
        latest_eval = {"step": at, **{n: float(table.series[n].value[table.series[n].step == at][0])
                                      for n in table.names() if n.startswith("eval/")
                                      and (table.series[n].step == at).any()}}
    times = [float(np.nanmax(s.time)) for s in table.series.values() if len(s) and np.isfinite(s.time).any()]
    return Status(source=table.source, format=table.format, step=step, total_steps=total, steps_per_s=rate,
                  eta_s=eta, throughput=_last(table, "train/throughput"),
                  tokens_per_s=_last(table, "train/tokens_per_s"),
                  latest={n: v for n in ("train/loss", "train/lr", "train/grad_norm")
                          if (v := _last(table, n)) is not None},
                  latest_eval=latest_eval, warnings=active_warnings(table),
                  last_write_age_s=now - max(times) if times else None, finished=finished, ended_as=ended_as)


def _num(x: float | None, spec: str = ".4g") -> str:
    return "—" if x is None else (format(x, spec) if math.isfinite(x) else str(x))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def status_lines(st: Status) -> list[str]:
    """The status panel as plain lines."""
    of = f"/{st.total_steps}" if st.total_steps else ""
    state = ((st.ended_as or "finished") if st.finished
             else "waiting for the first log line" if st.step is None else "running")
    lines = [f"run: {st.source} ({st.format}, {state})",
             f"step: {_num(st.step, 'd') if st.step is not None else '—'}{of}   "
             f"rate: {_num(st.steps_per_s, '.3g')} steps/s   ETA: {_duration(st.eta_s)}   "
             f"last write: {_duration(st.last_write_age_s)} ago",
             f"throughput: {_num(st.throughput, ',.1f')} samples/s, {_num(st.tokens_per_s, ',.0f')} tokens/s",
             "latest: " + ("   ".join(f"{k} {_num(v)}" for k, v in st.latest.items()) or "—")]
    if st.latest_eval:
        ev = st.latest_eval
        lines.append(f"latest eval (step {ev['step']}): " + "   ".join(
            f"{k} {_num(v)}" for k, v in ev.items() if k != "step"))
    lines.append("warnings:" + ("" if st.warnings else " none"))
    lines += [f"  - {w}" for w in st.warnings]
    return lines


def metric_summary(table: RunTable, names: tuple[str, ...] = ("train/loss", "eval/loss", "train/lr",
                                                                 "train/grad_norm")) -> dict[str, dict]:
    """last / min (at step) / points of the main curves: the numbers a text frame shows instead of charts."""
    out = {}
    for name in names:
        s = table.get(name)
        if s is None or not len(s.finite()):
            continue
        f = s.finite()
        i = int(np.argmin(f.value))
        out[name] = {"points": len(s), "last": float(f.value[-1]), "last_step": int(f.step[-1]),
                     "min": float(f.value[i]), "min_step": int(f.step[i])}
    return out


def text_frame(table: RunTable, st: Status) -> str:
    """One frame as plain text: for pipes, dumb terminals and Claude (`--once` when not a tty)."""
    lines = status_lines(st) + ["", "curves:"]
    for name, m in metric_summary(table).items():
        lines.append(f"  {name:<16} last {_num(m['last'])} (step {m['last_step']})   min {_num(m['min'])} "
                     f"(step {m['min_step']})   {m['points']} points")
    return "\n".join(lines)


def _thin(step: np.ndarray, value: np.ndarray) -> tuple[list[float], list[float]]:
    ok = np.isfinite(value)
    step, value = step[ok], value[ok]
    idx = np.unique(np.linspace(0, step.size - 1, min(step.size, CHART_POINTS)).astype(int)) if step.size else []
    return step[idx].astype(float).tolist(), value[idx].astype(float).tolist()


def charts(table: RunTable, width: int = 120, height: int = 16) -> str:
    """Loss, LR and grad norm side by side as plotext text (ANSI colours)."""
    import plotext as plt

    plt.clear_figure()
    plt.subplots(1, len(CHARTS))
    plt.plot_size(width, height)
    for col, (title, names) in enumerate(CHARTS, start=1):
        plt.subplot(1, col)
        plt.title(title)
        for name in names:
            s = table.get(name)
            if s is not None and len(s.finite()) >= 1:
                x, y = _thin(s.step, s.value)
                plt.plot(x, y, label=name, marker="dot" if name.startswith("eval/") else None)
    text = plt.build()
    plt.clear_figure()
    return text


def rich_frame(table: RunTable, st: Status, width: int = 120, height: int = 16) -> Any:
    """The terminal frame: plotext charts above a rich status panel."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    style = "red" if st.warnings else ("green" if st.finished else "cyan")
    return Group(Text.from_ansi(charts(table, width, height)),
                 Panel("\n".join(status_lines(st)), title="ntjax monitor", border_style=style))


def sweep_rows(trials: list[dict[str, Any]]) -> str:
    """The `monitor --once` table of a sweep folder: one line per trial, in trial order."""
    names = sorted({k for t in trials for k in t["params"]})
    head = ["#", "state", "value", *names, "steps"]
    rows = [[str(t["number"]), t["state"], "" if t["value"] is None else f"{t['value']:.4f}",
             *[f"{t['params'][n]:.3g}" if isinstance(t["params"].get(n), float) else str(t["params"].get(n, ""))
               for n in names], "" if t["steps"] is None else str(t["steps"])] for t in trials]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows])
