"""A PNG of the monitor's panels (matplotlib, Agg): loss, LR, grad norm and the status text. Written to a
temporary file and renamed, so an image viewer refreshing it never reads half a PNG."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ntjax.diagnostics.runtable import RunTable
from ntjax.monitor.panels import CHARTS, Status, status_lines


def draw(table: RunTable, st: Status):
    """The figure: three curve panels and the status panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7), dpi=100, layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (title, names) in zip(axes, CHARTS):
        for name in names:
            s = table.get(name)
            if s is None or not len(s.finite()):
                continue
            f = s.finite()
            ax.plot(f.step, f.value, "o-" if name.startswith("eval/") else "-", ms=4, lw=1.2, label=name)
            if name != "train/lr" and (f.value > 0).all() and f.value.max() / f.value.min() > 20:
                ax.set_yscale("log")
            nonfinite = s.step[~np.isfinite(s.value)]
            if nonfinite.size:
                ax.axvline(nonfinite[0], color="red", ls=":", label=f"first non-finite {name}")
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    status_ax = axes[-1]
    status_ax.axis("off")
    status_ax.text(0.0, 1.0, "\n".join(status_lines(st)), va="top", ha="left", family="monospace", fontsize=8,
                   wrap=True, color="darkred" if st.warnings else "black", transform=status_ax.transAxes)
    fig.suptitle(f"ntjax monitor: {st.source}", fontsize=10)
    return fig


def write_png(table: RunTable, st: Status, path: str | os.PathLike) -> Path:
    """Draw and save atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.png'}")
    draw(table, st).savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
