"""Running a sweep: recover what a previous run left, then run trials in this process (one worker) or in
N worker processes sharing the storage, printing each trial as it finishes.

`python -m ntjax.sweep.runner --out DIR --storage URL --study-name NAME ...` is one worker process; the
coordinator starts N of them (and a user can start more on other machines against the same database).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from ntjax.sweep import study as study_lib
from ntjax.sweep.secret_url import ENV_VAR, has_password
from ntjax.sweep.study import Budget, Recipe
from ntjax.sweep.trials import describe


def _printer(metric: str, say: Callable[[str], None]) -> Callable:
    def callback(study: optuna.Study, t: FrozenTrial) -> None:
        if not t.user_attrs.get("skipped"):
            say(describe(t, metric))
    return callback


def run_sweep(asked: Recipe | None, out_dir: Path, storage_url: str, study_name: str, *, max_runs: int,
              max_time: float | None, workers: int, heartbeat_s: int = study_lib.HEARTBEAT_S,
              say: Callable[[str], None] = print) -> tuple[optuna.Study, Recipe, list[int]]:
    """Open (or continue) the study and run it to its budget. Returns the study, its recipe and the
    numbers of trials found lost from an earlier run (now FAIL and queued again)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = study_lib.open_storage(storage_url, heartbeat_s)
    study, recipe = study_lib.open_study(asked, storage, study_name, max_runs=max_runs)
    from ntjax.sweep.preflight import validate_before_first_trial

    if not recipe.command:  # a command sweep is checked by its own first trial (below), not by a preset
        validate_before_first_trial(recipe)
    lost = study_lib.recover_lost_trials(study, heartbeat_s)
    if lost:
        say(f"trial(s) {', '.join(map(str, lost))} were lost with their worker: marked FAIL, queued again")
    deadline = time.time() + max_time if max_time else None
    budget = Budget(max_runs, deadline)
    if recipe.command:  # a user's command: check it runs (one trial, here) before spending workers on it
        from ntjax.sweep.command import validate_first_trial
        validate_first_trial(study, recipe, out_dir, budget, say)
    if workers <= 1:
        objective = study_lib.make_objective(recipe, out_dir, budget)
        study_lib.run_worker(study, objective, budget, [_printer(recipe.metric, say)])
    else:
        _run_processes(study, recipe, out_dir, storage_url, study_name, budget, workers, heartbeat_s, say)
    study_lib.check_started(study)
    return study, recipe, lost


def worker_command(out_dir: Path, storage_url: str, study_name: str, budget: Budget, index: int,
                   heartbeat_s: int) -> list[str]:
    # A URL with a password goes by environment (see `worker_env`): argv is visible to every user.
    storage = [] if has_password(storage_url) else ["--storage", storage_url]
    cmd = [sys.executable, "-m", "ntjax.sweep.runner", "--out", str(out_dir), *storage,
           "--study-name", study_name, "--max-runs", str(budget.max_runs), "--worker", str(index),
           "--heartbeat", str(heartbeat_s)]
    return cmd + (["--deadline", repr(budget.deadline)] if budget.deadline else [])


def worker_env(workers: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one of `workers` worker processes sharing one accelerator: each may preallocate
    only 0.9 / workers of its memory (JAX's default is 75 % each, so a second worker would run out). A
    memory setting the user made (`XLA_PYTHON_CLIENT_MEM_FRACTION`, `XLA_PYTHON_CLIENT_PREALLOCATE`,
    `XLA_PYTHON_CLIENT_ALLOCATOR`) is kept as it is."""
    env = dict(os.environ if environ is None else environ)
    mine = ("XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_ALLOCATOR")
    if workers > 1 and not any(k in env for k in mine):
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / workers:.3f}"
    return env


def _run_processes(study: optuna.Study, recipe: Recipe, out_dir: Path, storage_url: str, study_name: str,
                   budget: Budget, workers: int, heartbeat_s: int, say: Callable[[str], None]) -> None:
    """Start the worker processes (their output in OUT/worker_N.log), report trials as they finish, and
    stop the workers if this process is interrupted."""
    procs = []
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    try:
        for i in range(workers):
            log = open(out_dir / f"worker_{i}.log", "ab")
            procs.append(subprocess.Popen(worker_command(out_dir, storage_url, study_name, budget, i, heartbeat_s),
                                          stdout=log, stderr=subprocess.STDOUT,
                                          env={**worker_env(workers), ENV_VAR: storage_url}))
            log.close()
        while procs:
            time.sleep(1.0)
            for t in study.get_trials(deepcopy=False):
                if t.state.is_finished() and t.number not in seen:
                    seen.add(t.number)
                    if not t.user_attrs.get("skipped"):
                        say(describe(t, recipe.metric))
            procs = [p for p in procs if p.poll() is None]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """One worker process: run trials of a stored sweep until its budget is spent."""
    p = argparse.ArgumentParser(prog="python -m ntjax.sweep.runner", description=main.__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--storage", default=os.environ.get(ENV_VAR),
                   help=f"Optuna storage URL (default: ${ENV_VAR}, how a URL with a password is passed)")
    p.add_argument("--study-name", required=True)
    p.add_argument("--max-runs", type=int, required=True)
    p.add_argument("--deadline", type=float)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--heartbeat", type=int, default=study_lib.HEARTBEAT_S)
    args = p.parse_args(argv)
    if not args.storage:
        p.error(f"--storage URL (or ${ENV_VAR}) is required")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_lib.open_storage(args.storage, args.heartbeat)
    study, recipe = study_lib.open_study(None, storage, args.study_name, worker=args.worker, max_runs=args.max_runs)
    budget = Budget(args.max_runs, args.deadline)
    objective = study_lib.make_objective(recipe, Path(args.out), budget)
    study_lib.run_worker(study, objective, budget, [_printer(recipe.metric, lambda s: print(s, flush=True))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
