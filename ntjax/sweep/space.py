"""The search space: `--param NAME=SPEC` flags (or a spec file) parsed into typed parameters, mapped onto
TrainConfig / ModelConfig fields, sampled through an Optuna trial, or expanded into a grid.

SPEC is one of `log:LO:HI` (log-uniform), `uniform:LO:HI`, `int:LO:HI` (inclusive) or `choice:A,B,C`.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntjax.core.config import ModelConfig, TrainConfig
from ntjax.errors import NtjaxError

KINDS = ("log", "uniform", "int", "choice")
# Fields that describe where things live or how they are logged, not how the model trains.
NOT_TUNABLE = {"preset", "model", "spec", "init_from", "data", "mesh", "log", "lora_targets", "eval_every",
               "eval_batches", "eval_fraction", "ckpt_every", "keep_ckpts", "probe_every"}
MODEL_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size"}
TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TUNABLE}
MAX_GRID = 10_000  # a grid beyond this is a typo, not a plan


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its config field, distribution and bounds (or choices)."""

    name: str
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def spec(self) -> str:
        """The `NAME=SPEC` text this parameter was parsed from (round-trips through `parse_param`)."""
        body = ",".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices) \
            if self.kind == "choice" else f"{_num(self.low)}:{_num(self.high)}"
        return f"{self.name}={self.kind}:{body}"


def _num(v: float | None) -> str:
    return str(int(v)) if v is not None and float(v).is_integer() and abs(v) < 1e15 else repr(v)


def tunable_names() -> list[str]:
    return sorted({*TRAIN_FIELDS, *MODEL_FIELDS})


def field_type(name: str) -> type:
    """The Python type of config field `name` (bool, int, float or str); unknown names are an error."""
    field = TRAIN_FIELDS.get(name) or MODEL_FIELDS.get(name)
    if field is None:
        raise NtjaxError(f"unknown hyperparameter {name!r}; tunable names: {', '.join(tunable_names())}")
    annotation = str(field.type)
    for t in (bool, int, float, str):
        if t.__name__ in annotation:
            return t
    raise NtjaxError(f"hyperparameter {name!r} has an unsupported type {annotation}")


def parse_value(name: str, text: str) -> Any:
    """`text` converted to the type of config field `name` ("true"/"false" for booleans)."""
    t = field_type(name)
    text = str(text).strip()
    try:
        if t is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if t is int:
            f = float(text)
            if not f.is_integer():
                raise ValueError
            return int(f)
        return float(text) if t is float else text
    except ValueError:
        raise NtjaxError(f"{name}: {text!r} is not a valid {t.__name__}") from None


