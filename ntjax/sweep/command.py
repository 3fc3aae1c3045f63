"""Sweep trials that run the user's own command: `ntjax sweep --command 'python train.py --lr {lr}
--out {run_dir}'`.

Every trial is an `ntjax run` of the filled-in template into OUT/trial_NNNN (its console.log, run.json,
report.md). The objective is the last value of any metric the readers find in the trial's logs
(`--metric eval/accuracy`, `--direction`). Intermediate values go to the pruner while the command runs;
a pruned trial's process group is stopped there. A command that fails before logging anything is marked
`failed_at_start` and does not use up the budget.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from ntjax.errors import NtjaxError
from ntjax.sweep import space as space_lib

BUILTIN_PLACEHOLDERS = ("run_dir", "trial", "seed")


def validate_command_recipe(r):
    """The template's placeholders are searched parameters or {run_dir}, {trial}, {seed}."""
    from ntjax.usercmd.launch import placeholders

    if not r.params:
        raise NtjaxError("nothing to search: give at least one --param NAME=SPEC (e.g. lr=log:1e-4:1e-2)")
    if r.goal not in (None, "minimize", "maximize"):
        raise NtjaxError(f"--direction must be minimize or maximize (got {r.goal!r})")
    params = r.space()
    names = {p.name for p in params}
    used = placeholders(r.command)
    unknown = sorted(used - names - set(BUILTIN_PLACEHOLDERS))
    if unknown:
        raise NtjaxError(f"--command uses {', '.join('{' + u + '}' for u in unknown)}, which is neither a "
                         f"--param nor one of {{run_dir}}, {{trial}}, {{seed}}")
    unused = sorted(names - used)
    if unused:
        raise NtjaxError(f"--command never uses {', '.join('{' + u + '}' for u in unused)}: every searched "
                         "parameter must appear in the command")
    if r.strategy == "grid":
        space_lib.grid(params, r.grid_points)
    return r


def final_value(metrics_source: str | None, metric: str) -> tuple[float | None, list[str]]:
    """The last logged value of `metric` in the trial's logs, and the metric names that were logged."""
    from ntjax.diagnostics.runtable import normalise_name
    from ntjax.readers import ReadError, read_run

    if metrics_source is None:
        return None, []
    path = Path(metrics_source)
    try:
        table = read_run(path.parent if path.name == "metrics.jsonl" else path)
    except ReadError:
        return None, []
    s = table.get(metric) or table.get(normalise_name(metric))
    if s is None or not len(s):
        return None, table.names()
    return float(s.value[-1]), table.names()


def make_command_objective(recipe, out_dir: Path, budget) -> Callable[[optuna.Trial], float]:
    """Run one trial of the user's command into `out_dir/trial_NNNN`; its value is `recipe.metric`'s last."""
    from ntjax.diagnostics.runtable import normalise_name
    from ntjax.sweep.trials import Skipped, trial_dir, worst
    from ntjax.usercmd.launch import Launcher, Stop, fill_template, update_run_file, write_run_file
    from ntjax.usercmd.report import write_user_report

    params_space = recipe.space()
    metric = normalise_name(recipe.metric) if "/" not in recipe.metric else recipe.metric

    def objective(trial: optuna.Trial) -> float:
        if budget.used(trial.study.get_trials(deepcopy=False), before=trial.number) >= budget.max_runs:
            trial.set_user_attr("skipped", "budget reached")
            raise Skipped()
        started = time.time()
        params = {p.name: space_lib.suggest(trial, p) for p in params_space}
        run_dir = trial_dir(out_dir, trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        values = {**params, "run_dir": str(run_dir), "trial": trial.number, "seed": recipe.seed + trial.number}
        argv = fill_template(recipe.command, values)
        trial.set_user_attr("command", " ".join(argv))
        write_run_file(run_dir, argv, template=recipe.command, values=values)

        def on_eval(step: int, m: dict) -> None:
            value = m.get(metric)
            if value is None or not math.isfinite(value):
                return
            trial.report(value, step)
            if trial.should_prune():
                raise Stop(f"{metric} {value:.4g} at step {step} is worse than the median: pruned")

        outcome = Launcher(argv, run_dir, grace=recipe.grace, on_eval=on_eval, warn=lambda s: None).run()
        trial.set_user_attr("seconds", time.time() - started)
        write_user_report(run_dir, outcome, argv, plots_too=False)  # plots: `ntjax curves` on demand
        update_run_file(run_dir, exit_code=outcome.exit_code, stopped=outcome.stopped,
                        metrics_source=outcome.metrics_source, last_step=outcome.last_step)
        if outcome.stopped == "callback":
            raise optuna.TrialPruned(outcome.message)
        if outcome.failed_at_start:
            trial.set_user_attr("failed_at_start", True)
            trial.set_user_attr("fail_reason", outcome.message.splitlines()[0][:300])
            raise RuntimeError(outcome.message)
        if outcome.exit_code != 0 and outcome.stopped is None:
            trial.set_user_attr("fail_reason", f"the command exited with status {outcome.exit_code} "
                                               f"(see {run_dir}/console.log)")
            raise RuntimeError(trial.user_attrs["fail_reason"])
        value, names = final_value(outcome.metrics_source, metric)
        if value is None:
            trial.set_user_attr("fail_reason", f"{metric} was never logged (logged: {', '.join(names) or 'nothing'})")
            raise RuntimeError(trial.user_attrs["fail_reason"])
        if not math.isfinite(value):
            trial.set_user_attr("diverged", f"non-finite {metric} by step {outcome.last_step}")
            return worst(recipe.direction)
        return value

    return objective


def validate_first_trial(study, recipe, out_dir: Path, budget, say: Callable[[str], None]) -> None:
    """Run one trial here before any worker starts, when no trial of the sweep has produced metrics yet:
    a command that fails at once is reported (one line, exit 2) with the budget untouched."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or "fail_reason" in t.user_attrs
            and not t.user_attrs.get("failed_at_start")]
    if done or not budget.allows_another(study):
        return
    objective = make_command_objective(recipe, out_dir, budget)
    finished = []
    study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[lambda _s, t: finished.append(t)])
    t = finished[-1] if finished else None
    if t is not None and t.user_attrs.get("failed_at_start"):
        run_dir = t.user_attrs.get("run_dir")
        raise NtjaxError(f"the command failed at its first trial, before logging anything "
                         f"({t.user_attrs.get('fail_reason')}); see {run_dir}/console.log. No budget was used.")
    if t is not None:
        from ntjax.sweep.trials import describe
        say(describe(t, recipe.metric))
