"""`ntjax sweep`: hyperparameter search (grid, random, Bayesian/TPE) over real training runs, with a
budget, pruning and parallel workers sharing one Optuna storage.

Every trial is a normal run folder OUT/trial_NNNN (its own metrics.jsonl: `ntjax curves` works on it).
Re-running with the same --out continues the sweep: nothing finished is run again, and a trial whose
worker was killed is marked FAIL and retried (from its last checkpoint when it has one).

Pruning: Optuna's median rule by default. At the budgets this is used with (tens of trials) Hyperband's
brackets never fill, and a median rule with no decision in the first quarter of a run is easy to reason
about and guards against short-horizon bias (large LRs look best early, then lose). `--pruner hyperband`
is there for large sweeps. See docs/sweep.md.

Examples:
  ntjax sweep --preset tiny --param lr=log:1e-4:3e-2 --max-runs 8
  ntjax sweep --strategy grid --grid-points 5 --param lr=log:1e-4:1e-2 --param warmup=choice:0,50
  ntjax sweep --sensitivity --preset tiny --steps 200 --set qk_norm=true --out runs/sens-qk
  ntjax sweep --command 'python train.py --lr {lr} --out {run_dir}' --param lr=log:1e-4:1e-1 --metric eval/loss
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

from ntjax.cli import Result, add_json_flag, add_progress_flag, add_trust_flags
from ntjax.core import runfolder as rf

DEFAULT_MAX_RUNS = 8


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="hyperparameter search with budget, pruning and parallel workers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="a searched hyperparameter; SPEC is log:LO:HI, uniform:LO:HI, int:LO:HI or choice:A,B,C; "
                        "NAME is a config field (lr, warmup, weight_decay, batch_size, b2, clip_norm, d_model, ...)")
    p.add_argument("--space", metavar="FILE", help="a JSON or TOML file mapping names to specs, "
                                                   "e.g. {\"lr\": \"log:1e-4:1e-2\"}")
    p.add_argument("--strategy", choices=["grid", "random", "bayes"], default="bayes",
                   help="bayes = Optuna TPE (default)")
    p.add_argument("--grid-points", type=int, help="values per continuous axis of a grid")
    p.add_argument("--max-runs", type=int, help=f"trials in total, all workers together (default {DEFAULT_MAX_RUNS}; "
                                                "a grid: its size)")
    p.add_argument("--max-time", type=float, metavar="SECONDS", help="start no trial after this long "
                                                                     "(running trials finish)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes sharing the storage (on one "
                   "GPU each may preallocate 0.9/N of its memory: XLA_PYTHON_CLIENT_MEM_FRACTION, unless you set it)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite file study.db in --out); workers on "
                                     "other machines can join with the same URL and --study-name")
    p.add_argument("--study-name", help="default: the name of the --out folder")
    p.add_argument("--metric", default="eval/loss",
                   help="the trial's value: this metric at the final eval (eval/loss, eval/ppl, eval/accuracy; with "
                        "--command any metric the logs hold); accuracy is maximised")
    p.add_argument("--command", dest="user_command", metavar="TEMPLATE",
                   help="sweep your own training command: placeholders {NAME} for each --param, and {run_dir}, "
                        "{trial}, {seed}; every trial is an `ntjax run` of it")
    p.add_argument("--direction", choices=["minimize", "maximize"],
                   help="with --command: whether lower or higher --metric is better (default: minimize, "
                        "maximize for accuracy)")
    p.add_argument("--grace", type=float, default=120.0,
                   help="with --command: seconds a trial gets to log its first metrics (default 120)")
    p.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    p.add_argument("--prune-startup", type=int, default=3, help="complete trials before the median rule prunes")
    p.add_argument("--sensitivity", action="store_true",
                   help="measure LR sensitivity (Wortsman et al. 2023): a log grid over lr, "
                        "default lr=log:3e-4:3e-1 with 7 points, no pruning")
    p.add_argument("--preset", help="tiny | default | small (default: default)")
    p.add_argument("--spec", help="a Python spec file (model, loss, data) as for `ntjax train`")
    p.add_argument("--steps", type=int, help="optimizer steps per trial (default: the preset's)")
    p.add_argument("--eval-every", type=int, help="steps between evals (what the pruner sees)")
    p.add_argument("--parametrization", choices=["sp", "mup"],
                   help="mup: sweep a small μP model, then train wide with the same LR (ntjax mup --help)")
    p.add_argument("--base-width", type=int, help="μP base width (default: the swept model's d_model)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a fixed override for every trial, e.g. --set qk_norm=true --set warmup=0")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--heartbeat", type=int, default=5, help=argparse.SUPPRESS)
    p.add_argument("--out", default="runs/sweep", help="sweep folder (default runs/sweep)")
    add_progress_flag(p)
    add_trust_flags(p, spec=False)
    add_json_flag(p)
    p.set_defaults(run=run)


def build_recipe(args: argparse.Namespace, out: Path):
    """The recipe asked for on the command line, or None to continue the stored one (no --param given)."""
    from ntjax.core import config as config_lib
    from ntjax.errors import NtjaxError
    from ntjax.sweep import sensitivity, space
    from ntjax.sweep.study import Recipe, validate_recipe

    texts = list(args.param) + (space.load_space_file(args.space) if args.space else [])
    strategy, grid_points, pruner = args.strategy, args.grid_points, args.pruner
    if args.sensitivity:
        if any(space.parse_param(t).name != "lr" for t in texts):
            raise NtjaxError("--sensitivity sweeps the learning rate only; fix other settings with --set")
        lo, hi = sensitivity.PAPER_RANGE
        texts = texts or [f"lr=log:{lo}:{hi}"]
        strategy, grid_points, pruner = "grid", grid_points or sensitivity.DEFAULT_POINTS, "none"
    if not texts:
        if (out / "study.db").exists() or args.storage:
            return None  # continue the stored sweep
        raise NtjaxError("nothing to search: give --param NAME=SPEC (e.g. --param lr=log:1e-4:1e-2) or --space FILE")
    if args.user_command:
        if args.sensitivity:
            raise NtjaxError("--sensitivity measures ntjax's own model; with --command use --strategy grid over lr")
        if args.preset or args.spec or args.set:
            raise NtjaxError("--command runs your own script: --preset, --spec and --set do not apply to it")
        direction = args.direction or ("maximize" if "acc" in args.metric.rsplit("/", 1)[-1] else None)
        return validate_recipe(Recipe(params=tuple(texts), strategy=strategy, grid_points=grid_points,
                                      metric=args.metric, base={"steps": args.steps or 0}, pruner=pruner,
                                      prune_startup=args.prune_startup, seed=args.seed, command=args.user_command,
                                      goal=direction, grace=args.grace))
    cfg = config_lib.preset(args.preset or "default")
    changes = {k: v for k, v in {"steps": args.steps, "spec": args.spec, "eval_every": args.eval_every,
                                 "parametrization": args.parametrization, "base_width": args.base_width}.items()
               if v is not None}
    cfg = space.apply_params(dataclasses.replace(cfg, **changes), space.parse_sets(args.set))
    if cfg.parametrization == "mup" and cfg.base_width is None:  # record it: the width the LR is tuned at
        cfg = dataclasses.replace(cfg, base_width=cfg.model.d_model)
    cfg = dataclasses.replace(cfg, log=("jsonl",), ckpt_every=min(cfg.ckpt_every, cfg.steps),
                              eval_every=min(cfg.eval_every, cfg.steps))
    base = json.loads(json.dumps(config_lib.to_dict(cfg)))
    return validate_recipe(Recipe(params=tuple(texts), strategy=strategy, grid_points=grid_points,
                                  metric=args.metric, base=base, pruner=pruner, prune_startup=args.prune_startup,
                                  seed=args.seed))


def plan_line(recipe, max_runs: int) -> str:
    from ntjax.sweep import space

    if recipe.strategy == "grid":
        g = space.grid(recipe.space(), recipe.grid_points)
        dims = " × ".join(f"{len(v)} {k}" for k, v in g.items())
        n = space.grid_size(g)
        extra = f"; --max-runs {max_runs} runs {max_runs} of them" if max_runs < n else ""
        return f"grid of {dims} = {n} runs{extra}"
    return f"{recipe.strategy} search over {', '.join(recipe.params)}: {max_runs} runs"


def init_loss(base_cfg) -> float:
    """The eval loss of the model at initialisation (L0 of the LR sensitivity)."""
    from ntjax.core import config as config_lib
    from ntjax.core.state import build_state, evaluate
    from ntjax.core.step import make_eval_step

    cfg = config_lib.resolve(base_cfg)
    task, graphdef, state, _ = build_state(cfg)
    return evaluate(make_eval_step(graphdef, task.loss_fn), state, task.eval_batches)["eval/loss"]


def sensitivity_of(study, recipe) -> dict | None:
    """LR sensitivity from the grid's complete trials (the latest result per LR)."""
    from optuna.trial import TrialState

    from ntjax.sweep.sensitivity import lr_sensitivity

    by_lr = {t.params["lr"]: t.value for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
             if t.state == TrialState.COMPLETE and "lr" in t.params}
    if not by_lr:
        return None
    lrs = sorted(by_lr)
    return lr_sensitivity(lrs, [by_lr[x] for x in lrs], init_loss(recipe.base_config())).to_dict()


