"""Chinchilla's Approaches 1 and 2: compute-optimal N and D against C as straight lines in log-log.

Approach 1 (Hoffmann et al. 2022, §3.1) takes, for each compute level, the run with the lowest loss;
with final losses only (no training curves) those are the runs on the loss-vs-compute frontier.
Approach 2 (§3.2) groups runs of (nearly) equal compute into IsoFLOP profiles, fits a parabola of loss
against log N in each, and takes its vertex as N_opt(C). Both then fit log N_opt = a·log C + const and
log D_opt = b·log C + const.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ntjax.scaling.points import ScalingPoints


@dataclasses.dataclass(frozen=True)
class LogLogLine:
    """y = coef · C^exponent, fitted by least squares on logs."""

    exponent: float
    coef: float
    n_points: int

    def at(self, flops: np.ndarray | float) -> np.ndarray:
        return self.coef * np.power(flops, self.exponent)


def fit_loglog(flops: np.ndarray, y: np.ndarray) -> LogLogLine:
    """Least-squares line through (log C, log y)."""
    slope, intercept = np.polyfit(np.log(flops), np.log(y), 1)
    return LogLogLine(float(slope), float(np.exp(intercept)), int(len(flops)))


@dataclasses.dataclass(frozen=True)
class OptimalScaling:
    """Compute-optimal N and D as power laws in C, and the (C, N_opt, D_opt) points behind them."""

    method: str
    n_opt: LogLogLine
    d_opt: LogLogLine
    flops: np.ndarray
    n_params: np.ndarray
    n_tokens: np.ndarray

    def as_dict(self) -> dict:
        return {"method": self.method, "a": self.n_opt.exponent, "b": self.d_opt.exponent,
                "n_points": self.n_opt.n_points,
                "n_opt": {"coef": self.n_opt.coef, "exponent": self.n_opt.exponent},
                "d_opt": {"coef": self.d_opt.coef, "exponent": self.d_opt.exponent}}


def frontier_mask(points: ScalingPoints) -> np.ndarray:
    """Runs no cheaper run beats: sorted by compute, each has a lower loss than every run before it."""
    order = np.argsort(points.flops, kind="stable")
    best, mask = np.inf, np.zeros(len(points), bool)
    for i in order:
        if points.loss[i] < best:
            best, mask[i] = points.loss[i], True
    return mask


def approach1(points: ScalingPoints) -> OptimalScaling | None:
    """Log-log fits of N and D against C over the frontier runs; None with fewer than 3 distinct C."""
    m = frontier_mask(points)
    if len(np.unique(np.round(np.log10(points.flops[m]), 2))) < 3:
        return None
    c, n, d = points.flops[m], points.n_params[m], points.n_tokens[m]
    return OptimalScaling("approach1_frontier", fit_loglog(c, n), fit_loglog(c, d), c, n, d)


def isoflop_groups(flops: np.ndarray, tolerance_decades: float = 0.1) -> np.ndarray:
    """Group label per run: runs whose log10 C lie within `tolerance_decades` of a neighbour in sorted
    order share a group (a chain), so C = 6e18 and 1e19 stay apart at the default 0.1."""
    order = np.argsort(flops)
    logc = np.log10(flops[order])
    labels_sorted = np.concatenate([[0], np.cumsum(np.diff(logc) > tolerance_decades)])
    labels = np.empty(len(flops), int)
    labels[order] = labels_sorted
    return labels


def isoflop_minima(points: ScalingPoints, tolerance_decades: float = 0.1,
                   min_runs: int = 3) -> list[dict]:
    """Per IsoFLOP group with ≥ `min_runs` distinct sizes and an upward parabola whose vertex lies inside
    the sizes tried: the group's compute (geometric mean), N_opt at the vertex, and the parabola.
    A chain spanning more than twice the tolerance is not an IsoFLOP group (runs spread over compute,
    like the Chinchilla Figure-4 extraction), and is skipped."""
    labels = isoflop_groups(points.flops, tolerance_decades)
    out = []
    for g in np.unique(labels):
        sel = labels == g
        logn, loss = np.log(points.n_params[sel]), points.loss[sel]
        if np.ptp(np.log10(points.flops[sel])) > 2 * tolerance_decades or len(np.unique(np.round(logn, 6))) < min_runs:
            continue
        c2, c1, c0 = np.polyfit(logn, loss, 2)
        if c2 <= 0:
            continue
        vertex = -c1 / (2 * c2)
        if not logn.min() <= vertex <= logn.max():
            continue
        flops = float(np.exp(np.mean(np.log(points.flops[sel]))))
        n_opt = float(np.exp(vertex))
        out.append({"flops": flops, "n_opt": n_opt, "d_opt": flops / (6 * n_opt), "runs": int(sel.sum()),
                    "parabola": [float(c2), float(c1), float(c0)], "min_loss": float(c0 - c1 * c1 / (4 * c2))})
    return out


def approach2(points: ScalingPoints, tolerance_decades: float = 0.1) -> OptimalScaling | None:
    """Log-log fits through the IsoFLOP parabolas' minima; None with fewer than 2 usable groups."""
    minima = isoflop_minima(points, tolerance_decades)
    if len(minima) < 2:
        return None
    c = np.array([m["flops"] for m in minima])
    n = np.array([m["n_opt"] for m in minima])
    d = np.array([m["d_opt"] for m in minima])
    return OptimalScaling("approach2_isoflop", fit_loglog(c, n), fit_loglog(c, d), c, n, d)
