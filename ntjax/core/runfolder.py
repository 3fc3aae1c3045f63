"""The run folder, in one place: every file name in it, writing and reading `config.json`, locating
checkpoints and loading weights back. The logs themselves are read through `ntjax.readers`.

A run folder holds `metrics.jsonl`, `config.json`, `checkpoints/<step>/`, `events.jsonl`, `report.md`,
`eval_report.md` and `plots/`; the bridges write the first two with the same names.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ntjax.core import config as config_lib
from ntjax.errors import NtjaxError

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
REPORT_FILE = "report.md"
EVAL_REPORT_FILE = "eval_report.md"
CHECKPOINTS_DIR = "checkpoints"
PLOTS_DIR = "plots"
STATUS_FILE = "status.json"
LOCK_FILE = ".ntjax.lock"  # one writer at a time (ntjax.core.runlock)


def folder_of(path: str | Path) -> Path:
    """The run folder of a path that names the folder or a file inside it."""
    p = Path(path)
    return p if p.is_dir() else p.parent


def write_json_atomic(path: Path, doc: Any) -> Path:
    """Write `doc` as indented JSON through a temporary file and a rename (a reader never sees half)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
    return path


def write_config(out_dir: Path, cfg: config_lib.TrainConfig, evidence: dict[str, Any]) -> Path:
    """Write `config.json`: `train` (the resolved config, loadable with `config.load`) and `evidence`."""
    return write_json_atomic(out_dir / CONFIG_FILE,
                             {"framework": "ntjax", "train": config_lib.to_dict(cfg), **evidence})


def optimizer_evidence(cfg: config_lib.TrainConfig) -> dict[str, Any]:
    """The optimizer's settings in the same shape the torch bridge writes (one param group)."""
    return {"class": cfg.optimizer, "param_groups": [{
        "lr": cfg.lr, "betas": [cfg.b1, cfg.b2], "eps": cfg.eps, "weight_decay": cfg.weight_decay,
        "schedule": cfg.schedule, "warmup": cfg.warmup, "min_lr_ratio": cfg.min_lr_ratio,
        "clip_norm": cfg.clip_norm}]}


