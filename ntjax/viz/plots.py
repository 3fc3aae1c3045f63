"""PNG plots of a run (matplotlib, Agg, no pyplot state): the `curves` figure with each finding drawn where
it is, and the per-run report plots the trainer writes at the end of `ntjax train`.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ntjax.core import runfolder as rf
from ntjax.core.safefile import private_dir, save_figure
from ntjax.diagnostics.detectors import smoothing as sm
from ntjax.diagnostics.findings import Finding
from ntjax.diagnostics.runtable import RunTable, Series

MAX_PLOTTED = 20_000  # points drawn per line; beyond that a min/max-preserving thinning keeps spikes visible
LAYER_LINES = 12  # per-layer grad norms: the most extreme layers, or the legend is unreadable


def plot_location(source: str | os.PathLike, filename: str) -> Path:
    """Where a plot about `source` goes when no --out is given.

    Inside a run folder written by ntjax or a bridge (it holds `metrics.jsonl`): its `plots/`. Anything
    else is the user's own data (or a read-only copy), which we never write next to: a stable file in
    the temp folder, named after the source.
    """
    src = Path(source)
    if src.is_dir() and (src / rf.METRICS_FILE).exists():
        folder = src / rf.PLOTS_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder / filename
        except OSError:
            pass
    tag = hashlib.sha1(str(src.absolute()).encode()).hexdigest()[:8]
    # Not a shared temp folder: a predictable name there is a place for someone else's symlink.
    return private_dir("plots") / f"{src.stem or 'run'}-{tag}-{filename}"


def _figure(width: float = 10, height: float = 5):
    from matplotlib.figure import Figure  # Agg canvas, no global pyplot state: safe in threads and tests
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def thin(step: np.ndarray, value: np.ndarray, limit: int = MAX_PLOTTED) -> tuple[np.ndarray, np.ndarray]:
    """At most about `limit` points, keeping each bucket's min and max so spikes survive."""
    if step.size <= limit:
        return step, value
    buckets = np.array_split(np.arange(step.size), limit // 2)
    keep = np.unique(np.concatenate([[b[np.nanargmin(value[b])], b[np.nanargmax(value[b])]]
                                     for b in buckets if b.size and np.isfinite(value[b]).any()]))
    return step[keep], value[keep]


def _positive_spread(values: Sequence[np.ndarray]) -> bool:
    v = np.concatenate([x[np.isfinite(x)] for x in values]) if values else np.zeros(0)
    return v.size > 0 and bool(np.all(v > 0)) and v.max() / v.min() > 5


def _draw_loss(ax, table: RunTable, smooth: bool = True) -> list[np.ndarray]:
    """Train (raw faint, smoothed solid) and eval (markers) losses; returns the values drawn."""
    drawn = []
    train, eval_ = table.get("train/loss"), table.get("eval/loss")
    if train is not None and len(train.finite()):
        t = train.finite()
        s, v = thin(t.step, t.value)
        ax.plot(s, v, color="tab:blue", alpha=0.25 if smooth else 0.9, lw=0.8, label="train loss (raw)")
        if smooth and len(t) >= 10:
            ys = sm.rolling_median(t.value, sm.smooth_window(len(t), 0.02))
            ax.plot(*thin(t.step, ys), color="tab:blue", lw=1.8, label="train loss (smoothed)")
        drawn.append(t.value)
    if eval_ is not None and len(eval_.finite()):
        e = eval_.finite()
        ax.plot(e.step, e.value, "o-", color="tab:orange", ms=3, lw=1.2, label="eval loss")
        drawn.append(e.value)
    if not drawn:  # no standard loss names: draw every loss-like metric
        for name, s in sorted(table.series.items()):
            if "loss" in name.lower() and len(s.finite()):
                ax.plot(*thin(s.finite().step, s.finite().value), lw=1, label=name)
                drawn.append(s.finite().value)
    if _positive_spread(drawn):
        ax.set_yscale("log")
    return drawn


def _draw_lr(ax, lr: Series | None) -> None:
    if lr is None or not len(lr.finite()):
        return
    ax2 = ax.twinx()
    ax2.plot(*thin(lr.finite().step, lr.finite().value), color="tab:green", lw=1, alpha=0.7, label="LR")
    ax2.set_ylabel("learning rate", color="tab:green")
    ax2.tick_params(axis="y", colors="tab:green")


def _draw_finding(ax, f: Finding, table: RunTable) -> None:
    """Each finding where it happened: spikes as markers, spans shaded, points as vertical lines."""
    if f.start_step is None:
        return
    s = table.get(f.metric)
    if f.kind == "spike" and s is not None:
        steps = np.array(f.marks or (f.start_step,))
        fin = s.finite()
        if f.metric == "train/loss":
            ax.plot(steps, np.interp(steps, fin.step, fin.value), "rv", ms=7,
                    label="spike" if f.severity == "info" else "spike (warning)")
        else:
            for x in steps:
                ax.axvline(x, color="grey", ls=":", lw=0.8)
    elif f.kind in ("plateau", "oscillation", "underfitting"):
        end = f.end_step if f.end_step is not None else ax.get_xlim()[1]
        color = {"plateau": "gold", "oscillation": "violet", "underfitting": "khaki"}[f.kind]
        ax.axvspan(f.start_step, end, color=color, alpha=0.2, label=f"{f.kind} ({f.metric})")
    elif f.kind in ("overfitting", "metric_disagreement"):
        ax.axvline(f.start_step, color="tab:orange", ls="--", lw=1.2, label=f"best eval (step {f.start_step})")
    elif f.kind in ("divergence", "nan"):
        ax.axvline(f.start_step, color="red" if f.kind == "divergence" else "black", lw=1.5,
                   label=f"{f.kind} (step {f.start_step})")
    elif f.kind in ("lr_loss_correlation", "short_warmup", "no_learning"):
        ax.axvline(f.start_step, color="tab:red", ls=":", lw=1.2, label=f"{f.kind} (step {f.start_step})")


def plot_curves(table: RunTable, findings: Sequence[Finding], out_path: Path, title: str = "") -> Path:
    """The `ntjax curves` figure: losses raw and smoothed, LR on a second axis, every finding drawn."""
    fig = _figure()
    ax = fig.add_subplot()
    _draw_loss(ax, table)
    _draw_lr(ax, table.get("train/lr"))
    for f in findings:
        _draw_finding(ax, f, table)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or Path(table.source).name, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out_path)
    return out_path


