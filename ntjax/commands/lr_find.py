"""`ntjax lr-find`: the learning-rate range test from the current state — a fresh init of a preset, or
the latest checkpoint of a run folder — with the LR rising exponentially, an EMA-smoothed loss, a stop
once it exceeds 4x its minimum, and two suggested peak LRs (steepest descent, and minimum/10, which we
recommend; see ntjax/diagnostics/tree_stats/tree_stats/tree_stats/tree_stats/lr_range.py for why).

The run is never altered: the test trains a copy of the state and nothing is written back to the run
folder (its checkpoints and logs stay byte-identical). The plot goes to --out.

Examples:
  ntjax lr-find --preset tiny
  ntjax lr-find --run runs/default --steps 150 --json
  ntjax lr-find --command 'python train.py --epochs 1' --min-lr 1e-5 --max-lr 10
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ntjax.cli import Result, add_json_flag, add_progress_flag, add_trust_flags
from ntjax.diagnostics.lr_range import DEFAULT_MAX_LR, DEFAULT_STEPS, DEFAULT_STOP_FACTOR

DEFAULT_MIN_LR = 1e-6  # below this AdamW barely moves a transformer: steps spent there are wasted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lr-find", help="learning-rate range test: suggest a peak LR",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="test a fresh init of this preset (tiny | default | small; default: default)")
    src.add_argument("--run", dest="run_dir", metavar="DIR", help="test from this run folder's latest checkpoint")
    src.add_argument("--command", dest="user_command", metavar="CMD",
                     help="test your own training command (e.g. 'python train.py'): its ntjax bridge monitor "
                          "drives the LR ramp inside your loop and ends the run when the loss blows up")
    p.add_argument("--grace", type=float, default=120.0,
                   help="with --command: seconds to wait for the first logged step (default 120)")
    p.add_argument("--spec", help="a Python spec file (model, loss, data) as for `ntjax train` (with --preset)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"test steps (default {DEFAULT_STEPS})")
    p.add_argument("--min-lr", type=float, default=DEFAULT_MIN_LR, help=f"first LR (default {DEFAULT_MIN_LR:g})")
    p.add_argument("--max-lr", type=float, default=DEFAULT_MAX_LR, help=f"last LR (default {DEFAULT_MAX_LR:g})")
    p.add_argument("--stop-factor", type=float, default=DEFAULT_STOP_FACTOR,
                   help="stop when the smoothed loss exceeds this multiple of its minimum (default 4)")
    p.add_argument("--beta", type=float, help="EMA factor (default: averages ~5%% of the steps)")
    p.add_argument("--out", help="folder for the plot and lr_find.json (default runs/lr-find)")
    add_progress_flag(p)
    add_trust_flags(p, spec=False)
    add_json_flag(p)
    p.set_defaults(run=run)


def range_test_from_state(cfg, graphdef, state, task, lrs, *, data_start: int = 0, beta: float | None = None,
                          stop_factor: float = DEFAULT_STOP_FACTOR, report=None):
    """Run the range test on a copy of `state` (a TrainState): the caller's state is neither changed nor
    donated. The optimizer is the run's own (same clipping, decay and state) with the LR replaced by the
    exponential ramp, counted from the state's current step."""
    import jax
    import jax.numpy as jnp

    from ntjax.core.optimizer import make_optimizer
    from ntjax.core.step import make_train_step
    from ntjax.diagnostics.lr_range import run_range_test

    start = int(state.step)
    table = jnp.asarray(lrs, jnp.float32)

    def schedule(count):
        return table[jnp.clip(count - start, 0, table.shape[0] - 1)]

    tx = make_optimizer(cfg, schedule, state.params)
    step_fn = make_train_step(graphdef, tx, schedule, loss_fn=task.loss_fn, accum_steps=cfg.accum_steps,
                              per_layer=False)
    work = [jax.tree.map(lambda x: jnp.array(x, copy=True), state)]  # the step donates its input

    def step(i: int, lr: float) -> float:
        work[0], metrics = step_fn(work[0], task.train_batch(data_start + i))
        loss = float(metrics["train/loss"])
        if report is not None:
            report(i, lr, loss)
        return loss

    return run_range_test(step, lrs, beta=beta, stop_factor=stop_factor)


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, int, str]:
    """(cfg, graphdef, state, task, first data index, what was tested) for --preset or --run."""
    import dataclasses

    from ntjax.core import config as config_lib
    if args.run_dir:
        from ntjax.core.runfolder import load_run
        from ntjax.core.task import build_task

        loaded = load_run(args.run_dir)
        start = int(loaded.meta.get("data_offset", 0)) + loaded.step
        return (loaded.cfg, loaded.graphdef, loaded.state, build_task(loaded.cfg), start,
                f"{args.run_dir} at step {loaded.step}")
    from ntjax.core.state import build_state

    cfg = config_lib.preset(args.preset or "default")
    if args.spec:
        cfg = dataclasses.replace(cfg, spec=args.spec)
    cfg = config_lib.resolve(cfg)
    task, graphdef, state, _ = build_state(cfg)
    return cfg, graphdef, state, task, 0, f"a fresh init of preset {cfg.preset}"


