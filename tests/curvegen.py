"""Synthetic training runs for detector tests: healthy shapes with realistic noise, and each pathology
injected at a known step. Values follow the usual forms (power-law and exponential decay, linear warmup,
cosine LR); noise is multiplicative (per-batch loss noise scales with the loss)."""
from __future__ import annotations

import math

import numpy as np

from ntjax.diagnostics.runtable import RunTable, make_series

N_STEPS = 5000
EVAL_EVERY = 100
SHAPES = ("power_law", "exponential", "warmup", "cosine")


def _lr(shape: str, t: np.ndarray, peak: float = 1e-3) -> np.ndarray:
    warm = 0.05 * t[-1]
    if shape == "cosine":
        lr = peak * 0.5 * (1 + np.cos(np.pi * np.clip((t - warm) / (t[-1] - warm), 0, 1)))
    else:
        lr = np.full(t.shape, peak)
    return np.where(t < warm, peak * (t + 1) / warm, lr) if shape in ("warmup", "cosine") else lr


def clean_loss(shape: str, t: np.ndarray) -> np.ndarray:
    """Noise-free train loss of a healthy run of the given shape."""
    if shape == "power_law":
        return 1.8 + 8.0 * (t + 10.0) ** -0.35
    if shape == "exponential":  # a classifier converging to a floor
        return 0.08 + 2.2 * np.exp(-t / (0.15 * t[-1]))
    if shape == "warmup":  # LM: fast drop from ln(256) during warmup, then a power law
        return 1.2 + 4.35 * (1 + t / 40.0) ** -0.45
    if shape == "cosine":  # power law plus the extra drop of the final anneal
        anneal = 0.15 * (1 - np.cos(np.pi * t / t[-1])) / 2
        return (2.1 + 9.0 * (t + 20.0) ** -0.4) * (1 - anneal)
    raise ValueError(shape)


def run(shape: str = "power_law", seed: int = 0, noise: float = 0.03, eval_noise: float = 0.004,
        n: int = N_STEPS) -> dict[str, np.ndarray]:
    """Columns of a healthy run: step, train loss (every step), lr, eval steps and eval loss."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    loss = clean_loss(shape, t)
    e_step = np.arange(0, n, EVAL_EVERY, dtype=np.float64)
    e_step = np.r_[e_step, n - 1] if e_step[-1] != n - 1 else e_step
    eval_loss = np.interp(e_step, t, loss) * 1.03
    return {"step": t, "train": loss * np.exp(noise * rng.standard_normal(n)), "lr": _lr(shape, t),
            "eval_step": e_step, "eval": eval_loss * np.exp(eval_noise * rng.standard_normal(e_step.size)),
            "clean": loss}


def table(cols: dict[str, np.ndarray], source: str = "synthetic") -> RunTable:
    """A RunTable holding the columns of `run` (or a modified copy)."""
    tab = RunTable(source=source, format="synthetic")
    tab.add(make_series("train/loss", cols["step"], cols["train"]))
    tab.add(make_series("train/lr", cols["step"], cols["lr"]))
    if cols.get("eval") is not None:
        tab.add(make_series("eval/loss", cols["eval_step"], cols["eval"]))
    return tab


def inject(kind: str, cols: dict[str, np.ndarray], onset: float, seed: int = 0) -> dict[str, np.ndarray]:
    """A copy of a healthy run with one pathology starting at step `onset` (a step number)."""
    rng = np.random.default_rng(seed + 1000)
    c = {k: v.copy() for k, v in cols.items()}
    t, after = c["step"], c["step"] >= onset
    noise = c["train"] / c["clean"]
    e_after = c["eval_step"] >= onset
    level = float(np.interp(onset, t, c["clean"]))
    if kind == "spike":
        c["train"][int(onset)] *= 2.0
    elif kind == "repeated_spikes":
        for k in range(4):
            c["train"][int(onset) + 40 * k] *= 1.8
    elif kind == "plateau":
        c["train"] = np.where(after, level * noise, c["train"])
        c["eval"] = np.where(e_after, level * 1.03, c["eval"])
    elif kind == "divergence":
        tau = 0.03 * t[-1]
        c["train"] = c["train"] * np.exp(np.clip((t - onset) / tau, 0, None))
        c["eval"] = c["eval"] * np.exp(np.clip((c["eval_step"] - onset) / tau, 0, None))
    elif kind == "nan":
        c["train"] = np.where(after, np.nan, c["train"])
    elif kind == "overfitting":
        rise = 1 + 0.25 * np.clip((c["eval_step"] - onset) / (t[-1] - onset), 0, None) ** 1.2
        e_level = np.interp(np.minimum(c["eval_step"], onset), t, c["clean"]) * 1.03
        c["eval"] = np.where(e_after, e_level * rise, c["eval"])
    elif kind == "oscillation":
        swing = 1 + 0.15 * np.sin(2 * np.pi * (t - onset) / 40.0)
        c["train"] = np.where(after, c["train"] * swing, c["train"])
    elif kind == "no_learning":
        c["train"] = math.log(10) * noise
        c["eval"] = math.log(10) * np.exp(0.002 * rng.standard_normal(c["eval"].size))
    elif kind == "underfitting":  # both curves stop at a high level, eval right on train
        c["train"] = np.where(after, level * noise, c["train"])
        c["eval"] = np.where(e_after, level * 1.01, c["eval"])
    elif kind == "slow_convergence":  # LR far too low: a slow, almost linear decline
        clean = 5.5 - 1.2 * (t / t[-1]) ** 0.9
        c["train"] = clean * noise
        c["eval"] = np.interp(c["eval_step"], t, clean) * 1.01
    else:
        raise ValueError(kind)
    return c
