"""The coordinate-check figure (matplotlib, Agg, no pyplot state): per parametrization, each layer's
activation RMS and update RMS after the last step against width, on log-log axes. Flat lines: μP works;
lines rising with width: the parametrization lets some layer blow up as the model widens."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_coord_check(result: dict[str, Any], out_path: Path) -> Path:
    """Draw `ntjax.scaling.coord_check.coord_check`'s result into `out_path` (a PNG) and return the path."""
    from matplotlib.figure import Figure

    params = list(result["results"])
    widths = result["widths"]
    fig = Figure(figsize=(5 * len(params), 8), dpi=100, layout="constrained")
    axes = fig.subplots(2, len(params), squeeze=False, sharey="row")
    for col, p in enumerate(params):
        r = result["results"][p]
        for row, (key, label) in enumerate((("activation", "activation RMS"), ("update", "update RMS |h_t − h_0|"))):
            ax = axes[row][col]
            for layer in result["layers"]:
                ys = [r[key][str(w)][layer][-1] for w in widths]
                ax.plot(widths, ys, marker="o", label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("width (d_model)")
            ax.set_ylabel(label)
            ratio = r["coord_ratio"] if key == "activation" else r["update_ratio"]
            ax.set_title(f"{p.upper()}: {label} after {result['steps']} steps (max ratio {ratio:.2g})", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Coordinate check, lr {result['lr']:g}, base width {result['base_width']}: flat = μP holds")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    return out_path