def suggestion_text(source: str, test, sug, min_lr: float) -> str:
    """The human summary of a range test and its suggestions (the preset and the command paths alike)."""
    steep = f"{sug.steepest:.3g}" if sug.steepest is not None else "n/a (too few points before the minimum)"
    return "\n".join([f"LR range test of {source}: {len(test.lrs)} steps from {min_lr:g}, stopped: {test.stop_reason}",
                      f"  loss minimum at lr {sug.min_loss_lr:.3g}", f"  steepest descent:  {steep}",
                      f"  minimum / 10:      {sug.min_over_10:.3g}   <- recommended", f"  why: {sug.why}"])


def _progress(args: argparse.Namespace, total: int):
    """A per-step hook printing `progress: lr-find ...` lines on the cadence (None when not wanted)."""
    import time

    from ntjax.viz.progress_lines import Cadence, duration, emit, line, line_stream, wants_lines

    if not wants_lines(args.progress_every):
        return None
    cadence, stream, t0 = Cadence(args.progress_every), line_stream(args.json), time.monotonic()

    def report(i: int, lr: float, loss: float) -> None:
        if cadence.due():
            elapsed = time.monotonic() - t0
            eta = elapsed / (i + 1) * (total - i - 1)
            emit(line("lr-find", {"step": f"{i + 1}/{total}", "lr": f"{lr:.2e}", "loss": f"{loss:.4f}",
                                  "elapsed": duration(elapsed), "eta": duration(eta)}), stream)
    return report


def run(args: argparse.Namespace) -> Result:

    from ntjax.cli import dumps
    from ntjax.diagnostics import lr_range as lr_find
    from ntjax.errors import NtjaxError
    from ntjax.viz.lr_range import plot_range_test

    if not (0 < args.min_lr < args.max_lr):
        raise NtjaxError(f"need 0 < --min-lr < --max-lr (got {args.min_lr:g}, {args.max_lr:g})")
    if args.steps < 10:
        raise NtjaxError(f"--steps must be at least 10 (got {args.steps})")
    if args.stop_factor <= 1:
        raise NtjaxError(f"--stop-factor must exceed 1 (got {args.stop_factor:g})")
    if args.beta is not None and not 0 <= args.beta < 1:
        raise NtjaxError(f"--beta must lie in [0, 1) (got {args.beta:g})")
    if args.user_command:
        return run_command(args)
    cfg, graphdef, state, task, start, source = _load(args)
    lrs = lr_find.exponential_lrs(args.min_lr, args.max_lr, args.steps)
    test = range_test_from_state(cfg, graphdef, state, task, lrs, data_start=start, beta=args.beta,
                                 stop_factor=args.stop_factor, report=_progress(args, len(lrs)))
    try:
        sug = lr_find.suggest(test)
    except ValueError as e:
        raise NtjaxError(str(e)) from None
    out = Path(args.out or "runs/lr-find")
    plot = plot_range_test(test, sug, out / "lr_find.png", title=f"LR range test: {source}")
    data = {"source": source, "optimizer": cfg.optimizer, "configured_lr": cfg.lr, **lr_find.to_dict(test, sug),
            "plot": str(plot)}
    (out / "lr_find.json").write_text(dumps(data) + "\n")

    def human() -> None:
        print(suggestion_text(source, test, sug, args.min_lr))
        if cfg.lr:
            print(f"  (the config's peak LR is {cfg.lr:.3g})")
        print(f"  plot: {plot}")
        print(f"  next: ntjax train --lr {sug.recommended:.2g} ...  or sweep around it: "
              f"ntjax sweep --param lr=log:{sug.recommended / 3:.1g}:{sug.recommended * 3:.1g}")

    return Result(data=data, human=human)


def run_command(args: argparse.Namespace) -> Result:
    """The range test of the user's own command (see ntjax/lr_command.py)."""
    import sys

    from ntjax.cli import dumps
    from ntjax.diagnostics import lr_range as lr_find
    from ntjax.usercmd.lr_range import command_argv, range_test_of_command, run_dir_for

    out = Path(args.out or "runs/lr-find")
    run_dir = run_dir_for(out)
    argv = command_argv(args.user_command, run_dir)
    echo = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    test, sug, outcome = range_test_of_command(argv, run_dir, min_lr=args.min_lr, max_lr=args.max_lr,
                                               steps=args.steps, stop_factor=args.stop_factor, beta=args.beta,
                                               grace=args.grace, echo=echo)
    source = f"the command `{args.user_command}`"
    from ntjax.viz.lr_range import plot_range_test

    plot = plot_range_test(test, sug, out / "lr_find.png", title="LR range test: your command")
    data = {"source": source, "run_dir": str(run_dir), **lr_find.to_dict(test, sug), "plot": str(plot)}
    (out / "lr_find.json").write_text(dumps(data) + "\n")

    def human() -> None:
        print(suggestion_text(source, test, sug, args.min_lr))
        print(f"  plot: {plot}; the run: {run_dir}")
        print(f"  next: run your script with LR {sug.recommended:.2g}, or sweep around it: ntjax sweep --command "
              f"'... --lr {{lr}}' --param lr=log:{sug.recommended / 3:.1g}:{sug.recommended * 3:.1g}")

    return Result(data=data, human=human)
