"""Checkpoints with orbax: periodic, atomic saves of the whole train state plus a small JSON of trainer
state, keeping the last N and the best by eval loss.

Orbax writes each step into a temporary folder and renames it when complete, so a run killed mid-save
leaves the previous checkpoint as the latest usable one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from ntjax.core.faults import quiet_closed_loop_callbacks, quiet_disk_full_logs
from ntjax.errors import NtjaxError

EVAL_METRIC = "eval/loss"


def _best_metric(metrics: dict[str, Any]) -> float:
    return float(metrics[EVAL_METRIC])


class Checkpoints:
    """The run folder's `checkpoints/`: save, list and restore steps."""

    def __init__(self, directory: str | Path, keep: int = 3, async_save: bool = True, read_only: bool = False):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            # Keep the last `keep` and the best by eval loss (lowest); checkpoints saved without an eval
            # metric are judged by recency alone.
            preservation_policy=policies.AnyPreservationPolicy([
                policies.LatestN(n=keep),
                policies.BestN(get_metric_fn=_best_metric, reverse=True, n=1,
                               keep_checkpoints_without_metrics=False),
            ]),
            best_fn=_best_metric, best_mode="min", keep_checkpoints_without_metrics=True,
            enable_async_checkpointing=async_save, create=not read_only, read_only=read_only,
            cleanup_tmp_directories=not read_only,  # a save a kill interrupted leaves a temp folder
        )
        quiet_disk_full_logs()  # a full disk is reported once by the CLI, not by every orbax thread
        quiet_closed_loop_callbacks()  # ...nor by tensorstore callbacks reaching orbax's closed loop
        self._options = options
        self.bad_steps: list[int] = []  # found unreadable by `restore_newest_good`
        self._mgr = ocp.CheckpointManager(self.directory, options=options)

    @staticmethod
    def has_any(directory: str | Path) -> bool:
        """Whether `directory` holds a finished checkpoint (orbax names each one by its step number)."""
        d = Path(directory)
        return d.is_dir() and any(p.is_dir() and p.name.isdigit() for p in d.iterdir())

    def save(self, step: int, state: Any, meta: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        """Save asynchronously (the next steps run while it writes); `wait()` before reading it back."""
        self._mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                      meta=ocp.args.JsonSave(meta)),
                       metrics=metrics, force=True)

    def wait(self) -> None:
        self._mgr.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def best_step(self) -> int | None:
        return self._mgr.best_step()

    def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """The state saved at `step`, laid out like `target` (an abstract or concrete state), and its meta."""
        if step not in self._mgr.all_steps():
            raise NtjaxError(f"no checkpoint at step {step} in {self.directory} (have: {self.steps() or 'none'})")
        out = self._mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                               meta=ocp.args.JsonRestore()))
        return out["state"], dict(out["meta"])

    def quarantine(self) -> list[Path]:
        """Move the unreadable checkpoints out of the way (to `<dir>.corrupt/<step>`, kept for inspection)
        so that saving that step again does not collide with them; returns where they went."""
        import shutil

        self._mgr.wait_until_finished()
        moved = []
        for step in self.bad_steps:
            src = self.directory / str(step)
            if src.is_dir():
                dst = self.directory.with_name(self.directory.name + ".corrupt") / f"{step}-{int(time.time())}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), str(dst))
                moved.append(dst)
        self.bad_steps = []
        self._mgr.close()
        self._mgr = ocp.CheckpointManager(self.directory, options=self._options)
        return moved

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()


def restore_newest_good(ckpts: Checkpoints, target: Any, steps: list[int] | None = None
                        ) -> tuple[int, Any, dict[str, Any], list[str]]:
    """(step, state, meta, skipped) from the newest of `steps` (default: all) that restores; one line per
    corrupt checkpoint passed over, saying which and why. Raises NtjaxError when none restores."""
    steps = sorted(ckpts.steps() if steps is None else steps, reverse=True)
    skipped: list[str] = []
    for step in steps:
        try:
            state, meta = ckpts.restore(step, target)
        except NtjaxError:
            raise
        except Exception as e:  # a torn or tampered checkpoint: orbax/tensorstore raise many kinds
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
            skipped.append(f"checkpoint {step} in {ckpts.directory} is unreadable ({why}); skipped it")
            ckpts.bad_steps.append(step)
            continue
        if skipped:
            skipped.append(f"using checkpoint {step}, the newest readable one")
        return step, state, meta, skipped
    if not steps:
        raise NtjaxError(f"{ckpts.directory} holds no complete checkpoint")
    raise NtjaxError(f"no checkpoint in {ckpts.directory} is readable: {skipped[0]}")
