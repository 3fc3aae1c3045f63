"""`ntjax scale run`: design a scaling study in one preset's model family, train it, collect the CSV.

Model size N is changed through width (d_model, with 32-wide heads) at the preset's depth; data D through
the number of steps at the preset's batch and sequence length (D = steps · batch · seq_len). N is the
non-embedding parameter count by default (Kaplan et al. 2020 found the cleanest laws with it; with a
256-byte vocabulary the embeddings are a large share of a tiny model); `count="total"` counts them too.
Peak LR and warmup are left to `ntjax.core.config.resolve` (smart defaults scaled by N) in every run. Under
μP (`parametrization="mup"`) every width keeps the preset's number of heads and its peak LR (the one given,
or the smart LR of the preset's own width, which is the base width): μP makes that LR right at every width,
so the sizes need no re-tuning (ntjax/core/mup.py).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ntjax.core.config import ModelConfig, TrainConfig, resolve
from ntjax.errors import NtjaxError

WIDTHS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MIN_STEPS = 20
CSV_COLUMNS = ("name", "group", "N", "N_total", "D", "flops", "loss", "d_model", "n_layers", "steps",
               "lr", "warmup", "diverged")


@dataclasses.dataclass(frozen=True)
class StudyRun:
    name: str
    group: str
    cfg: TrainConfig
    n_params: int  # what the fit uses (non-embedding unless count="total")
    n_tokens: int

    @property
    def flops(self) -> float:
        return 6.0 * self.n_params * self.n_tokens


def with_width(base: TrainConfig, d_model: int) -> ModelConfig:
    """The base model at another width: heads of 32 dims (at least one head); under μP the base's heads
    (μP's attention scale assumes the head count fixed and d_head growing)."""
    heads = base.model.n_heads if base.parametrization == "mup" else max(1, d_model // 32)
    while d_model % heads:
        heads -= 1
    return dataclasses.replace(base.model, d_model=d_model, n_heads=heads)


def _count(model: ModelConfig, count: str) -> int:
    return model.n_params(embedding=(count == "total"))


def _run(base: TrainConfig, model: ModelConfig, steps: int, group: str, count: str) -> StudyRun:
    eval_every = max(1, steps)
    lr = None
    if base.parametrization == "mup":  # the base width's LR transfers; record the base width explicitly
        lr = base.lr if base.lr is not None else resolve(base).lr
        base = dataclasses.replace(base, base_width=base.base_width or base.model.d_model)
    cfg = dataclasses.replace(base, model=model, steps=steps, lr=lr, warmup=None, eval_every=eval_every,
                              ckpt_every=eval_every, probe_every=eval_every, log=("jsonl",))
    cfg = resolve(cfg)
    name = f"d{model.d_model}_L{model.n_layers}_s{steps}"
    return StudyRun(name, group, cfg, _count(model, count), steps * base.tokens_per_step)


def design_isoflop(base: TrainConfig, budgets: Sequence[float], *, sizes: int = 3, count: str = "non-embedding",
                   widths: Sequence[int] = WIDTHS, max_steps: int = 100_000) -> list[StudyRun]:
    """For each budget C, `sizes` widths whose step counts (C / 6N / tokens per step) are feasible,
    centred on the width whose tokens-per-parameter is closest to 20 (Chinchilla's optimum)."""
    runs = []
    for c in budgets:
        options = []
        for w in widths:
            model = with_width(base, w)
            n = _count(model, count)
            steps = int(round(c / (6.0 * n * base.tokens_per_step)))
            if MIN_STEPS <= steps <= max_steps:
                options.append((abs(math.log(steps * base.tokens_per_step / n / 20.0)), model, steps))
        if len(options) < sizes:
            raise NtjaxError(f"budget {c:.3g} FLOPs allows only {len(options)} model widths with "
                             f"{MIN_STEPS}..{max_steps} steps; choose a larger budget or fewer sizes")
        centre = min(range(len(options)), key=lambda i: options[i][0])
        lo = min(max(0, centre - sizes // 2), len(options) - sizes)
        runs += [_run(base, m, s, f"C={c:.3g}", count) for _, m, s in options[lo:lo + sizes]]
    return runs


def design_axis(base: TrainConfig, axis: str, values: Sequence[int], *, count: str = "non-embedding") -> list[StudyRun]:
    """Vary one axis from the preset: `width` (d_model values, fixed steps) or `steps` (fixed model)."""
    if axis == "width":
        return [_run(base, with_width(base, int(v)), base.steps, "width", count) for v in values]
    if axis == "steps":
        return [_run(base, base.model, int(v), "steps", count) for v in values]
    raise NtjaxError(f"unknown axis {axis!r}; choose width or steps")


def _final_eval_loss(result) -> float:
    history = getattr(result, "eval_history", None) or []
    return float(history[-1][1]) if history else float(result.best_eval_loss)


def execute(runs: Sequence[StudyRun], out_dir: Path, *, train_fn: Callable | None = None,
            log: Callable[[str], None] = lambda s: None, lines: tuple | None = None) -> list[dict]:
    """Train each run into out_dir/<name> (a finished run's recorded row is reused) and return the rows.
    `lines=(every_s, stream)` gives each run plain progress lines (see `ntjax.trainer.train`)."""
    if train_fn is None:
        from ntjax.trainer import train
        train_fn = train
    rows = []
    for i, run in enumerate(runs):
        folder = out_dir / run.name
        done = folder / "scale_point.json"
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            continue
        log(f"[{i + 1}/{len(runs)}] {run.name}: N={run.n_params:,} D={run.n_tokens:,} C={run.flops:.3g} "
            f"lr={run.cfg.lr:.3g} warmup={run.cfg.warmup}")
        result = train_fn(run.cfg, folder, progress=False, **({"lines": lines} if lines else {}))
        row = {"name": run.name, "group": run.group, "N": run.n_params, "N_total": run.cfg.model.n_params(),
               "D": run.n_tokens, "flops": run.flops, "loss": _final_eval_loss(result),
               "d_model": run.cfg.model.d_model, "n_layers": run.cfg.model.n_layers, "steps": run.cfg.steps,
               "lr": run.cfg.lr, "warmup": run.cfg.warmup, "diverged": bool(result.diverged)}
        done.write_text(json.dumps(row))
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    """The CSV `ntjax scale fit` reads (columns N, D, flops, loss, plus the run's shape and LR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in CSV_COLUMNS})
    return path


def usable(rows: Sequence[dict]) -> list[dict]:
    """Rows that finished with a finite loss (a diverged run says nothing about the scaling law)."""
    return [r for r in rows if not r["diverged"] and np.isfinite(r["loss"])]
