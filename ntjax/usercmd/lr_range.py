"""`ntjax lr-find --command`: the LR range test of the user's own model, in their own training loop.

The command runs as an `ntjax run` with `NTJAX_LR_RAMP` set; the bridge monitors (`ntjax.bridges.lr_ramp`)
set the optimizer's LR along the exponential ramp each step and end the run when the loss blows up. The
logged (train/lr, train/loss) pairs are then replayed through `ntjax.diagnostics.lr_range.run_range_test`, so the stop
rule, smoothing and suggestions are exactly those of `ntjax lr-find` on ntjax's own models.
"""
from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ntjax.errors import NtjaxError

MIN_POINTS = 10  # fewer logged steps than this cannot show a minimum


def ramp_env(min_lr: float, max_lr: float, steps: int, stop_factor: float, beta: float | None) -> dict[str, str]:
    from ntjax.bridges.lr_ramp import ENV as LR_RAMP_ENV  # a plain module: no torch/TF import
    spec = {"lr_min": min_lr, "lr_max": max_lr, "steps": steps, "stop_factor": stop_factor}
    if beta is not None:
        spec["beta"] = beta
    return {LR_RAMP_ENV: json.dumps(spec)}


def logged_curve(run_dir: Path, source: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(lrs, losses) at the steps that logged both, in step order."""
    from ntjax.readers import ReadError, read_run

    if source is None:
        raise NtjaxError(f"the command logged no metrics into {run_dir}; add the ntjax bridge monitor (see "
                         f"{run_dir}/console.log and `ntjax detect SCRIPT`)")
    try:
        table = read_run(Path(source).parent if source.endswith("metrics.jsonl") else source)
    except ReadError as e:
        raise NtjaxError(str(e)) from None
    lr, loss = table.get("train/lr"), table.get("train/loss")
    if lr is None or loss is None:
        raise NtjaxError(f"the run logged no {'train/lr' if lr is None else 'train/loss'}: the range test needs "
                         "the LR and the loss of every step (the ntjax bridge monitors log both)")
    steps = np.intersect1d(lr.step, loss.step)
    lrs = lr.value[np.searchsorted(lr.step, steps)]
    losses = loss.value[np.searchsorted(loss.step, steps)]
    return lrs, losses


def range_test_of_command(argv: list[str], run_dir: Path, *, min_lr: float, max_lr: float, steps: int,
                          stop_factor: float, beta: float | None, grace: float,
                          echo: Callable[[str], None] | None = None) -> tuple[Any, Any, Any]:
    """Run the command with the LR ramp, then the range-test math on what it logged.
    Returns (RangeTest, Suggestion, Outcome)."""
    from ntjax.diagnostics import lr_range as lr_find
    from ntjax.usercmd.launch import Launcher, update_run_file, write_run_file

    write_run_file(run_dir, argv)
    env = ramp_env(min_lr, max_lr, steps, stop_factor, beta)
    update_run_file(run_dir, lr_ramp=json.loads(next(iter(env.values()))))
    # No live warnings: the ramp blows the loss up on purpose.
    outcome = Launcher(argv, run_dir, grace=grace, echo=echo, env=env, warn=lambda s: None).run()
    update_run_file(run_dir, exit_code=outcome.exit_code, stopped=outcome.stopped,
                    metrics_source=outcome.metrics_source, last_step=outcome.last_step)
    if outcome.stopped == "no_metrics" or outcome.failed_at_start:
        raise NtjaxError(outcome.message.splitlines()[0] + f" (see {run_dir}/console.log)")
    lrs, losses = logged_curve(run_dir, outcome.metrics_source)
    if len(lrs) < MIN_POINTS:
        raise NtjaxError(f"only {len(lrs)} steps were logged (need {MIN_POINTS}); the command ended early "
                         f"(exit {outcome.exit_code}), see {run_dir}/console.log")
    ramp = lr_find.exponential_lrs(min_lr, max_lr, steps)
    if not np.allclose(lrs[:3], ramp[:3], rtol=1e-3):
        raise NtjaxError(f"the logged LRs ({', '.join(f'{x:.3g}' for x in lrs[:3])}...) do not follow the ramp "
                         f"({', '.join(f'{x:.3g}' for x in ramp[:3])}...): the script's optimizer is not the one "
                         "its ntjax monitor drives, so the result would be wrong")
    # Replay the logged steps through the same stop rule and smoothing as `ntjax lr-find`.
    test = lr_find.run_range_test(lambda i, lr: float(losses[i]), lrs, beta=beta, stop_factor=stop_factor)
    try:
        sug = lr_find.suggest(test)
    except ValueError as e:
        raise NtjaxError(str(e)) from None
    return test, sug, outcome


def run_dir_for(out: Path) -> Path:
    return out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"


def command_argv(command: str, run_dir: Path) -> list[str]:
    """The command's argv; `{run_dir}` in it is filled in."""
    from ntjax.usercmd.launch import fill_template, placeholders

    if placeholders(command) - {"run_dir"}:
        raise NtjaxError("lr-find --command takes only the {run_dir} placeholder (the LR is set by the ramp)")
    return fill_template(command, {"run_dir": str(run_dir)}) if "{" in command else shlex.split(command)