def _study_exists(storage: str, name: str) -> bool:
    """Whether the sweep has created its study yet, checked without writing (read-only SQLite); other
    databases are shared and set up once, so they are taken as ready."""
    import sqlite3

    prefix = "sqlite:///"
    if not storage.startswith(prefix):
        return True
    path = Path(storage[len(prefix):])
    if not path.is_file():
        return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            return con.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return False


def sweep_progress(storage: str, name: str, max_runs: int, started: float, max_time: float | None) -> str:
    """The sweep's `progress:` line, read from its storage (its own connection: this runs on the ticker)."""
    import optuna
    from optuna.trial import TrialState

    from ntjax.viz.progress_lines import sweep_line

    elapsed = time.time() - started
    if not _study_exists(storage, name):  # opening it now would race the sweep's own storage set-up
        return sweep_line({}, max_runs, None, elapsed, (max_time - elapsed) if max_time else None)
    study = optuna.load_study(study_name=name, storage=storage)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("skipped")]
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    best = None
    if done:
        pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
        top = pick(done, key=lambda t: t.value)
        best = (float(top.value), top.number)
    return sweep_line(counts, max_runs, best, elapsed, (max_time - elapsed) if max_time else None)


def run(args: argparse.Namespace) -> Result:
    from rich.console import Console

    from ntjax.errors import NtjaxError
    from ntjax.sweep import results, space
    from ntjax.sweep.runner import run_sweep
    from ntjax.sweep.study import default_storage
    from ntjax.viz.progress_lines import Ticker, emit, line_stream, wants_lines

    out = Path(args.out)
    if args.workers < 1 or (args.max_runs is not None and args.max_runs < 1):
        raise NtjaxError("--workers and --max-runs must be at least 1")
    if args.max_time is not None and not args.max_time > 0:
        raise NtjaxError(f"--max-time must be a positive number of seconds (got {args.max_time:g})")
    recipe = build_recipe(args, out)
    console = Console(stderr=True)
    storage = args.storage or default_storage(out)
    name = args.study_name or out.absolute().name
    if recipe is None:  # continuing: read what was searched from the storage
        from ntjax.sweep.study import open_storage, open_study
        _, stored_recipe = open_study(None, open_storage(storage, args.heartbeat), name)
    else:
        stored_recipe = recipe
    max_runs = args.max_runs or DEFAULT_MAX_RUNS
    if stored_recipe.strategy == "grid":
        n = space.grid_size(space.grid(stored_recipe.space(), stored_recipe.grid_points))
        max_runs = min(args.max_runs or n, n)
    from ntjax.sweep.secret_url import mask
    console.print(f"[bold]ntjax sweep[/] → {out}: {plan_line(stored_recipe, max_runs)}, {args.workers} worker(s), "
                  f"storage {mask(storage)}")
    started = time.time()
    every = args.progress_every if wants_lines(args.progress_every) else 0.0
    stream = line_stream(args.json)

    def report() -> None:
        emit(sweep_progress(storage, name, max_runs, started, args.max_time), stream)

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False)
        if every and text.startswith("trial "):  # a trial finished: report at once, not only on the cadence
            report()

    ticker = Ticker(every, report)
    try:
        study, recipe, lost = run_sweep(recipe, out, storage, name, max_runs=max_runs, max_time=args.max_time,
                                        workers=args.workers, heartbeat_s=args.heartbeat, say=say)
    finally:
        ticker.stop()
    data = results.summary(study, recipe.metric)
    data.update({"out_dir": str(out), "storage": mask(storage), "study_name": name, "strategy": recipe.strategy,
                 "lost_trials": lost, "wall_s": time.time() - started})
    if args.sensitivity:
        data["sensitivity"] = sensitivity_of(study, recipe)
    data["plots"] = results.write_plots(study, data, out / rf.PLOTS_DIR)
    from ntjax.cli import dumps
    (out / "sweep.json").write_text(dumps(data) + "\n")

    def human() -> None:
        Console().print(results.table(study, recipe.metric))
        for line in results.human_lines(data):
            print(line)

    return Result(data=data, human=human)