def _single(table: RunTable, names: Sequence[str], out_path: Path, ylabel: str, log: bool = False) -> Path | None:
    present = [s for n in names if (s := table.get(n)) is not None and len(s.finite())]
    if not present:
        return None
    fig = _figure(9, 4)
    ax = fig.add_subplot()
    for s in present:
        ax.plot(*thin(s.finite().step, s.finite().value), lw=1, label=s.name)
    if log and _positive_spread([s.finite().value for s in present]):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out_path)
    return out_path


def _layer_grad_norms(table: RunTable, out_path: Path) -> Path | None:
    layers = [s for n, s in sorted(table.series.items()) if n.startswith("grad_norm/") and len(s.finite())]
    if not layers:
        return None
    # The layers with the largest and the smallest final norm are the ones a reader looks for.
    layers.sort(key=lambda s: float(np.median(s.finite().value[-max(1, len(s.finite()) // 10):])))
    shown = layers if len(layers) <= LAYER_LINES else layers[:LAYER_LINES // 2] + layers[-LAYER_LINES // 2:]
    fig = _figure(10, 5)
    ax = fig.add_subplot()
    for s in shown:
        ax.plot(*thin(s.finite().step, s.finite().value), lw=0.9, label=s.name.removeprefix("grad_norm/"))
    if _positive_spread([s.finite().value for s in shown]):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm per layer")
    title = f"{len(shown)} of {len(layers)} layers (smallest and largest)" if len(shown) < len(layers) else ""
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(fig, out_path)
    return out_path


def plot_training_report(table: RunTable, out_dir: Path) -> list[Path]:
    """The plots of a finished `ntjax train` run: loss (train+eval), LR, global and per-layer grad norms.

    A plot whose series were not logged is skipped. Returns the paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if table.get("train/loss") is not None or table.get("eval/loss") is not None:
        fig = _figure(9, 4.5)
        ax = fig.add_subplot()
        _draw_loss(ax, table)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_figure(fig, out_dir / "loss.png")
        written.append(out_dir / "loss.png")
    for path in (_single(table, ["train/lr"], out_dir / "lr.png", "learning rate"),
                 _single(table, ["train/grad_norm"], out_dir / "grad_norm.png", "global gradient norm", log=True),
                 _layer_grad_norms(table, out_dir / "layer_grad_norms.png")):
        if path is not None:
            written.append(path)
    return written
