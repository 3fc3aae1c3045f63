"""Scaling points from a CSV: one row per training run with parameters, tokens (or FLOPs) and final loss.

Columns are found by name, so Epoch's Chinchilla extraction (`Model Size`, `Training FLOP`, `loss`),
`ntjax scale run`'s own CSV (`N`, `D`, `loss`, `flops`) and most hand-made tables read as they are. When
there is no token column, D = C / (6·N), as Epoch's notebook derives it.
"""
from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np

from ntjax.errors import NtjaxError

# Folded header (lower case, letters and digits only) -> role; the first role a header matches wins.
_ROLES: dict[str, tuple[str, ...]] = {
    "n": ("n", "params", "nparams", "numparams", "parameters", "modelsize", "size", "nonembeddingparams",
          "nparamsnonembedding", "paramsnonembedding", "nonembedding", "model_params", "modelparams"),
    "d": ("d", "tokens", "ntokens", "trainingtokens", "traintokens", "data", "datasetsize", "numtokens"),
    "c": ("c", "flops", "flop", "trainingflop", "trainingflops", "compute", "trainflops", "computeflops"),
    "loss": ("loss", "finalloss", "evalloss", "valloss", "validationloss", "testloss", "trainloss",
             "bestevalloss", "finalevalloss"),
}


def _fold(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclasses.dataclass(frozen=True)
class ScalingPoints:
    """Parallel arrays, one entry per run: N parameters, D tokens, C = 6·N·D FLOPs (or as given), loss."""

    n_params: np.ndarray
    n_tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    columns: dict[str, str]  # role -> the header it came from ("derived" for D = C/6N)

    def __len__(self) -> int:
        return int(self.loss.shape[0])

    def subset(self, mask: np.ndarray) -> ScalingPoints:
        return ScalingPoints(self.n_params[mask], self.n_tokens[mask], self.flops[mask], self.loss[mask],
                             self.columns)


def detect_columns(header: list[str]) -> dict[str, str]:
    """Which header holds N, D, C and loss; raises when N or loss, or both D and C, are missing."""
    folded = {_fold(h): h for h in header}
    found: dict[str, str] = {}
    for role, names in _ROLES.items():
        for name in names:
            if _fold(name) in folded and folded[_fold(name)] not in found.values():
                found[role] = folded[_fold(name)]
                break
    missing = [r for r in ("n", "loss") if r not in found]
    if missing or ("d" not in found and "c" not in found):
        need = {"n": "parameters (N, params, Model Size)", "loss": "loss (loss, final_loss, eval_loss)"}
        what = [need[r] for r in missing] + ([] if "d" in found or "c" in found else
                                             ["tokens (D, tokens) or FLOPs (C, flops, Training FLOP)"])
        raise NtjaxError(f"CSV has no column for {' and '.join(what)}; columns are {', '.join(header)}")
    return found


def from_arrays(n_params: np.ndarray, loss: np.ndarray, *, n_tokens: np.ndarray | None = None,
                flops: np.ndarray | None = None, columns: dict[str, str] | None = None) -> ScalingPoints:
    """Points from arrays, deriving D = C/6N or C = 6ND; rows with a non-finite or non-positive value go."""
    n = np.asarray(n_params, np.float64)
    if n_tokens is None and flops is None:
        raise NtjaxError("need tokens or FLOPs for every run")
    d = np.asarray(n_tokens, np.float64) if n_tokens is not None else np.asarray(flops, np.float64) / (6 * n)
    c = np.asarray(flops, np.float64) if flops is not None else 6 * n * d
    y = np.asarray(loss, np.float64)
    ok = np.all(np.isfinite([n, d, c, y]), axis=0) & (n > 0) & (d > 0) & (c > 0) & (y > 0)
    cols = dict(columns or {})
    if n_tokens is None:
        cols["d"] = "derived: C/(6N)"
    return ScalingPoints(n[ok], d[ok], c[ok], y[ok], cols)


def read_points(path: str | Path) -> ScalingPoints:
    """Read a scaling CSV; raises NtjaxError with one clear line on a missing file or columns."""
    p = Path(path)
    if not p.is_file():
        raise NtjaxError(f"no such CSV file: {p}")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError:
        raise NtjaxError(f"{p} is not a text CSV (binary or not UTF-8)") from None
    except csv.Error as e:  # a field over the csv module's size limit, a NUL byte, ...
        raise NtjaxError(f"{p} is not a readable CSV: {e}") from None
    except OSError as e:
        raise NtjaxError(f"cannot read {p}: {e.strerror or e}") from None
    if not rows:
        raise NtjaxError(f"{p} has no data rows")
    cols = detect_columns(list(rows[0].keys()))

    def column(role: str) -> np.ndarray | None:
        if role not in cols:
            return None
        try:
            return np.array([float(r[cols[role]]) if r[cols[role]] not in ("", None) else np.nan for r in rows])
        except ValueError as e:
            raise NtjaxError(f"column {cols[role]!r} of {p} is not numeric: {e}") from None

    points = from_arrays(column("n"), column("loss"), n_tokens=column("d"), flops=column("c"), columns=cols)
    if len(points) == 0:
        raise NtjaxError(f"{p}: no row has positive, finite parameters, tokens/FLOPs and loss")
    return points


def drop_highest_loss(points: ScalingPoints, k: int) -> ScalingPoints:
    """Without the k highest-loss runs (Epoch drops 5 outliers from the Chinchilla extraction)."""
    if k <= 0:
        return points
    return points.subset(np.argsort(points.loss, kind="stable")[:-k])
