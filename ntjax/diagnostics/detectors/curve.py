"""Detectors over one loss curve (arrays of step and value): NaN, divergence, spikes, plateau, oscillation,
no learning, slow convergence. Each returns Findings with the step where the pattern starts and numbers.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ntjax.diagnostics.detectors import smoothing as sm
from ntjax.diagnostics.findings import Finding, fmt

# --- divergence
DIVERGENCE_RISE = math.log(1.3)  # the loss ends 30% above its best: far beyond noise and late-run bumps
DIVERGENCE_SMOOTH = 0.05  # judged on a median over 5% of the run: noisy per-batch minima are not "the best"
DIVERGENCE_RISE_OF_DROP = 0.25  # ...and the rise undoes a quarter of what was learned (loss near 0 stays quiet)
DIVERGENCE_SUSTAINED = 0.01  # ...and stays above its best level over the last 1% of the run (3 points at least)
# --- spikes
SPIKE_Z = 8.0  # robust sigmas above the trailing median: noise tails stay below, real spikes tower over
SPIKE_MIN_RISE = math.log(1.1)  # and at least 10% above the local level: tiny blips are not news
SPIKE_MIN_OF_RANGE = 0.02  # and 2% of the run's loss range: quantised tiny losses (1e-4 -> 2e-4) are not spikes
SPIKE_RECOVERED_Z = 3.0  # back within 3 sigmas of the pre-spike level counts as recovered
SPIKE_TRANSIENT_POINTS = 3  # recovered within 3 logged points: a one-step (bad batch) spike
SPIKE_WARN_HEIGHT = math.log(2.0)  # 2x the local trend or more is a warning however fast it recovers
SPIKE_HANDFUL = 5  # needing more than a handful of logged points to recover...
SPIKE_SLOW_FRACTION = 0.01  # ...or more than 1% of the run (over 3+ points) is a lasting spike: warning
SPIKE_RECOVERY_FRACTION = 0.05  # not recovered within 5% of the run: the spike changed the run
SPIKE_REPEAT_COUNT = 3  # this many spikes...
SPIKE_REPEAT_SPAN = 0.10  # ...within 10% of the run is a pattern, not bad luck
SPIKE_MAX_REPORTED = 8  # the highest spikes are reported one by one; more are summarised
# --- plateau
PLATEAU_SLOPE = 0.02  # improving under 2% per decade of steps is flat (healthy runs improve 5-15%)
PLATEAU_SLOPE_MAX = 0.08  # noisy curves get a looser threshold (2 standard errors), never above 8%
PLATEAU_FLAT_SHARE = 0.8  # 80% of the later starts flat too: the flatness lasts to the end
PLATEAU_MIN_SPAN = 0.2  # a plateau covers at least the last 20% of the run (shorter is noise)
PLATEAU_WARN_POINTS = 6  # fewer flat points than this (a handful of evals) cannot establish a stall
PLATEAU_WARN_SPAN = 0.3  # flat over 30% of the run while not converged wastes compute: warning
PLATEAU_REGIME = 3.0  # a stall: it improved 3x faster before (a fine-tune that was flat all along is not stuck)
PLATEAU_FIT_MIN_POINTS = 8  # a trend needs this many points before the flat part
PLATEAU_FIT_ERROR = 0.05  # and must fit them within 5% (median relative error) to be trusted
PLATEAU_TREND_LEFT = 0.02  # the trend predicts under 2% more progress: it is near its floor
PLATEAU_TREND_SHARE = 0.5  # the flat part fell at least half of what the trend predicts: on trend
CONVERGED_FRACTION = 0.35  # a loss down to 35% of where it started has learned most of what it will
LR_ANNEALED = 0.1  # an LR under 10% of its peak is in its final anneal: a flat loss there is expected...
LR_EARLY_DECAY_SPAN = 0.35  # ...unless 35% or more of the run is left: then the schedule ended too early
# --- oscillation
OSC_AMPLITUDE = 0.05  # residual swings of 5% of the trend level...
OSC_AUTOCORR = 0.6  # ...that persist from one point to the next (batch noise has ~0 autocorrelation)
OSC_PEAK = 0.4  # or that come back: an autocorrelation peak of 0.4+ at some lag...
OSC_TROUGH = 0.2  # ...after a trough of -0.2 or below (half a period out of phase)
OSC_MAX_LAG = 60  # periods up to 60 logged points
OSC_TREND_FRACTION = 0.05  # the trend is a rolling median over 5% of the run...
OSC_TREND_MIN_POINTS = 31  # ...and at least 31 points, so it spans a period and does not follow the swing
OSC_BLOCK_MIN_POINTS = 12  # amplitude is judged per block of this many points (or 1/40 of the run)
OSC_MIN_POINTS = 36  # a swing needs this many points (a few periods) to be told from noise
# --- no learning / slow convergence
NO_LEARNING_FRACTION = 0.05  # moved less than 5% from its start: nothing was learned
UNIFORM_MATCH = 0.015  # a start within 1.5% of ln(k) is what a fresh model predicting uniformly gives
UNIFORM_STUCK_MATCH = 0.005  # a plateau within 0.5% of ln(k) is the uniform prediction itself
COMMON_SIZES = (2, 10, 100, 1000, 65, 256, 30522, 32000, 32768, 50257, 50304, 65536, 100277, 128256,
                151936)  # binary, digits/CIFAR-10, CIFAR-100, ImageNet, chars, bytes, common tokenizers
SLOW_EARLY_SHARE = 0.35  # healthy runs make >35% of their progress in the first 20% of steps
SLOW_EARLY_FRACTION = 0.2
SLOW_TAIL_SLOPE = 0.05  # still improving >5% per decade at the end: more steps would help
SLOW_TOTAL_DROP = 0.3  # and the loss fell by less than 30%
SLOW_CONVERGED_DROP = 0.9  # a loss down 90% is not "slow", whatever its late slope in log space


def uniform_match(loss: float, tolerance: float = UNIFORM_MATCH) -> int | None:
    """The common vocabulary/class count k with ln(k) within `tolerance` (relative) of this loss, if any."""
    for k in COMMON_SIZES:
        if abs(loss - math.log(k)) <= tolerance * math.log(k):
            return k
    return None


def _frac_step(step: np.ndarray, fraction: float) -> float:
    return float(step[0] + fraction * (step[-1] - step[0]))


def detect_nonfinite(step: np.ndarray, value: np.ndarray, metric: str) -> list[Finding]:
    """The first NaN/Inf of a metric: after it, nothing the run computes can be trusted."""
    bad = ~np.isfinite(value)
    if not bad.any():
        return []
    i = int(np.argmax(bad))
    good_before = np.flatnonzero(~bad[:i])
    last = (f"; last finite value {fmt(value[good_before[-1]])} at step {int(step[good_before[-1]])}"
            if good_before.size else "")
    return [Finding("nan", metric, int(step[i]), None, "critical", 1.0,
                    f"first non-finite value ({value[i]}) at step {int(step[i])}{last}; "
                    f"{int(bad.sum())} of {value.size} points non-finite",
                    "restart from the last good checkpoint with a lower LR, gradient clipping and fp32 "
                    "(or bf16) loss/softmax; check the batch at that step for bad data")]


def detect_divergence(step: np.ndarray, value: np.ndarray, metric: str) -> list[Finding]:
    """A sustained rise: the loss ends well above its best and does not come back."""
    if value.size < 3:
        return []
    y = sm.rolling_median(sm.log_values(value), sm.smooth_window(value.size, DIVERGENCE_SMOOTH, 1001))
    best = int(np.argmin(y))
    tail = y[max(best + 1, value.size - max(1, value.size // 20)):]
    if best >= value.size - 1 or tail.size == 0:
        return []
    rise = float(np.median(tail) - y[best])
    if rise < DIVERGENCE_RISE:
        return []
    # The same rise in loss units, against what was learned: 0.002 -> 0.01 after 0.4 -> 0.002 is noise.
    v_start, v_best, v_end = (float(np.exp(v)) for v in (y[0], y[best], np.median(tail)))
    if v_start > v_best and v_end - v_best < DIVERGENCE_RISE_OF_DROP * (v_start - v_best):
        return []
    onset = _rise_onset(sm.log_values(value), y, best)
    if value.size - 1 - onset < max(3, DIVERGENCE_SUSTAINED * value.size):
        return []  # a noisy tail whose median sits high, not a rise that stays: per-batch noise of +-25% does it
    return [Finding("divergence", metric, int(step[onset]), int(step[-1]), "critical",
                    min(1.0, 0.5 + rise), f"loss rose from its best {fmt(v_best)} at step {int(step[onset])} to "
                    f"{fmt(v_end)} at the end (+{100 * (v_end / v_best - 1):.0f}%) and did not recover",
                    "lower the peak LR (2-10x) and add warmup or clipping; resume from the checkpoint before "
                    f"step {int(step[onset])}")]


def _rise_onset(raw: np.ndarray, smooth: np.ndarray, best: int) -> int:
    """Where a sustained rise leaves the best level. The minimum of a curve smoothed over 5% of the run
    sits up to half a window early (the window around a rising stretch is pulled up), and anywhere in a
    flat bottom; the rise starts at the last point before a lightly smoothed curve climbs past the best
    level plus twice the noise and stays there to the end."""
    light = sm.rolling_median(raw, 3)
    noise = sm.robust_sigma(raw[:best + 1] - smooth[:best + 1]) if best >= 5 else sm.SIGMA_FLOOR
    above = light[best + 1:] > smooth[best] + 2 * noise
    stays = np.flatnonzero(~above)  # the last point after best that is not above the level
    first = best + 1 + (int(stays[-1]) + 1 if stays.size else 0)  # from here on every point is above
    return max(best, min(first - 1, raw.size - 1))


def _spike_events(step: np.ndarray, y: np.ndarray) -> list[dict]:
    """Groups of consecutive points far above the trailing median, with height and recovery."""
    window = max(5, sm.smooth_window(y.size, 0.01, 51))
    base = sm.trailing_median(y, window)
    resid = y - base
    # The noise scale: the smaller of a centred and a trailing estimate. A spike that lasts tens of points
    # inflates the centred window it sits in (which missed 3x spikes decaying over ~20 steps); spikes that
    # come in quick succession, or the first points of a run, inflate the trailing one.
    absres = np.abs(resid)
    centred = sm.rolling_median(np.nan_to_num(absres), 5 * window)
    trailing = sm.trailing_nanmedian(absres, 5 * window, window)
    sigma = np.maximum(sm.MAD_TO_SIGMA * np.fmin(centred, trailing), sm.SIGMA_FLOOR)
    smooth = np.exp(sm.rolling_median(y, window)) if np.all(np.isfinite(np.exp(y))) else y
    floor = SPIKE_MIN_OF_RANGE * float(np.ptp(smooth))
    hot = (resid > SPIKE_Z * sigma) & (resid > SPIKE_MIN_RISE) & (np.exp(y) - np.exp(base) > floor)
    events = []
    i = 0
    recovery_limit = SPIKE_RECOVERY_FRACTION * (step[-1] - step[0])
    while i < y.size:
        if not hot[i]:
            i += 1
            continue
        j = i
        while j + 1 < y.size and hot[j + 1]:
            j += 1
        peak = i + int(np.argmax(y[i:j + 1]))
        level = base[i] + SPIKE_RECOVERED_Z * sigma[i]
        after = np.flatnonzero(y[peak + 1:] <= level)
        rec = None if after.size == 0 else peak + 1 + int(after[0])
        events.append({"start": i, "peak": peak, "recovered": rec, "base": base[i],
                       "height": y[peak] - base[i],
                       "unrecovered": (rec is None and step[-1] - step[peak] > recovery_limit)
                       or (rec is not None and step[rec] - step[peak] > recovery_limit)})
        i = j + 1 if rec is None else max(j + 1, rec)
    return events


def detect_spikes(step: np.ndarray, value: np.ndarray, metric: str, *, quiet: bool = False) -> list[Finding]:
    """Sudden rises far above the recent level (robust: trailing median and MAD, in ln space).

    Spikes under 2x the local level that recover within a handful of points are `info`; spikes 2x or
    more above it, slow to recover (more than 5 points, or 1% of the run), unrecovered, or in a cluster
    are `warning`. `quiet` keeps every spike `info` (a grad-norm spike alone is no failure).
    """
    if value.size < 12:
        return []
    events = _spike_events(step, sm.log_values(value))
    span = max(1.0, float(step[-1] - step[0]))
    findings = []
    peaks = np.array([step[e["peak"]] for e in events])
    for e in sorted(events, key=lambda e: -e["height"])[:SPIKE_MAX_REPORTED]:
        s_peak = int(step[e["peak"]])
        near = int(np.sum(np.abs(peaks - s_peak) <= SPIKE_REPEAT_SPAN * span / 2))
        rec = e["recovered"]
        recovery = ("did not recover" if rec is None else
                    f"recovered after {int(step[rec]) - s_peak} steps ({rec - e['peak']} logged points)")
        points = None if rec is None else rec - e["peak"]
        slow = points is not None and (points > SPIKE_HANDFUL or
                                       (points >= 3 and step[rec] - s_peak > SPIKE_SLOW_FRACTION * span))
        tall = e["height"] >= SPIKE_WARN_HEIGHT
        bad = e["unrecovered"] or near >= SPIKE_REPEAT_COUNT or slow or tall
        severity = "info" if quiet or not bad else "warning"
        why = ("" if severity == "info" else "; " + ", ".join(w for w, on in (
            ("2x or more above the trend", tall), ("slow to recover", slow or e["unrecovered"]),
            ("repeated", near >= SPIKE_REPEAT_COUNT)) if on))
        base_v, peak_v = math.exp(e["base"]), float(value[e["peak"]])
        findings.append(Finding(
            "spike", metric, s_peak, None if rec is None else int(step[rec]), severity,
            min(1.0, 0.5 + e["height"]),
            f"{fmt(peak_v)} at step {s_peak} vs a local median of {fmt(base_v)} (x{peak_v / base_v:.2f}); "
            f"{recovery}" + (f"; {near} spikes within {SPIKE_REPEAT_SPAN:.0%} of the run" if near > 1 else "") + why,
            "isolated spikes that recover are usually a bad batch: no action needed" if severity == "info" else
            "repeated or lasting spikes: lower the peak LR, lengthen warmup, clip gradients (max norm 1.0), "
            "check Adam beta2/eps and the data at those steps",
            marks=tuple(int(step[ev["peak"]]) for ev in events)))
    return findings


def _tail_slopes(step: np.ndarray, y: np.ndarray, grid: np.ndarray) -> list[tuple[int, float, float]]:
    """(start index, improvement per decade, flatness threshold) of y from each start to the end."""
    out = []
    for i in grid:
        slope, se = sm.slope_per_decade(step[i:], y[i:])
        out.append((int(i), -slope, float(np.clip(2 * se, PLATEAU_SLOPE, PLATEAU_SLOPE_MAX))))
    return out


def plateau_onset(step: np.ndarray, value: np.ndarray) -> tuple[int, float] | None:
    """Index where the curve turns flat and stays flat to the end, and the improvement per decade after."""
    n = value.size
    if n < 8:
        return None
    y = sm.log_values(value)
    y_s = sm.rolling_median(y, sm.smooth_window(n, 0.01, 101))
    # Clip outliers so the regression reads the trend, not the spikes.
    sigma = sm.robust_sigma(y - y_s)
    y_c = np.clip(y, y_s - 4 * sigma, y_s + 4 * sigma)
    last = np.searchsorted(step, _frac_step(step, 1 - PLATEAU_MIN_SPAN), side="right") - 1
    last = min(last, n - 4)
    if last < 0:
        return None
    targets = np.linspace(step[0], step[last], min(61, last + 1))
    grid = np.unique(np.clip(np.searchsorted(step, targets), 0, last))
    slopes = _tail_slopes(step, y_c, grid)
    flat = np.array([s < thr for _, s, thr in slopes])
    # The earliest start from which (nearly) every later start is flat too: late starts see few points,
    # so one noisy estimate among them must not veto a long plateau.
    later_flat = np.cumsum(flat[::-1])[::-1] / np.arange(len(flat), 0, -1)
    ok = np.flatnonzero(flat & (later_flat >= PLATEAU_FLAT_SHARE))
    if ok.size == 0:
        return None
    k = int(ok[0])
    # Refine between grid points: the break of a hinge (a slope, then flat) fitted near the grid start.
    lo = slopes[max(k - 6, 0)][0]
    hi = slopes[min(k + 6, len(slopes) - 1)][0]
    return hinge_break(step[lo:], y_s[lo:], hi - lo) + lo, slopes[k][1]


def hinge_break(step: np.ndarray, y: np.ndarray, last: int) -> int:
    """Index (at most `last`) of the break of the least-squares fit y = c + a*u + b*u^2, u = min(x - x_break, 0),
    x the log-step: where a falling (and flattening) curve turns flat."""
    x = sm.log_step(step)
    candidates = np.unique(np.linspace(0, max(0, min(last, x.size - 2)), 200).astype(int))
    best, best_sse = 0, np.inf
    for b in candidates:
        u = np.minimum(x - x[b], 0.0)
        design = np.stack([np.ones_like(u), u, u * u], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((y - design @ coef) ** 2))
        if sse < best_sse:
            best, best_sse = int(b), sse
    return best


def _power_law(t: np.ndarray, e: float, a: float, alpha: float) -> np.ndarray:
    return e + a * np.power(t, -alpha)


def follows_trend(step: np.ndarray, value: np.ndarray, i: int) -> str | None:
    """A sentence when the flat part is what a saturating power law L = E + A*t^-alpha, fitted to the points
    before index i, predicts (a healthy run approaching its floor slowly), else None.

    The flat part follows the trend when it falls at least half as much as the fit predicts, or when the fit
    itself predicts under 2% more progress: flat in log-steps because the floor is near, not because
    learning stopped."""
    from scipy.optimize import curve_fit
    if i < PLATEAU_FIT_MIN_POINTS or value.size - i < 4 or np.any(value <= 0):
        return None
    t = step.astype(float) - float(step[0]) + 1.0
    y = sm.rolling_median(value.astype(float), sm.smooth_window(value.size, 0.02))
    lo = max(1, i // 20)  # skip the first steps (warmup, init transients)
    try:
        with np.errstate(all="ignore"):
            (e, a, alpha), _ = curve_fit(_power_law, t[lo:i], y[lo:i], p0=(0.5 * y[i], y[lo] - 0.5 * y[i], 0.3),
                                         bounds=([0.0, 0.0, 0.01], [np.inf, np.inf, 3.0]), maxfev=4000)
    except (RuntimeError, ValueError):
        return None
    k = max(2, (value.size - i) // 10)
    head, tail = float(np.median(y[i:i + k])), float(np.median(y[-k:]))
    pred_drop = float(_power_law(t[i], e, a, alpha) - _power_law(t[-1], e, a, alpha))
    level = float(_power_law(t[-1], e, a, alpha))
    fit_err = float(np.median(np.abs(y[lo:i] / _power_law(t[lo:i], e, a, alpha) - 1)))
    if fit_err > PLATEAU_FIT_ERROR or level <= 0:
        return None
    actual = head - tail
    if pred_drop < PLATEAU_TREND_LEFT * level:
        return f"the fit predicts {100 * pred_drop / level:.1f}% more: its floor {fmt(e)} is near"
    if actual >= PLATEAU_TREND_SHARE * pred_drop:
        return f"it fell {fmt(actual)} where the fit predicts {fmt(pred_drop)}"
    return None


def detect_plateau(step: np.ndarray, value: np.ndarray, metric: str,
                   lr_at: Callable[[float], float | None] | None = None) -> list[Finding]:
    """Flat from some step to the end: where, at what loss, how flat (improvement per decade of steps)."""
    onset = plateau_onset(step, value)
    if onset is None:
        return []
    i, per_decade = onset
    n = value.size
    head = max(1, n // 50)
    start_level = float(np.median(value[:head]))
    level = float(np.median(value[i:]))
    span = (step[-1] - step[i]) / max(1, step[-1] - step[0])
    converged = start_level > 0 and level <= CONVERGED_FRACTION * start_level
    # The LR where the plateau sets in, or a quarter into it: a detected onset can lead the LR's fall by a
    # few points, and a plateau that an LR collapse causes sits on the collapsed LR.
    lrs = [(v, j) for j in (i, i + (n - i) // 4) if lr_at is not None and (v := lr_at(step[j])) is not None]
    lr_here, lr_step = min(lrs, default=(None, i), key=lambda vj: vj[0])
    annealed = lr_here is not None and lr_here <= LR_ANNEALED
    # An LR near 0 with much of the run left is a schedule that decayed too early, not a final anneal.
    too_early = annealed and span >= LR_EARLY_DECAY_SPAN
    if too_early:
        annealed = False
    decades = float(sm.log_step(step[i:i + 1])[0] - sm.log_step(step[:1])[0])
    before = math.log(start_level / level) / decades if decades > 0 and start_level > 0 and level > 0 else 0.0
    changed = before >= PLATEAU_REGIME * max(per_decade, PLATEAU_SLOPE)
    on_trend = follows_trend(step, value, i)
    stalled = span >= PLATEAU_WARN_SPAN and n - i >= PLATEAU_WARN_POINTS and not converged and not annealed and (
        too_early or (changed and not on_trend))
    why = ("the loss has converged" if converged else "LR is in its final anneal" if annealed else
           f"the LR fell to {100 * (lr_here or 0.0):.2g}% of its peak by step {int(step[lr_step])} with {span:.0%} of "
           f"the run left: the schedule decayed too early" if too_early else
           f"it follows the saturating power law fitted before step {int(step[i])} ({on_trend})" if on_trend else
           f"the run is stuck: {100 * before:.0f}% per decade before" if stalled else
           f"it moved slowly all run: {100 * before:.1f}% per decade before" if not changed else
           "a short flat stretch")
    return [Finding("plateau", metric, int(step[i]), int(step[-1]), "warning" if stalled else "info",
                    float(np.clip(0.5 + span, 0, 0.95)),
                    f"flat at {fmt(level)} from step {int(step[i])} to {int(step[-1])} ({span:.0%} of the run): "
                    f"{100 * per_decade:+.1f}% per decade of steps (from {fmt(start_level)} at the start; {why})",
                    ("raise the LR (lr-find), use a larger model or more data; if eval tracks train, the model "
                     "is too small" if stalled else "stop earlier or decay the LR to finish; the gains left "
                     "here are small"))]


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of x at lags 0..max_lag (biased estimator: stable on short stretches)."""
    x = x - x.mean()
    denom = float(x @ x)
    if denom == 0:
        return np.zeros(max_lag + 1)
    return np.array([float(x[k:] @ x[:x.size - k]) / denom for k in range(max_lag + 1)])


