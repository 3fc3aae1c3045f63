"""Robust smoothing and rates for noisy training curves: rolling medians, MAD noise scales, log-step slopes.

Curves are compared in log space (ln loss): a 0.1 rise means the same at loss 5 and at loss 0.05, and the
heavy-tailed per-batch noise of classifiers becomes roughly symmetric there.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
SIGMA_FLOOR = 1e-3  # noise scale floor in ln units (0.1%): noiseless synthetic curves must not divide by 0


def odd(n: int) -> int:
    """The odd integer at or above n (a centred window needs a middle)."""
    n = max(1, int(n))
    return n if n % 2 else n + 1


def smooth_window(n_points: int, fraction: float = 0.02, cap: int = 201) -> int:
    """A median window of about `fraction` of the points, odd, at least 1 and at most `cap`."""
    return odd(min(cap, max(1, round(n_points * fraction))))


def log_values(value: np.ndarray) -> np.ndarray:
    """ln(value) for positive curves; for curves that cross zero, value scaled by its typical size."""
    if value.size and np.all(value > 0):
        return np.log(value)
    scale = np.median(np.abs(value)) if value.size else 1.0
    return value / (scale if scale > 0 else 1.0)


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median; the ends see a mirrored window, so the last point does not drag the end."""
    if window <= 1 or x.size < 3:
        return x.astype(np.float64, copy=True)
    return median_filter(x.astype(np.float64), size=min(window, odd(x.size)), mode="reflect")


def trailing_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median of the `window` points before each point (NaN where fewer came before)."""
    out = np.full(x.shape, np.nan)
    if x.size <= window:
        return out
    centred = median_filter(x.astype(np.float64), size=window, mode="reflect")
    half = window // 2
    out[window:] = centred[half: x.size - half - 1]
    return out


def trailing_nanmedian(x: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """Median of the finite values among the `window` points before each point; NaN where fewer than
    `min_count` finite values come before (a causal noise scale that an event cannot inflate before it)."""
    out = np.full(x.shape, np.nan)
    finite = np.isfinite(x)
    if not finite.any():
        return out
    first = int(np.argmax(finite))
    start = first + window  # from here on the whole trailing window is finite (leading NaNs only)
    if np.all(finite[first:]) and x.size > start:
        out[start:] = trailing_median(x[first:], window)[window:]
    else:
        start = x.size
    for i in range(first + min_count, min(start, x.size)):
        before = x[max(0, i - window):i]
        before = before[np.isfinite(before)]
        if before.size >= min_count:
            out[i] = float(np.median(before))
    return out


def robust_sigma(x: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation: spikes do not inflate it."""
    x = x[np.isfinite(x)]
    if x.size == 0:
        return SIGMA_FLOOR
    return max(SIGMA_FLOOR, MAD_TO_SIGMA * float(np.median(np.abs(x - np.median(x)))))


def log_step(step: np.ndarray) -> np.ndarray:
    """log10(step + 1): steps may start at 0 (epochs do)."""
    return np.log10(np.maximum(step, 0).astype(np.float64) + 1.0)


def slope_per_decade(step: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y against log10(step + 1), and its standard error.

    With y = ln(loss), -slope is the relative improvement per decade of steps (0.1 = 10% per decade).
    """
    x = log_step(step)
    if x.size < 3 or np.ptp(x) == 0:
        return 0.0, float("inf")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (y - y.mean())) / sxx
    resid = y - y.mean() - slope * xc
    sigma = max(robust_sigma(resid), SIGMA_FLOOR)
    return slope, sigma / np.sqrt(sxx)


def lag1_autocorrelation(x: np.ndarray) -> float:
    """Correlation of a residual with itself one point later: ~0 for batch noise, near 1 for swings."""
    x = x - x.mean()
    denom = float(x @ x)
    if x.size < 3 or denom == 0:
        return 0.0
    return float(x[1:] @ x[:-1]) / denom
