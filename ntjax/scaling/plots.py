"""The scaling figure: loss against compute with the fitted compute-optimal frontier (dashed, with its
bootstrap band, where it extrapolates beyond the runs), and IsoFLOP curves of loss against N."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ntjax.core.safefile import save_figure
from ntjax.scaling import allocation
from ntjax.scaling.points import ScalingPoints


def frontier_band(samples_SxK: np.ndarray, flops: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the optimal loss L*(C) over bootstrap surfaces [E, A, B, alpha, beta]."""
    ok = samples_SxK[np.all(np.isfinite(samples_SxK), axis=1)]
    losses = np.array([[allocation.compute_optimal(dict(zip(("E", "A", "B", "alpha", "beta"), row)), c).loss
                        for c in flops] for row in ok])
    return (np.percentile(losses, 50 * (1 - level), axis=0), np.percentile(losses, 50 * (1 + level), axis=0))


def plot_scaling(points: ScalingPoints, params: dict[str, float], path: str | Path, *,
                 samples_SxK: np.ndarray | None = None, budgets: tuple[float, ...] = (),
                 isoflop_levels: tuple[float, ...] = ()) -> Path:
    """Write the two-panel PNG; returns its path. The frontier extends to the largest of `budgets`."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state
    fig = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    ax_c, ax_n = fig.subplots(1, 2)
    colour = np.log10(points.n_params)
    sc = ax_c.scatter(points.flops, points.loss, c=colour, cmap="viridis", s=14, label="runs")
    fig.colorbar(sc, ax=ax_c, label="log10 N")
    c_lo, c_hi = points.flops.min(), points.flops.max()
    c_end = max([c_hi, *budgets])
    inside = np.geomspace(c_lo, c_hi, 60)
    ax_c.plot(inside, [allocation.compute_optimal(params, c).loss for c in inside], "k-", label="fitted frontier L*(C)")
    if c_end > c_hi * 1.01:
        outside = np.geomspace(c_hi, c_end, 40)
        ax_c.plot(outside, [allocation.compute_optimal(params, c).loss for c in outside], "k--",
                  label="extrapolation")
        if samples_SxK is not None and len(samples_SxK) > 2:
            lo, hi = frontier_band(samples_SxK, outside)
            ax_c.fill_between(outside, lo, hi, color="k", alpha=0.15, label="95% bootstrap band")
        for b in budgets:
            ax_c.axvline(b, color="tab:red", lw=0.8, ls=":")
    ax_c.set(xscale="log", yscale="log", xlabel="training compute C = 6ND (FLOPs)", ylabel="final loss",
             title=f"E={params['E']:.3g}  A={params['A']:.3g}  B={params['B']:.3g}  "
                   f"alpha={params['alpha']:.3f}  beta={params['beta']:.3f}")
    ax_c.legend(fontsize=8)

    levels = isoflop_levels or tuple(np.geomspace(c_lo, c_hi, 4))
    n_grid = np.geomspace(points.n_params.min() / 3, points.n_params.max() * 3, 200)
    for c in levels:
        line, = ax_n.plot(n_grid, allocation.surface_loss(params, n_grid, c / (6 * n_grid)), lw=1.2,
                          label=f"C = {c:.2g}")
        near = np.abs(np.log10(points.flops / c)) < 0.1
        ax_n.scatter(points.n_params[near], points.loss[near], color=line.get_color(), s=14)
        best = allocation.compute_optimal(params, c)
        ax_n.plot([best.n_params], [best.loss], marker="*", ms=10, color=line.get_color())
    ax_n.set(xscale="log", xlabel="parameters N", ylabel="final loss", title="IsoFLOP curves (stars: optimum)")
    lo_y = min(points.loss.min(), allocation.compute_optimal(params, max(levels)).loss)
    ax_n.set_ylim(lo_y * 0.97, points.loss.max() * 1.05)
    ax_n.legend(fontsize=8)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    return out


def plot_analysis(points: ScalingPoints, result: dict, samples_SxK: np.ndarray, path: str | Path) -> Path:
    """The scaling plot of an `analysis.analyse` result: the fit, its bootstrap band, the IsoFLOP minima."""
    from ntjax.scaling import approaches

    budgets = tuple(float(b) for b in result["comparison"])
    levels = tuple(m["flops"] for m in approaches.isoflop_minima(points))
    return plot_scaling(points, result["params"], path, samples_SxK=samples_SxK if len(samples_SxK) else None,
                        budgets=budgets, isoflop_levels=levels)
