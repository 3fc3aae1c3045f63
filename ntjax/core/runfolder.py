"""The run folder's files other than logs: `config.json` (the config actually used plus the evidence a
diagnosis needs) and loading a trained model back from `checkpoints/`."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ntjax.core import config as config_lib
from ntjax.errors import NtjaxError

CONFIG_FILE = "config.json"


def write_config(out_dir: Path, cfg: config_lib.TrainConfig, evidence: dict[str, Any]) -> Path:
    """Write `config.json`: `train` (the resolved config, loadable with `config.load`) and `evidence`."""
    path = out_dir / CONFIG_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"framework": "ntjax", "train": config_lib.to_dict(cfg), **evidence}, indent=2,
                              default=str))
    os.replace(tmp, path)
    return path


def optimizer_evidence(cfg: config_lib.TrainConfig) -> dict[str, Any]:
    """The optimizer's settings in the same shape the torch bridge writes (one param group)."""
    return {"class": cfg.optimizer, "param_groups": [{
        "lr": cfg.lr, "betas": [cfg.b1, cfg.b2], "eps": cfg.eps, "weight_decay": cfg.weight_decay,
        "schedule": cfg.schedule, "warmup": cfg.warmup, "min_lr_ratio": cfg.min_lr_ratio,
        "clip_norm": cfg.clip_norm}]}


def read_config(run_dir: str | Path) -> config_lib.TrainConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise NtjaxError(f"{run_dir} is not an ntjax run folder (no {CONFIG_FILE})")
    return config_lib.load(path)


@dataclasses.dataclass
class LoadedRun:
    cfg: config_lib.TrainConfig
    graphdef: Any
    state: Any  # ntjax.core.step.TrainState
    step: int
    meta: dict[str, Any]


def load_run(run_dir: str | Path, step: int | None = None, which: str = "latest") -> LoadedRun:
    """Rebuild a run's model and optimizer state from its checkpoint (`step`, else latest or best)."""
    from ntjax.core.checkpoint import Checkpoints
    from ntjax.trainer import build_state

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise NtjaxError(f"{run_dir} has no checkpoints/ folder")
    ckpts = Checkpoints(ckpt_dir, keep=cfg.keep_ckpts, async_save=False, read_only=True)
    try:
        if step is None:
            step = ckpts.best_step() if which == "best" else ckpts.latest_step()
        if step is None:
            raise NtjaxError(f"{ckpt_dir} holds no complete checkpoint")
        _, graphdef, state, _ = build_state(cfg)
        abstract = jax.tree.map(np.zeros_like, state)
        restored, meta = ckpts.restore(step, abstract)
    finally:
        ckpts.close()
    return LoadedRun(cfg=cfg, graphdef=graphdef, state=restored, step=int(step), meta=meta)