def read_config_dict(path: str | Path) -> dict[str, Any] | None:
    """The raw `config.json` beside a log or in a run folder (any framework's), or None if absent/unreadable."""
    try:
        doc = json.loads((folder_of(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_config(run_dir: str | Path) -> config_lib.TrainConfig:
    """The resolved `TrainConfig` of an ntjax run folder."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise NtjaxError(f"{run_dir} is not an ntjax run folder (no {CONFIG_FILE})")
    return config_lib.load(path)


def planned_steps(path: str | Path) -> int | None:
    """The planned number of steps from an ntjax run's config.json, if there is one."""
    doc = read_config_dict(path)
    try:
        return int(doc["train"]["steps"]) if doc else None
    except (KeyError, TypeError, ValueError):
        return None


def report_is_current(path: str | Path) -> bool:
    """An ntjax run is done when its report.md is at least as new as its metrics.jsonl."""
    folder = folder_of(path)
    report, log = folder / REPORT_FILE, folder / METRICS_FILE
    return report.exists() and log.exists() and report.stat().st_mtime >= log.stat().st_mtime


# --- lifecycle: status.json -----------------------------------------------------------------------------
# Written by whatever runs the training (the bridges' monitors and callbacks; `ntjax run` for a command it
# launched) and read by `ntjax monitor`, so a run that ended is not shown as "running". A process killed
# outright (SIGKILL, power loss) cannot write its end: its mark stays "running", and the monitor's
# last-write age is the evidence then.  {"state": "finished", "time": ..., "step": 1200, "pid": 4242, "reason": null}

STATES = ("running", "finished", "crashed")


def write_status(run_dir: str | os.PathLike, state: str, *, step: int | None = None,
                 reason: str | None = None) -> Path:
    """Write `run_dir/status.json` atomically (a reader never sees half a file)."""
    if state not in STATES:
        raise ValueError(f"run state must be one of {', '.join(STATES)}, not {state!r}")
    path = Path(run_dir) / STATUS_FILE
    record = {"state": state, "time": round(time.time(), 3), "step": step, "pid": os.getpid(), "reason": reason}
    tmp = path.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run folder's mark, or None when there is none (or it is unreadable)."""
    path = Path(run_dir)
    path = (path if path.is_dir() else path.parent) / STATUS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("state") in STATES else None


def ended_as(path: str | Path) -> str | None:
    """"finished" or "crashed" when the run's status.json says it ended; None while running or unmarked."""
    mark = read_status(path)
    return mark["state"] if mark is not None and mark["state"] != "running" else None


def run_finished(path: str | Path) -> bool:
    """A run is done when its status.json says it ended (bridges, `ntjax run`), or, for an ntjax run,
    when its report.md is at least as new as its metrics.jsonl."""
    return ended_as(path) is not None or report_is_current(path)


# --- checkpoints ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LoadedRun:
    cfg: config_lib.TrainConfig
    graphdef: Any
    state: Any  # ntjax.core.step.TrainState
    step: int
    meta: dict[str, Any]


def locate_checkpoint(path: str | Path) -> tuple[Path, int | None]:
    """(run folder, step) for a run folder (step None: latest) or one checkpoint `RUN/checkpoints/<step>`."""
    p = Path(path)
    if (p / CHECKPOINTS_DIR).is_dir():
        return p, None
    if p.parent.name == CHECKPOINTS_DIR and p.name.isdigit():
        if not p.is_dir():
            raise NtjaxError(f"no checkpoint {p}")
        return p.parent.parent, int(p.name)
    if not p.exists():
        raise NtjaxError(f"{p} does not exist")
    raise NtjaxError(f"{p} is neither an ntjax run folder (with {CHECKPOINTS_DIR}/) nor a checkpoint "
                     f"RUN/{CHECKPOINTS_DIR}/STEP")


def _open_checkpoints(run_dir: Path, cfg: config_lib.TrainConfig):
    from ntjax.core.checkpoint import Checkpoints

    ckpt_dir = run_dir / CHECKPOINTS_DIR
    if not ckpt_dir.is_dir():
        raise NtjaxError(f"{run_dir} has no {CHECKPOINTS_DIR}/ folder")
    return Checkpoints(ckpt_dir, keep=cfg.keep_ckpts, async_save=False, read_only=True)


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The steps with a complete checkpoint in a run folder."""
    run_dir = Path(run_dir)
    ckpts = _open_checkpoints(run_dir, read_config(run_dir))
    try:
        return ckpts.steps()
    finally:
        ckpts.close()


def iter_checkpoints(run_dir: str | Path, steps: list[int] | None = None) -> Iterator[LoadedRun]:
    """The listed checkpoints of a run (all by default; or the latest/best via `load_checkpoint`), building
    the model once: restoring is cheap, building is not. A fine-tune's checkpoint holds every weight, so its
    base run is never read."""
    import jax
    import numpy as np

    from ntjax.core.state import build_state

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    ckpts = _open_checkpoints(run_dir, cfg)
    try:
        steps = ckpts.steps() if steps is None else steps
        if not steps:
            raise NtjaxError(f"{run_dir / CHECKPOINTS_DIR} holds no complete checkpoint")
        _, graphdef, state, _ = build_state(cfg)
        abstract = jax.tree.map(np.zeros_like, state)
        for step in steps:
            restored, meta = ckpts.restore(step, abstract)
            yield LoadedRun(cfg=cfg, graphdef=graphdef, state=restored, step=int(step), meta=meta)
    finally:
        ckpts.close()


def load_run(run_dir: str | Path, step: int | None = None, which: str = "latest") -> LoadedRun:
    """A run's model and optimizer state from its checkpoint (`step`, else the latest or the best)."""
    run_dir = Path(run_dir)
    if step is None and which == "latest":
        return _load_newest_good(run_dir)
    if step is None:
        ckpts = _open_checkpoints(run_dir, read_config(run_dir))
        try:
            step = ckpts.best_step() if which == "best" else ckpts.latest_step()
        finally:
            ckpts.close()
        if step is None:
            raise NtjaxError(f"{run_dir / CHECKPOINTS_DIR} holds no complete checkpoint")
    return next(iter_checkpoints(run_dir, [step]))


def _load_newest_good(run_dir: Path) -> LoadedRun:
    """The newest checkpoint that restores; each corrupt newer one is named on stderr with the reason."""
    import sys

    import jax
    import numpy as np

    from ntjax.core.checkpoint import restore_newest_good
    from ntjax.core.state import build_state

    cfg = read_config(run_dir)
    ckpts = _open_checkpoints(run_dir, cfg)
    try:
        _, graphdef, state, _ = build_state(cfg)
        step, restored, meta, skipped = restore_newest_good(ckpts, jax.tree.map(np.zeros_like, state))
    finally:
        ckpts.close()
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)
    return LoadedRun(cfg=cfg, graphdef=graphdef, state=restored, step=int(step), meta=meta)


def load_checkpoint(path: str | Path, step: int | None = None, best: bool = False) -> LoadedRun:
    """A run folder's latest (or best, or `step`) checkpoint, or the checkpoint `path` names."""
    run_dir, named = locate_checkpoint(path)
    if named is not None and step is not None and named != step:
        raise NtjaxError(f"{path} is the checkpoint of step {named}, not {step}")
    return load_run(run_dir, named if named is not None else step, which="best" if best else "latest")


def load_base_params(cfg: config_lib.TrainConfig) -> Any:
    """The weights a fine-tune starts from: `cfg.init_from` (a run folder's latest checkpoint, or
    RUN/checkpoints/STEP), with any LoRA adapters of that run folded in, as an `nnx.State` of `nnx.Param`."""
    from flax import nnx

    from ntjax.core.lora import fold_lora

    base = load_checkpoint(cfg.init_from)
    if base.cfg.model != cfg.model or base.cfg.spec != cfg.spec:
        raise NtjaxError(f"--init-from {cfg.init_from} holds a different model ({base.cfg.preset}: "
                         f"{base.cfg.model}); fine-tune with the same preset/model settings")
    model = nnx.merge(base.graphdef, base.state.params, base.state.frozen)
    fold_lora(model)
    return nnx.state(model, nnx.Param)
