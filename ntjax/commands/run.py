"""`ntjax run -- CMD ...`: run any training command (your own PyTorch, Keras or JAX script) as a monitored
ntjax run.

The command gets the run folder in $NTJAX_RUN_DIR (the bridge monitors write there); its output is kept in
RUN/console.log; the folder is watched for metrics in any format `ntjax curves` reads. If none appear
within --grace seconds the job is stopped and the lines to add are printed (every ntjax run is logged).
While it runs: early warnings (loss spike, NaN/Inf, grad-norm explosion); `--on-instability stop` ends the
job at the first NaN. At the end: report.md, plots/ and findings, as `ntjax train` writes. Ctrl-C stops
the command's whole process group. The exit status is the command's (2: stopped for lack of metrics,
3: stopped on instability). RUN/run.json records the command so `ntjax debug --fix` can re-run it.

Examples:
  ntjax run --out runs/r1 -- python train.py --epochs 3
  ntjax run --yes --on-instability stop --grace 60 -- python train.py --lr 0.1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ntjax.cli import Result, add_json_flag, add_progress_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run your own training command as a monitored, logged ntjax run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="run folder (default runs/<script>-<time>); must not hold a run already")
    p.add_argument("--grace", type=float, default=None,
                   help="seconds to wait for the first metrics before stopping the job (default 120)")
    p.add_argument("--on-instability", choices=["stop", "warn"], default="warn",
                   help="on a non-finite loss: stop the job, or warn and let it go on (default)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--quiet", action="store_true", help="do not echo the command's output (still in console.log)")
    add_progress_flag(p)
    add_json_flag(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the training command")
    p.set_defaults(run=run)


def default_out(argv: list[str]) -> Path:
    script = next((a for a in argv if a.endswith(".py")), argv[0] if argv else "run")
    return Path("runs") / f"{Path(script).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_fresh(out: Path) -> None:
    """One run per folder: a folder that already holds a run is refused (re-running would mix two runs)."""
    from ntjax.errors import NtjaxError
    from ntjax.usercmd.launch import RUN_FILE

    if (out / "metrics.jsonl").exists() or (out / RUN_FILE).exists():
        raise NtjaxError(f"{out} already holds a run; give another --out (each run gets its own folder)")


def summary(argv: list[str], out: Path, grace: float, on_instability: str):
    import shlex

    from rich.table import Table

    t = Table(title=f"ntjax run → {out}", show_header=False)
    framework = "?"
    script = next((a for a in argv if a.endswith(".py") and Path(a).is_file()), None)
    if script:
        try:
            from ntjax.diagnostics.framework import detect
            d = detect(script)
            framework = " + ".join(d.frameworks) or "no known framework"
            framework += "; monitored (imports an ntjax bridge)" if d.monitored else "; NO ntjax bridge import found"
        except Exception:
            framework = "unknown (the script could not be parsed)"
    for k, v in [("command", shlex.join(argv)), ("framework", framework),
                 ("run folder", f"{out} (given to the command as $NTJAX_RUN_DIR)"),
                 ("logging", f"metrics in any format ntjax reads, required within {grace:g} s; output in "
                             f"{out}/console.log"),
                 ("on instability", on_instability)]:
        t.add_row(k, v)
    return t


def run(args: argparse.Namespace) -> Result:
    from rich.console import Console

    from ntjax.errors import NtjaxError
    from ntjax.usercmd.launch import DEFAULT_GRACE_S, launch_and_report, write_run_file

    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise NtjaxError("no command given: ntjax run [--out DIR] -- python train.py ...")
    grace = DEFAULT_GRACE_S if args.grace is None else args.grace
    if grace <= 0:
        raise NtjaxError(f"--grace must be positive (got {grace:g})")
    out = Path(args.out) if args.out else default_out(argv)
    check_fresh(out)
    console = Console(stderr=True)
    console.print(summary(argv, out, grace, args.on_instability))
    if not args.yes and sys.stdin.isatty():
        answer = input("Start the run? [Y/n] ").strip().lower()
        if answer not in ("", "y", "yes"):
            raise NtjaxError("cancelled at the confirmation prompt (pass --yes to skip it)")
    write_run_file(out, argv)
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    outcome = launch_and_report(argv, out, grace, args.on_instability, echo, **_progress_hooks(args))
    return result_of(outcome, out, argv)


def _progress_hooks(args: argparse.Namespace) -> dict:
    """Off a terminal: `progress: train ...` lines from the growing logs (every --progress-every seconds
    and at each eval), with warnings in the same stream the moment the watcher raises them."""
    from ntjax.viz.progress import LineProgress
    from ntjax.viz.progress_lines import line_stream, wants_lines

    if not wants_lines(args.progress_every):
        return {}
    stream = line_stream(args.json)
    lines = LineProgress(args.progress_every, 0, 0, stream)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
        if stream is not sys.stderr:
            lines.warn(message)

    return {"on_train": lines.update, "on_eval": lines.eval, "warn": warn}


def result_of(outcome, out: Path, argv: list[str]) -> Result:
    import shlex

    report = out / "report.md"
    data = {"out_dir": str(out), "command": shlex.join(argv), "exit_code": outcome.exit_code,
            "stopped": outcome.stopped, "message": outcome.message, "metrics_source": outcome.metrics_source,
            "final_step": outcome.last_step, "final_train_loss": outcome.last_train.get("train/loss"),
            "eval_history": [{"step": s, **m} for s, m in outcome.eval_history], "events": outcome.events,
            "wall_s": outcome.wall_s, "report": str(report), "console": str(out / "console.log"),
            "plots": sorted(str(p) for p in (out / "plots").glob("*.png"))}
    code = {"no_metrics": 2, "instability": 3, "interrupted": 130}.get(outcome.stopped, outcome.exit_code)
    if outcome.message:
        print(f"ntjax run: {outcome.message}", file=sys.stderr)

    def human() -> None:
        print(report.read_text() if report.exists() else data)

    return Result(data=data, human=human, exit_code=code)
