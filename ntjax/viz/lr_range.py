"""The LR range test's plot: loss against LR on a log axis, raw and smoothed, with the suggestions marked."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ntjax.core.safefile import save_figure
from ntjax.diagnostics.lr_range import RangeTest, Suggestion


def plot_range_test(test: RangeTest, sug: Suggestion, path: str | Path, title: str = "LR range test") -> Path:
    """Loss vs LR (log x): raw and smoothed, with both suggestions marked."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot(test.lrs, test.losses, color="tab:blue", alpha=0.3, lw=0.8, label="loss (raw)")
    ax.plot(test.lrs, test.smoothed, color="tab:blue", lw=2, label="loss (EMA, bias-corrected)")
    ax.axvline(sug.min_over_10, color="tab:green", lw=2, label=f"min/10 = {sug.min_over_10:.2g} (recommended)")
    if sug.steepest is not None:
        ax.axvline(sug.steepest, color="tab:orange", ls="--", label=f"steepest = {sug.steepest:.2g}")
    ax.axvline(sug.min_loss_lr, color="gray", ls=":", label=f"minimum at {sug.min_loss_lr:.2g}")
    finite = test.smoothed[np.isfinite(test.smoothed)]
    if finite.size:
        ax.set_ylim(finite.min() - 0.05 * abs(finite.min()), min(finite.max(), 2.5 * finite.min()) * 1.05)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"{title} (stopped: {test.stop_reason})")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path