def periodicity(resid: np.ndarray) -> tuple[float, int] | None:
    """(strength, lag) of a repeating swing in a residual: lag-1 persistence (slow swings) or an
    autocorrelation peak after a trough (faster swings, aliased ones included). Batch noise has neither:
    its autocorrelation stays within ~2/sqrt(n) of 0."""
    m = resid.size
    if m < OSC_MIN_POINTS:
        return None
    ac = _acf(resid, min(OSC_MAX_LAG, m // 3))
    if ac[1] >= OSC_AUTOCORR:
        return float(ac[1]), 1
    floor = max(OSC_PEAK, 4.0 / math.sqrt(m))
    for lag in range(2, ac.size):
        if ac[lag] >= floor and ac[1:lag].min() <= -OSC_TROUGH and ac[lag] >= ac[lag - 1] and \
                (lag + 1 >= ac.size or ac[lag] >= ac[lag + 1]):
            return float(ac[lag]), lag
    return None


def detect_oscillation(step: np.ndarray, value: np.ndarray, metric: str) -> list[Finding]:
    """Swings around the trend (a rolling median over several periods) that are large (residual std of 5%
    of the level or more) and repeat (see `periodicity`), unlike batch noise: instability."""
    n = value.size
    if n < OSC_MIN_POINTS:
        return []
    y = sm.log_values(value)
    window = sm.odd(min(max(int(OSC_TREND_FRACTION * n), OSC_TREND_MIN_POINTS), max(3, n // 3)))
    resid = y - sm.rolling_median(y, window)
    # The first and last half-window see a mirrored window: on a steep early drop that is a bias, not a swing.
    lo, hi = window // 2, n - window // 2
    if hi - lo < OSC_MIN_POINTS:
        lo, hi = 0, n
    block = max(OSC_BLOCK_MIN_POINTS, n // 40)
    edges = np.arange(lo, hi + 1, block)
    edges[-1] = hi
    amps = [float(np.std(resid[a:b])) for a, b in zip(edges[:-1], edges[1:])]
    hot = [amp >= OSC_AMPLITUDE for amp in amps]
    findings = []
    k = 0
    while k < len(hot):
        if not hot[k]:
            k += 1
            continue
        j = k
        while j + 1 < len(hot) and hot[j + 1]:
            j += 1
        a, b = int(edges[k]), int(edges[j + 1])
        k = j + 1
        if b - a < OSC_MIN_POINTS:
            continue
        found = periodicity(resid[a:b])
        if found is None:
            continue
        strength, lag = found
        amp = float(np.std(resid[a:b]))
        period = (f"lag-1 autocorrelation {strength:.2f}" if lag == 1 else
                  f"autocorrelation {strength:.2f} at a lag of {lag} points "
                  f"({int(step[min(b - 1, a + lag)] - step[a])} steps)")
        findings.append(Finding(
            "oscillation", metric, int(step[a]), int(step[b - 1]), "warning", float(np.clip(strength, 0, 0.95)),
            f"loss swings {100 * amp:.0f}% (residual std) around its trend from step {int(step[a])} to "
            f"{int(step[b - 1])}, {period} (batch noise would be ~0)",
            "the optimiser is bouncing: lower the LR 2-3x, raise Adam beta2 (0.95 -> 0.99) or the batch size"))
    return findings


def detect_no_learning(step: np.ndarray, value: np.ndarray, metric: str) -> list[Finding]:
    """Loss stuck at its start, often exactly ln(k): the model predicts the uniform distribution."""
    n = value.size
    if n < 5:
        return []
    head = max(1, n // 20)
    # The start is the first 1% (3+ points): a fast early drop inside the first 5% is learning too.
    start = float(np.median(value[:min(head, max(3, n // 100))]))
    end = float(np.median(value[-head:]))
    if start <= 0 or (start - end) / start > NO_LEARNING_FRACTION:
        return []
    k = uniform_match(end)
    uniform = f"; {fmt(end)} = ln {k}: uniform predictions over {k} classes/tokens" if k else ""
    return [Finding("no_learning", metric, int(step[0]), int(step[-1]), "critical", 0.9,
                    f"loss {fmt(start)} at the start and {fmt(end)} at the end "
                    f"({100 * (start - end) / start:+.1f}%) over {int(step[-1] - step[0])} steps{uniform}",
                    "check that gradients reach the weights (zero grads, frozen params, detached loss), that "
                    "labels match inputs, and that the LR is not ~0; then run `ntjax lr-find`")]


def detect_stuck_at_uniform(step: np.ndarray, value: np.ndarray, metric: str,
                            plateau: Finding | None) -> list[Finding]:
    """A plateau exactly at ln(k): learning stopped at the uniform distribution (after a bad init drop)."""
    if plateau is None:
        return []
    level = float(np.median(value[step >= plateau.start_step]))
    k = uniform_match(level, UNIFORM_STUCK_MATCH)
    if k is None:
        return []
    return [Finding("no_learning", metric, plateau.start_step, plateau.end_step, "critical", 0.8,
                    f"stuck at {fmt(level)} = ln {k} from step {plateau.start_step}: the model outputs the "
                    f"uniform distribution over {k} classes/tokens",
                    "the model ignores its input: check data/labels alignment, masking, and that the LR is "
                    "neither ~0 nor so high that the output collapsed; then `ntjax lr-find`")]


def detect_slow_convergence(step: np.ndarray, value: np.ndarray, metric: str) -> list[Finding]:
    """Still improving steadily at the end, with little of the progress made early: LR too low or run
    too short."""
    n = value.size
    if n < 10:
        return []
    y = sm.rolling_median(value.astype(float), sm.smooth_window(n, 0.02))
    start, end = float(y[0]), float(y[-1])
    drop = start - end
    if start <= 0 or drop <= 0:
        return []
    early = float(y[np.searchsorted(step, _frac_step(step, SLOW_EARLY_FRACTION))])
    share = (start - early) / drop
    tail = step >= _frac_step(step, 0.7)
    slope, _ = sm.slope_per_decade(step[tail], sm.log_values(y[tail]))
    total = drop / start
    if -slope < SLOW_TAIL_SLOPE or total > SLOW_CONVERGED_DROP:
        return []
    slow = share < SLOW_EARLY_SHARE and total < SLOW_TOTAL_DROP
    return [Finding("slow_convergence", metric, int(step[0]), None, "warning" if slow else "info",
                    0.7 if slow else 0.5,
                    f"still improving {100 * -slope:.1f}% per decade at the end ({fmt(start)} -> {fmt(end)}, "
                    f"-{100 * total:.0f}%); the first {SLOW_EARLY_FRACTION:.0%} of steps made "
                    f"{100 * share:.0f}% of the progress",
                    "the LR is likely too low: run `ntjax lr-find` and raise it" if slow else
                    "not converged yet: more steps would still help")]
