"""The Chinchilla L(N, D) fit from Hoffmann's 4,500-start grid: our vmapped L-BFGS against a plain scipy loop.

    python benchmarks/scaling_fit.py --json [--quick]

Both sides minimise the same objective (summed Huber, delta 1e-3, of log-space residuals on Epoch's 240
Chinchilla points) from the same starts. The scipy side is what Epoch's notebook does: a Python loop of
`scipy.optimize.minimize(method="L-BFGS-B")`, here given the exact gradient (numpy) so it is not slowed by
finite differences. Ours is `ntjax.scaling.fit.fit_power_sum`: all starts in one jitted, vmapped float32
L-BFGS, then the best 16 polished in float64. Times are wall seconds of a warm call (compilation is
reported apart); ratio = scipy seconds / ours (above 1: ours is faster). --quick uses every 10th start.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ntjax.scaling import fit  # noqa: E402
from ntjax.scaling.points import drop_highest_loss, read_points  # noqa: E402

CSV = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chinchilla" / "svg_extracted_data.csv"


def numpy_objective(theta: np.ndarray, logx: np.ndarray, log_loss: np.ndarray,
                    delta: float) -> tuple[float, np.ndarray]:
    """The same value and gradient as `fit.power_sum_value_and_grad`, in numpy, for scipy."""
    z = np.stack([np.full_like(log_loss, theta[0]), theta[1] - theta[3] * logx[0], theta[2] - theta[4] * logx[1]])
    top = z.max(axis=0)
    ez = np.exp(z - top)
    total = ez.sum(axis=0)
    r = top + np.log(total) - log_loss
    ar = np.abs(r)
    value = np.sum(np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta)))
    dz = ez / total * np.clip(r, -delta, delta)
    grad = np.array([dz[0].sum(), dz[1].sum(), dz[2].sum(), -(dz[1] * logx[0]).sum(), -(dz[2] * logx[1]).sum()])
    return float(value), grad


def scipy_loop(starts: np.ndarray, logx: np.ndarray, log_loss: np.ndarray) -> tuple[np.ndarray, float]:
    best_x, best_f = None, np.inf
    for x0 in starts:
        res = minimize(numpy_objective, x0, args=(logx, log_loss, fit.HUBER_DELTA), jac=True, method="L-BFGS-B")
        if np.isfinite(res.fun) and res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return best_x, best_f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="every 10th start (a smoke run)")
    args = ap.parse_args()
    pts = drop_highest_loss(read_points(CSV), 5)
    logx = np.log(np.stack([pts.n_params, pts.n_tokens]))
    starts = fit.grid_starts(fit.EPOCH_GRID, ("log_E", "log_A", "log_B", "alpha", "beta"))
    if args.quick:
        starts = starts[::10]

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    fit.fit_power_sum(logx, pts.loss, starts)
    first = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    ours_x, ours_f, _ = fit.fit_power_sum(logx, pts.loss, starts)
    ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    scipy_x, scipy_f = scipy_loop(starts, logx, np.log(pts.loss))
    baseline, baseline_cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"starts": int(len(starts)), "points": len(pts), "vmapped_s": ours, "vmapped_first_call_s": first,
           "scipy_loop_s": baseline, "ratio": baseline / ours, "vmapped_cpu_s": ours_cpu,
           "scipy_loop_cpu_s": baseline_cpu, "cpu_ratio": baseline_cpu / ours_cpu,
           "vmapped_params": [float(v) for v in ours_x], "scipy_params": [float(v) for v in scipy_x],
           "load_average_before": list(load_before), "vmapped_objective": ours_f,
           "scipy_objective": scipy_f, "epoch_objective": 0.0010182740,
           "load_average": list(os.getloadavg()), "cpu_count": os.cpu_count()}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
