"""The Optuna study behind `ntjax sweep`: its recipe, storage, sampler and pruner, the objective that
trains one trial into its own run folder, and the worker loop that keeps to the budget.

Workers are processes sharing one storage (a SQLite file in the sweep folder by default, or any database
URL Optuna accepts), so workers on other machines can join the same study. Each running trial records a
heartbeat; a trial whose worker was killed stops beating and is marked FAIL (Optuna's
`fail_stale_trials`), then retried with the same parameters when the sweep is restarted.
"""
from __future__ import annotations

import dataclasses
import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ntjax.core import config as config_lib
from ntjax.core import runfolder as rf
from ntjax.errors import NtjaxError
from ntjax.sweep import space as space_lib
from ntjax.sweep.trials import Skipped, trial_dir, worst

STRATEGIES = ("grid", "random", "bayes")
PRUNERS = ("median", "hyperband", "none")
METRICS = {"eval/loss": "minimize", "eval/ppl": "minimize", "eval/accuracy": "maximize"}
RECIPE_ATTR = "ntjax_recipe"
DB_FILE = "study.db"
HEARTBEAT_S = 5  # a running trial writes a heartbeat this often ...
GRACE_FACTOR = 12  # ... and is declared lost after this many missed beats. 3 (15 s) and then 6 (30 s)
# each failed a live trial on a loaded 2-core machine: a heartbeat write waits for the SQLite lock (up to the
# 60 s connect timeout below), so a busy machine can delay one by tens of seconds. 60 s of silence is a dead
# worker; a killed worker's trial is requeued a minute later, which a sweep of minutes-long trials can afford.
@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a sweep searches and how; stored in the study so that every worker and every restart agrees."""

    params: tuple[str, ...]  # NAME=SPEC texts
    strategy: str = "bayes"
    grid_points: int | None = None
    metric: str = "eval/loss"
    base: dict = dataclasses.field(default_factory=dict)  # the TrainConfig every trial starts from
    pruner: str = "median"
    prune_startup: int = 3
    seed: int = 0
    command: str | None = None  # a user's command template: trials run it (`ntjax.sweep.command`)
    goal: str | None = None  # minimize | maximize, for a metric ntjax does not know the direction of
    grace: float = 120.0  # seconds a command trial gets to log its first metrics

    @property
    def direction(self) -> str:
        return self.goal or METRICS.get(self.metric, "minimize")

    def space(self) -> list[space_lib.Param]:
        return space_lib.parse_space(self.params)

    def base_config(self) -> config_lib.TrainConfig:
        return config_lib.from_dict(self.base)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "params": list(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        return cls(**{**d, "params": tuple(d["params"])})


def validate_recipe(r: Recipe) -> Recipe:
    if r.strategy not in STRATEGIES:
        raise NtjaxError(f"unknown strategy {r.strategy!r}; choose from {', '.join(STRATEGIES)}")
    if r.pruner not in PRUNERS:
        raise NtjaxError(f"unknown pruner {r.pruner!r}; choose from {', '.join(PRUNERS)}")
    if r.command:
        from ntjax.sweep.command import validate_command_recipe
        return validate_command_recipe(r)
    if r.metric not in METRICS:
        raise NtjaxError(f"--metric must be one of {', '.join(METRICS)} (got {r.metric!r})")
    if not r.params:
        raise NtjaxError("nothing to search: give at least one --param NAME=SPEC (e.g. lr=log:1e-4:1e-2)")
    params = r.space()
    if r.strategy == "grid":
        space_lib.grid(params, r.grid_points)
    config_lib.resolve(space_lib.apply_params(r.base_config(), {p.name: _any_value(p) for p in params}))
    return r


def _any_value(p: space_lib.Param) -> Any:
    return p.choices[0] if p.kind == "choice" else p.low


def default_storage(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / DB_FILE).absolute()}"


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so that a killed worker's trial is marked FAIL."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several processes write one file: wait for the lock instead of failing
        kwargs = {"connect_args": {"timeout": 60}}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats are stable enough
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s,
                                          grace_period=GRACE_FACTOR * heartbeat_s)
    except Exception as e:  # a bad URL or an unreachable database: say so in one line
        raise NtjaxError(f"cannot open Optuna storage {url}: {type(e).__name__}: {e}") from None


def make_sampler(recipe: Recipe, seed: int, max_runs: int) -> optuna.samplers.BaseSampler:
    """Grid (exhaustive, shuffled), random, or TPE with a short random start sized to the budget
    (Optuna's default of 10 random trials would leave an 8-trial sweep with no Bayesian step at all)."""
    if recipe.strategy == "grid":
        return optuna.samplers.GridSampler(space_lib.grid(recipe.space(), recipe.grid_points), seed=seed)
    if recipe.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, max_runs // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                      constant_liar=True)


def make_pruner(recipe: Recipe) -> optuna.pruners.BasePruner:
    """Median stopping by default (see docs/sweep.md for why not Hyperband at these budgets)."""
    steps = int(recipe.base.get("steps", 1))
    if recipe.pruner == "median":
        # No decision before a quarter of the run: early losses favour large LRs (short-horizon bias).
        return optuna.pruners.MedianPruner(n_startup_trials=recipe.prune_startup, n_warmup_steps=steps // 4)
    if recipe.pruner == "hyperband":
        eval_every = int(recipe.base.get("eval_every", 1))
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=steps or "auto",
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(recipe: Recipe | None, storage: optuna.storages.BaseStorage, name: str, *, worker: int = 0,
               max_runs: int = 8) -> tuple[optuna.Study, Recipe]:
    """Create the study, or load it and check it searches what `recipe` asks (None: use the stored one).

    The sampler's seed moves with the worker index and the trials already run, so parallel workers and
    restarts draw new points instead of repeating the first worker's sequence.
    """
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    stored = existing.user_attrs.get(RECIPE_ATTR) if existing is not None else None
    if recipe is None:
        if stored is None:
            raise NtjaxError(f"no sweep named {name!r} in this storage; give --param to start one")
        recipe = Recipe.from_dict(stored)
    elif stored is not None and Recipe.from_dict(stored) != recipe:
        old = Recipe.from_dict(stored)
        diff = [f.name for f in dataclasses.fields(Recipe) if getattr(old, f.name) != getattr(recipe, f.name)]
        raise NtjaxError(f"sweep {name!r} was started with different settings ({', '.join(diff)}); continue it "
                         "with the same flags (or none), or choose another --out / --study-name")
    n_before = len(existing.get_trials(deepcopy=False)) if existing is not None else 0
    seed = recipe.seed + 1000 * n_before + 7919 * worker
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction=recipe.direction,
                                sampler=make_sampler(recipe, seed, max_runs), pruner=make_pruner(recipe))
    if stored is None:
        study.set_user_attr(RECIPE_ATTR, recipe.to_dict())
    return study, recipe


# --- budget -----------------------------------------------------------------------------------------

def counts_toward_budget(t: FrozenTrial) -> bool:
    """Trials that used (or are using) a slot: finished ones, running ones, and failures with a known
    reason. A trial lost with its worker (FAIL, no reason) does not count: it is retried instead; nor
    does a queued one (WAITING) until a worker picks it up."""
    if t.user_attrs.get("skipped") or t.user_attrs.get("failed_at_start") or t.state == TrialState.WAITING:
        return False
    if t.user_attrs.get("failed_at_start"):  # the command broke before training: no run was spent
        return False
    return t.state != TrialState.FAIL or "fail_reason" in t.user_attrs


@dataclasses.dataclass(frozen=True)
class Budget:
    max_runs: int
    deadline: float | None = None  # unix time after which no new trial starts

    def used(self, trials: list[FrozenTrial], before: int | None = None) -> int:
        return sum(counts_toward_budget(t) for t in trials if before is None or t.number < before)

    def allows_another(self, study: optuna.Study) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return False
        return self.used(study.get_trials(deepcopy=False)) < self.max_runs


# --- restart --------------------------------------------------------------------------------------

def recover_lost_trials(study: optuna.Study, heartbeat_s: int = HEARTBEAT_S, wait: bool = True) -> list[int]:
    """Mark trials whose worker died as FAIL (waiting out the heartbeat grace period if some look
    running), then queue each lost trial's parameters again, once. Returns the trials queued again now."""
    if wait and any(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
        time.sleep(GRACE_FACTOR * heartbeat_s + 1)  # a live worker elsewhere keeps beating and keeps its trial
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    lost = [t for t in trials if t.state == TrialState.FAIL and not counts_toward_budget(t)
            and not t.user_attrs.get("skipped") and not t.user_attrs.get("failed_at_start") and t.params]
    fresh = [t for t in lost if t.number not in retried]
    for t in fresh:
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return [t.number for t in fresh]


# --- the objective ------------------------------------------------------------------------------

def make_objective(recipe: Recipe, out_dir: Path, budget: Budget) -> Callable[[optuna.Trial], float]:
    """Train one trial into `out_dir/trial_NNNN` and return its final `recipe.metric`.

    The eval metric is reported to the pruner at every eval; a pruned trial stops there. A diverged trial
    completes with the worst value (inf for a loss) and a reason, so the sampler learns to avoid its
    region; any other failure is recorded as FAIL with its reason. Neither stops the sweep.
    """
    if recipe.command:
        from ntjax.sweep.command import make_command_objective
        return make_command_objective(recipe, out_dir, budget)
    from ntjax.trainer import train

    params_space = recipe.space()
    base = recipe.base_config()

    def objective(trial: optuna.Trial) -> float:
        if budget.used(trial.study.get_trials(deepcopy=False), before=trial.number) >= budget.max_runs:
            trial.set_user_attr("skipped", "budget reached")
            raise Skipped()
        started = time.time()
        last: dict[str, float] = {}

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            last.update(metrics)
            value = metrics[recipe.metric]
            if math.isfinite(value):
                trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{recipe.metric} {value:.4g} at step {step} is worse than the median")

        try:
            params = {p.name: space_lib.suggest(trial, p) for p in params_space}
            run_dir = trial_dir(out_dir, trial.number)
            trial.set_user_attr("run_dir", str(run_dir))
            _resume_from_lost(trial, out_dir, run_dir)
            result = train(space_lib.apply_params(base, params), run_dir, on_eval=on_eval, progress=False,
                           report=False)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # recorded with its reason; the sweep goes on
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}".splitlines()[0][:300])
            if not _trained_a_step(trial_dir(out_dir, trial.number)):
                trial.set_user_attr("failed_at_start", True)  # used nothing: not counted in the budget
            raise
        finally:
            trial.set_user_attr("seconds", time.time() - started)
        value = last.get(recipe.metric, math.nan)
        if result.diverged or not math.isfinite(value):
            trial.set_user_attr("diverged", f"non-finite loss by step {result.final_step}")
            return worst(recipe.direction)
        return value

    return objective


def _trained_a_step(run_dir: Path) -> bool:
    log = run_dir / rf.METRICS_FILE
    return log.is_file() and log.stat().st_size > 0


MAX_FAILED_AT_START = 3  # trials in a row that fail before their first step: the sweep itself is broken


def _failed_at_start_streak(study: optuna.Study) -> list[FrozenTrial]:
    streak = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if t.user_attrs.get("skipped") or t.state == TrialState.WAITING:
            continue
        if not t.user_attrs.get("failed_at_start"):
            break
        streak.append(t)
    return streak


def check_started(study: optuna.Study) -> None:
    """Raise NtjaxError when the latest trials all failed before their first step (and so used no budget)."""
    from ntjax.errors import NtjaxError

    streak = _failed_at_start_streak(study)
    if len(streak) >= MAX_FAILED_AT_START or (streak and len(streak) == len(
            [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("skipped")])):
        raise NtjaxError(f"{len(streak)} trial(s) in a row failed before their first step "
                         f"({streak[0].user_attrs.get('fail_reason')}); fix that and re-run: they used no budget")


def _resume_from_lost(trial: optuna.Trial, out_dir: Path, run_dir: Path) -> None:
    """A retry of a lost trial starts from that trial's latest checkpoint (copied, so the lost run's folder
    stays as it was) instead of from scratch."""
    lost = trial.user_attrs.get("retry_of")
    src = trial_dir(out_dir, int(lost)) if lost is not None else None
    if src is not None and (src / rf.CHECKPOINTS_DIR).is_dir() and any((src / rf.CHECKPOINTS_DIR).iterdir()) \
            and not run_dir.exists():
        shutil.copytree(src, run_dir)


def run_worker(study: optuna.Study, objective: Callable, budget: Budget, callbacks: list | None = None) -> int:
    """Run trials until the budget (runs or time) is spent; returns how many trials this worker started."""
    ran = 0
    while budget.allows_another(study):
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks)
        ran += 1
        if len(_failed_at_start_streak(study)) >= MAX_FAILED_AT_START:
            break  # failed-at-start trials use no budget: without this a broken sweep would never end
    return ran