def parse_param(text: str) -> Param:
    """`lr=log:1e-4:1e-2` -> Param. Errors name the flag and say what a valid one looks like."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise NtjaxError(f"--param {text!r}: expected NAME=SPEC, e.g. lr=log:1e-4:1e-2")
    t = field_type(name)
    kind, _, body = spec.partition(":")
    if kind not in KINDS:
        raise NtjaxError(f"--param {text!r}: SPEC must start with one of {', '.join(k + ':' for k in KINDS)}")
    if kind == "choice":
        choices = tuple(dict.fromkeys(parse_value(name, c) for c in body.split(",") if c.strip()))
        if not choices:
            raise NtjaxError(f"--param {text!r}: choice needs at least one value, e.g. choice:1,2,4")
        return Param(name, kind, choices=choices)
    if t in (bool, str):
        raise NtjaxError(f"--param {text!r}: {name} is a {t.__name__}; use choice:A,B")
    parts = body.split(":")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise NtjaxError(f"--param {text!r}: expected {kind}:LO:HI with two numbers") from None
    if not (math.isfinite(low) and math.isfinite(high)) or high < low or (high == low and kind != "int"):
        raise NtjaxError(f"--param {text!r}: need LO < HI (got {low:g}, {high:g})")
    if kind == "log" and low <= 0:
        raise NtjaxError(f"--param {text!r}: a log range needs LO > 0")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise NtjaxError(f"--param {text!r}: int bounds must be whole numbers")
    return Param(name, kind, low, high)


def parse_space(texts: Sequence[str]) -> list[Param]:
    """Parse every `--param`; a name given twice is an error."""
    params = [parse_param(t) for t in texts]
    names = [p.name for p in params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise NtjaxError(f"--param given twice for {', '.join(dupes)}")
    return params


def load_space_file(path: str | Path) -> list[str]:
    """The `NAME=SPEC` texts of a JSON or TOML file mapping names to specs, e.g. {"lr": "log:1e-4:1e-2"}
    (optionally under a top-level "params" key)."""
    path = Path(path)
    try:
        raw = path.read_text()
        if path.suffix == ".toml":
            import tomllib  # Python 3.11+
            data = tomllib.loads(raw)
        else:
            data = json.loads(raw)
    except (OSError, ValueError) as e:
        raise NtjaxError(f"cannot read search space {path}: {e}") from None
    data = data.get("params", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise NtjaxError(f"search space {path} must map names to spec strings, e.g. {{\"lr\": \"log:1e-4:1e-2\"}}")
    return [f"{k}={v}" for k, v in data.items()]


def suggest(trial: Any, p: Param) -> Any:
    """Draw `p` through an Optuna trial (so the sampler and the study record it)."""
    integer = field_type(p.name) is int
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int" or integer:
        return trial.suggest_int(p.name, math.ceil(p.low), math.floor(p.high), log=p.kind == "log")
    return trial.suggest_float(p.name, p.low, p.high, log=p.kind == "log")


def grid_values(p: Param, points: int | None) -> list[Any]:
    """The values a grid tries for `p`: every choice; every integer (or `points` evenly spaced ones);
    `points` values evenly spaced on the log or linear axis (required for continuous ranges)."""
    if p.kind == "choice":
        return list(p.choices)
    integer = p.kind == "int" or field_type(p.name) is int
    if points is None:
        if integer and p.high - p.low + 1 <= 100:
            return list(range(int(p.low), int(p.high) + 1))
        raise NtjaxError(f"a grid over {p.spec} needs --grid-points N (values per axis)")
    if points < 1:
        raise NtjaxError(f"--grid-points must be at least 1 (got {points})")
    raw = np.geomspace(p.low, p.high, points) if p.kind == "log" else np.linspace(p.low, p.high, points)
    if integer:
        return sorted({int(round(v)) for v in raw})
    return [float(min(max(float(f"{v:.4g}"), p.low), p.high)) for v in raw]


def grid(params: Sequence[Param], points: int | None) -> dict[str, list[Any]]:
    """The full grid as Optuna's GridSampler wants it: name -> values."""
    space = {p.name: grid_values(p, points) for p in params}
    if grid_size(space) > MAX_GRID:
        raise NtjaxError(f"the grid implies {grid_size(space):,} runs; narrow it (at most {MAX_GRID:,})")
    return space


def grid_size(space: dict[str, list[Any]]) -> int:
    return math.prod(len(v) for v in space.values())


def grid_points_list(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every grid point as a params dict (for showing the plan)."""
    names = list(space)
    return [dict(zip(names, combo)) for combo in itertools.product(*space.values())]


def apply_params(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """`cfg` with each param set on its TrainConfig or ModelConfig field (cast to that field's type)."""
    top, model = {}, {}
    for name, value in params.items():
        t = field_type(name)
        value = value if isinstance(value, t) and not (t is int and isinstance(value, bool)) \
            else parse_value(name, str(value))
        (model if name in MODEL_FIELDS else top)[name] = value
    if model:
        top["model"] = dataclasses.replace(cfg.model, **model)
    return dataclasses.replace(cfg, **top)


def parse_sets(texts: Sequence[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` fixed overrides (e.g. qk_norm=true, warmup=0) as a typed dict."""
    out = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise NtjaxError(f"--set {text!r}: expected NAME=VALUE, e.g. warmup=0")
        out[name.strip()] = parse_value(name.strip(), value)
    return out
