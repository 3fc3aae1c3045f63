"""Gradient-histogram findings: per-layer gradient distributions (`grad_hist/<layer>`, as `ntjax train`
logs them to TensorBoard) that are dead (all zero), collapse over the run, or have heavy tails.

The TensorBoard reader keeps each histogram's min, max, mean, std and count per step
(`table.meta["histograms"]`); these detectors read those statistics.
"""
from __future__ import annotations

import numpy as np

from ntjax.diagnostics.findings import Finding, fmt

DEAD_STD = 1e-12  # a gradient distribution this narrow around 0 is all zeros: the layer gets no signal
COLLAPSE_RATIO = 1e-3  # a layer's gradient spread shrank 1000x from its early value while others did not
HEAVY_TAIL = 50.0  # max |g| 50 standard deviations out: a few elements dominate (a Gaussian of a
# million elements reaches ~5); such outliers make the global norm spike
MIN_POINTS = 2


def _layers(histograms: dict, prefix: str = "grad_hist/") -> dict[str, dict[str, np.ndarray]]:
    return {k.removeprefix(prefix): v for k, v in histograms.items() if k.startswith(prefix)
            and len(np.atleast_1d(v.get("step", []))) >= MIN_POINTS}


def detect_grad_histograms(histograms: dict | None) -> list[Finding]:
    """Dead, collapsing and heavy-tailed layers from the gradient histograms (none when not logged)."""
    layers = _layers(histograms or {})
    if len(layers) < 2:
        return []
    out = []
    dead, collapsed, heavy = [], [], []
    early_spread = {}
    for name, h in layers.items():
        std = np.asarray(h["std"], float)
        lo, hi = np.asarray(h["min"], float), np.asarray(h["max"], float)
        step = np.asarray(h["step"], float)
        tail = slice(-max(1, std.size // 4), None)
        if np.all(np.abs(np.r_[lo[tail], hi[tail]]) <= DEAD_STD):
            dead.append((name, int(step[tail][0])))
            continue
        early = float(np.median(std[:max(1, std.size // 4)]))
        late = float(np.median(std[tail]))
        early_spread[name] = (early, late, int(step[tail][0]))
        ext = np.maximum(np.abs(lo), np.abs(hi))
        ratio = ext / np.maximum(std, 1e-30)
        if float(np.median(ratio)) >= HEAVY_TAIL:
            heavy.append((name, float(np.median(ratio))))
    if early_spread:
        shrink = {k: late / early for k, (early, late, _) in early_spread.items() if early > 0}
        typical = float(np.median(list(shrink.values()))) if shrink else 1.0
        collapsed = [(k, r, early_spread[k][2]) for k, r in shrink.items()
                     if r < COLLAPSE_RATIO and (typical <= 0 or r / typical < COLLAPSE_RATIO ** 0.5)]
    n = len(layers)
    if dead:
        names = ", ".join(k for k, _ in dead[:4])
        out.append(Finding("dead_gradients", "grad_hist", min(s for _, s in dead), None, "warning", 0.9,
                           f"{len(dead)} of {n} layers get all-zero gradients (histogram min = max = 0): {names}",
                           "a layer with zero gradients learns nothing: dead ReLUs (lower the LR, leaky ReLU, "
                           "check the init), a detached branch, or a frozen parameter"))
    if collapsed:
        names = ", ".join(f"{k} (x{r:.1g})" for k, r, _ in collapsed[:4])
        out.append(Finding("collapsing_gradients", "grad_hist", min(s for _, _, s in collapsed), None, "warning",
                           0.8, f"{len(collapsed)} of {n} layers' gradient spread collapsed over the run "
                                f"while the median layer's changed x{typical:.2g}: {names}",
                           "gradients vanish in these layers: check normalisation and residual paths, "
                           "saturating activations and the init scale"))
    if heavy:
        worst = max(heavy, key=lambda x: x[1])
        out.append(Finding("heavy_tailed_gradients", "grad_hist", None, None, "info", 0.6,
                           f"{len(heavy)} of {n} layers have gradient extremes over {HEAVY_TAIL:.0f} standard "
                           f"deviations out (worst {worst[0]}: {fmt(worst[1])} sigma)",
                           "a few elements dominate these gradients: clipping by global norm keeps them from "
                           "driving the update; look for rare tokens or outlier samples"))
    return out

