"""Compute-optimal model size and tokens for a FLOP budget, under our fit and the published laws.

With C = 6·N·D, minimising L = E + A/N^alpha + B/D^beta at fixed C gives (Hoffmann et al. 2022, App. D.2)
N_opt = G·(C/6)^a, D_opt = G^-1·(C/6)^b, a = beta/(alpha+beta), b = alpha/(alpha+beta),
G = (alpha·A / (beta·B))^(1/(alpha+beta)).
Kaplan et al. 2020 (Fig. 14, Table 6): N_opt = 1.3e9·(C/PF-day)^0.73 non-embedding parameters.
Muennighoff et al. 2023: when unique data U is scarce, repeated tokens and excess parameters decay in
value, with R_D* = 15.4 and R_N* = 5.3 (their C4 fit), and the optimum moves to fewer parameters and
more epochs.
"""
from __future__ import annotations

import dataclasses

import numpy as np

PF_DAY = 8.64e19  # FLOPs in one petaflop/s-day
# Hoffmann et al. 2022, Approach 3 as published (eq. 10).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # what Chinchilla itself used (70B params, 1.4T tokens)
KAPLAN_N_COEF, KAPLAN_N_EXP = 1.3e9, 0.73
# Muennighoff et al. 2023, C4 fit (huggingface/datablations README, "Parametric Fit").
MUENNIGHOFF = {"E": float(np.exp(0.6254804)), "A": float(np.exp(6.255414)), "B": float(np.exp(7.3049974)),
               "alpha": 0.3526596, "beta": 0.3526596, "rd_star": 15.387756, "rn_star": 5.309743}


@dataclasses.dataclass(frozen=True)
class Allocation:
    """How to spend a budget: parameters, tokens, and the resulting tokens per parameter."""

    flops: float
    n_params: float
    n_tokens: float
    loss: float | None = None

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    def as_dict(self) -> dict[str, float | None]:
        return {"flops": self.flops, "n_params": self.n_params, "n_tokens": self.n_tokens,
                "tokens_per_param": self.tokens_per_param, "loss": self.loss}


def exponents(alpha: float, beta: float) -> tuple[float, float]:
    """(a, b) in N_opt ∝ C^a, D_opt ∝ C^b: a = beta/(alpha+beta), b = alpha/(alpha+beta)."""
    return beta / (alpha + beta), alpha / (alpha + beta)


def _g(p: dict[str, float]) -> float:
    return (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / (p["alpha"] + p["beta"]))


def surface_loss(p: dict[str, float], n_params: np.ndarray | float, n_tokens: np.ndarray | float) -> np.ndarray:
    """L(N, D) = E + A/N^alpha + B/D^beta."""
    return p["E"] + p["A"] / np.power(n_params, p["alpha"]) + p["B"] / np.power(n_tokens, p["beta"])


def compute_optimal(p: dict[str, float], flops: float) -> Allocation:
    """The closed-form optimum of the surface `p` at budget `flops` (C = 6ND)."""
    a, b = exponents(p["alpha"], p["beta"])
    g = _g(p)
    n, d = g * (flops / 6.0) ** a, (flops / 6.0) ** b / g
    return Allocation(flops, n, d, float(surface_loss(p, n, d)))


def kaplan_optimal(flops: float) -> Allocation:
    """Kaplan et al.'s compute-efficient size N = 1.3e9·(C/PF-day)^0.73, with D = C/(6N)."""
    n = KAPLAN_N_COEF * (flops / PF_DAY) ** KAPLAN_N_EXP
    return Allocation(flops, n, flops / (6.0 * n))


def chinchilla_rule(flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> Allocation:
    """The 20-tokens-per-parameter rule of thumb: N = sqrt(C / (6·20))."""
    n = np.sqrt(flops / (6.0 * tokens_per_param))
    return Allocation(flops, float(n), float(tokens_per_param * n))


def data_constrained_loss(p: dict[str, float], n_params: np.ndarray | float, n_tokens: np.ndarray | float,
                          unique_tokens: np.ndarray | float) -> np.ndarray:
    """Muennighoff et al.'s L(N, D, U): repeated epochs (R_D = D/U − 1) and parameters beyond what U
    can feed (U_N = the compute-optimal N for U tokens) count with exponentially decaying value."""
    n, d = np.asarray(n_params, np.float64), np.asarray(n_tokens, np.float64)
    u = np.minimum(np.asarray(unique_tokens, np.float64), d)
    g = _g(p)
    u_n = np.minimum(n, (u * g) ** (p["beta"] / p["alpha"]) * g)
    r_d = np.maximum(d / u - 1.0, 0.0)
    r_n = np.maximum(n / u_n - 1.0, 0.0)
    n_eff = u_n + u_n * p["rn_star"] * (1.0 - np.exp(-r_n / p["rn_star"]))
    d_eff = u + u * p["rd_star"] * (1.0 - np.exp(-r_d / p["rd_star"]))
    return p["E"] + p["A"] / n_eff ** p["alpha"] + p["B"] / d_eff ** p["beta"]


def data_constrained_optimal(p: dict[str, float], flops: float, unique_tokens: float,
                             points: int = 4001) -> Allocation:
    """Minimise the data-constrained loss along C = 6ND by a dense log-spaced search over N (Muennighoff
    et al. give no closed form), from 1/1000 to 1000x the unconstrained optimum."""
    centre = compute_optimal(p, flops).n_params
    n = centre * np.logspace(-3, 3, points)
    d = flops / (6.0 * n)
    loss = data_constrained_loss(p, n, d, unique_tokens)
    i = int(np.argmin(loss))
    return Allocation(flops, float(n[i]), float(d[i]), float(loss[i]))


def compare(fitted: dict[str, float] | None, flops: float, unique_tokens: float | None = None) -> dict[str, dict]:
    """The allocations side by side: our fit, Chinchilla (Approach 3 and the 20:1 rule), Kaplan, and,
    given a unique-token limit, Muennighoff's data-constrained optimum for our fit's alpha/beta."""
    out = {}
    if fitted is not None:
        out["fit"] = compute_optimal(fitted, flops).as_dict()
    out["chinchilla_approach3"] = compute_optimal(CHINCHILLA, flops).as_dict()
    out["chinchilla_20_tokens_per_param"] = chinchilla_rule(flops).as_dict()
    out["kaplan"] = kaplan_optimal(flops).as_dict()
    if unique_tokens is not None:
        base = dict(MUENNIGHOFF) if fitted is None else {**MUENNIGHOFF, **fitted}
        alloc = data_constrained_optimal(base, flops, unique_tokens)
        out["data_constrained"] = {**alloc.as_dict(), "unique_tokens": unique_tokens,
                                   "epochs": alloc.n_tokens / unique_tokens}
    return out
