"""Everything `ntjax scale fit` reports about a set of runs, as one JSON-ready dict."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ntjax.scaling import allocation, approaches, fit
from ntjax.scaling.points import ScalingPoints

NAMES = ("E", "A", "B", "alpha", "beta")


def budget_key(flops: float) -> str:
    """`1e21` for 1e21, `3e+20` style avoided: the shortest float text, as the contract keys show."""
    mantissa, exp = f"{flops:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def _exponent_samples(samples_SxK: np.ndarray) -> np.ndarray:
    alpha, beta = samples_SxK[:, 3], samples_SxK[:, 4]
    return np.column_stack([beta / (alpha + beta), alpha / (alpha + beta)])


def analyse(points: ScalingPoints, *, budgets: Sequence[float] = (1e21,), n_boot: int = 1000, seed: int = 0,
            unique_tokens: float | None = None, delta: float = fit.HUBER_DELTA) -> tuple[dict, np.ndarray]:
    """Fit L(N, D) with bootstrap CIs, the one-variable laws and Approaches 1/2, and compare allocations.

    Returns the JSON-ready result and the bootstrap parameter samples [S, 5] (for the plot's band)."""
    surface = fit.fit_loss_surface(points.n_params, points.n_tokens, points.loss, delta=delta)
    params = surface.params
    samples = (fit.bootstrap_surfaces(points.n_params, points.n_tokens, points.loss, n_boot=n_boot, seed=seed,
                                      start=params, delta=delta) if n_boot > 0 else np.zeros((0, 5)))
    a, b = allocation.exponents(params["alpha"], params["beta"])
    compute_optimal = {"a": a, "b": b,
                       "tokens_per_param": {budget_key(c): allocation.compute_optimal(params, c).tokens_per_param
                                            for c in budgets},
                       "n_params": {budget_key(c): allocation.compute_optimal(params, c).n_params for c in budgets},
                       "n_tokens": {budget_key(c): allocation.compute_optimal(params, c).n_tokens for c in budgets}}
    ci95: dict[str, list[float]] = {}
    if len(samples):
        ci95 = fit.percentile_intervals(samples, NAMES)
        compute_optimal["ci95"] = fit.percentile_intervals(_exponent_samples(samples), ("a", "b"))
    one_var = {}
    for name, x in (("L(N)", points.n_params), ("L(D)", points.n_tokens), ("L(C)", points.flops)):
        law = fit.fit_power_law(x, points.loss, delta=delta)
        one_var[name] = {"E": law.E, "A": law.A, "exponent": law.k, "objective": law.objective}
    opt = {}
    for found in (approaches.approach1(points), approaches.approach2(points)):
        if found is not None:
            opt[found.method] = found.as_dict()
    result = {
        "params": params, "ci95": ci95, "n_points": len(points), "objective": surface.objective,
        "huber_delta": delta, "n_bootstrap": int(np.isfinite(samples).all(axis=1).sum()),
        "compute_optimal": compute_optimal,
        "comparison": {budget_key(c): allocation.compare(params, c, unique_tokens) for c in budgets},
        "one_variable_fits": one_var, "approaches": opt,
        "columns": points.columns,
        "range": {"n_params": [float(points.n_params.min()), float(points.n_params.max())],
                  "n_tokens": [float(points.n_tokens.min()), float(points.n_tokens.max())],
                  "flops": [float(points.flops.min()), float(points.flops.max())]},
        "extrapolation": {budget_key(c): bool(c > points.flops.max()) for c in budgets},
        "plots": [],
    }
    return result, samples


def summary(result: dict) -> str:
    """The human-readable report of `analyse`."""
    p, ci = result["params"], result["ci95"]
    lines = [f"L(N, D) = E + A/N^alpha + B/D^beta fitted on {result['n_points']} runs "
             f"(Huber delta={result['huber_delta']:g} on log loss, L-BFGS from a grid; objective "
             f"{result['objective']:.10g})"]
    for k in NAMES:
        interval = f"  95% CI [{ci[k][0]:.4g}, {ci[k][1]:.4g}]" if k in ci else ""
        lines.append(f"  {k:>5} = {p[k]:.4g}{interval}")
    co = result["compute_optimal"]
    lines.append(f"compute-optimal: N_opt ∝ C^{co['a']:.3f}, D_opt ∝ C^{co['b']:.3f} "
                 "(Chinchilla ≈ 0.46–0.50, Kaplan 0.73)")
    for key, table in result["comparison"].items():
        extra = " (extrapolated beyond the runs)" if result["extrapolation"].get(key) else ""
        lines.append(f"budget C = {key} FLOPs{extra}:")
        for name, alloc in table.items():
            loss = f"  loss {alloc['loss']:.4g}" if alloc.get("loss") is not None else ""
            lines.append(f"  {name:<32} N = {alloc['n_params']:.3g}  D = {alloc['n_tokens']:.3g}  "
                         f"tokens/param = {alloc['tokens_per_param']:.3g}{loss}")
    for name, law in result["one_variable_fits"].items():
        lines.append(f"{name} = {law['E']:.4g} + {law['A']:.4g}·x^-{law['exponent']:.4f}")
    for name, o in result["approaches"].items():
        lines.append(f"{name}: a = {o['a']:.3f}, b = {o['b']:.3f} over {o['n_points']} points")
    lines += [f"plot: {p}" for p in result["plots"]]
    return "\n".join(lines)
