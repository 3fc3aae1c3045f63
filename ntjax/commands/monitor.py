"""`ntjax monitor PATH`: a live view of a run that is still writing (any format `ntjax curves` reads).

In a terminal: loss / LR / grad-norm charts and a status panel (step, ETA, throughput, latest eval, active
warnings), refreshed as the log grows; the log is followed, not re-read. `--once` draws one frame and
exits (plain text when stdout is not a terminal); `--png FILE` writes the same panels as an image
(refreshed every `--watch` seconds); `--tensorboard` serves the run's event files; `--wandb` prints the
run's W&B URL.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ntjax.cli import Result, add_json_flag
from ntjax.core import runfolder
from ntjax.errors import NtjaxError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="live view of a run: terminal, PNG snapshots, TensorBoard, W&B",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a run folder or log file (metrics.jsonl, CSV, TensorBoard, W&B, ...)")
    p.add_argument("--once", action="store_true", help="draw one frame and exit")
    p.add_argument("--png", metavar="FILE", help="write the panels as a PNG (with --watch: refresh it)")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="refresh interval; with --png keep refreshing until the run finishes (default 2 s live)")
    p.add_argument("--tensorboard", action="store_true", help="launch TensorBoard on the run's event files")
    p.add_argument("--port", type=int, help="port for --tensorboard (default: a free one)")
    p.add_argument("--wandb", action="store_true", help="print the run's W&B URL (or say it is offline)")
    p.add_argument("--plain", action="store_true", help="plain text even in a terminal")
    add_json_flag(p)
    p.set_defaults(run=run)


def _frame(follower):
    from ntjax.monitor.panels import run_status

    follower.poll()
    table = follower.table()
    return table, run_status(table, runfolder.planned_steps(follower.path), runfolder.run_finished(follower.path),
                             runfolder.ended_as(follower.path))


def _fancy(args: argparse.Namespace) -> bool:
    return not args.plain and sys.stdout.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


def run(args: argparse.Namespace) -> Result:
    from ntjax.monitor import links

    path = Path(args.path)
    if not path.exists():
        raise NtjaxError(f"{path} does not exist")
    if args.watch is not None and args.watch <= 0:
        raise NtjaxError(f"--watch must be a positive number of seconds (got {args.watch})")
    if args.tensorboard:
        tb = links.launch_tensorboard(path, args.port)
        return Result(data={"tensorboard": tb}, human=f"TensorBoard: {tb['url']}  (logdir {tb['logdir']}; "
                                                           f"stop it with `kill {tb['pid']}`)")
    if args.wandb:
        link = links.wandb_link(path)
        return Result(data={"wandb": link}, human=link["message"])
    if args.png:
        return _png(args, path)
    if path.is_dir() and (path / SWEEP_DB).is_file() and (args.once or args.json or not _fancy(args)):
        return _sweep_table(path)
    if args.once or args.json or not _fancy(args):
        return _once_or_stream(args, path)
    return _live(args, path)


SWEEP_DB = "study.db"  # ntjax.sweep.study.DB_FILE (not imported: it would import optuna for every monitor)


def _sweep_table(path: Path) -> Result:
    """A sweep folder: one row per trial (number, state, value, params, steps logged so far)."""
    import optuna

    from ntjax.monitor.panels import sweep_rows
    from ntjax.readers import ReadError, read_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(path / SWEEP_DB).absolute()}"
    trials = []
    for name in optuna.study.get_all_study_names(storage):
        for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
            if t.user_attrs.get("skipped"):
                continue
            log = path / f"trial_{t.number:04d}" / runfolder.METRICS_FILE
            steps = None
            if log.is_file():
                try:
                    table = read_run(log)
                    steps = max((int(s.step[-1]) for s in table.series.values() if len(s)), default=None)
                except ReadError:
                    steps = None
            trials.append({"number": t.number, "state": t.state.name, "value": t.value,
                           "params": dict(t.params), "steps": steps})
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    summary = ", ".join(f"{n} {k.lower()}" for k, n in sorted(counts.items())) or "no trials yet"
    return Result(data={"source": str(path), "format": "ntjax-sweep", "trials": trials, "counts": counts},
                  human=f"sweep {path}: {summary}\n" + sweep_rows(trials))


def _result(table, st, png: str | None = None) -> Result:
    from ntjax.monitor.panels import metric_summary, text_frame

    data = {"source": st.source, "format": st.format, "status": st.to_dict(), "metrics": metric_summary(table),
            "warnings": st.warnings, "png": png}
    return Result(data=data, human=text_frame(table, st) + (f"\n\nPNG: {png}" if png else ""))


def _once_or_stream(args: argparse.Namespace, path: Path) -> Result:
    """One frame; without --once in a pipe, a text frame each time the log grows until the run ends."""
    from ntjax.monitor.follow import Follower
    from ntjax.monitor.panels import text_frame

    follower = Follower(path)
    table, st = _frame(follower)
    if args.once or args.json:
        _refuse_unreadable(path, table)
        if _fancy(args) and not args.json:
            from rich.console import Console

            from ntjax.monitor.panels import rich_frame
            Console().print(rich_frame(table, st, width=min(os.get_terminal_size().columns, 160)))
            return Result(data={}, human="")
        return _result(table, st)
    interval = args.watch or 2.0
    while True:
        print(text_frame(table, st), "\n", flush=True)
        if st.finished:
            return Result(data={}, human="")
        while not follower.poll():
            time.sleep(interval)
        table, st = _frame(follower)


def _refuse_unreadable(path: Path, table) -> None:
    """One frame of a log that has content but no metrics is not "waiting": say why it cannot be read
    (an empty or absent log of a run that just started still shows as waiting)."""
    from ntjax.readers import ReadError, read_run

    if table.series or (path.is_file() and path.stat().st_size == 0):
        return
    try:
        read_run(path)
    except ReadError as e:
        if path.is_file() or "no such" not in str(e).lower():
            raise NtjaxError(str(e)) from None


def _png(args: argparse.Namespace, path: Path) -> Result:
    from ntjax.monitor.follow import Follower
    from ntjax.monitor.snapshot import write_png

    follower = Follower(path)
    table, st = _frame(follower)
    write_png(table, st, args.png)
    while args.watch and not args.once and not st.finished:
        time.sleep(args.watch)
        table, st = _frame(follower)
        write_png(table, st, args.png)
    return _result(table, st, png=str(args.png))


def _live(args: argparse.Namespace, path: Path) -> Result:
    """Redraw in place (rich Live) until the run finishes or Ctrl-C."""
    from rich.live import Live

    from ntjax.monitor.follow import Follower
    from ntjax.monitor.panels import rich_frame

    follower = Follower(path)
    interval = args.watch or 2.0
    table, st = _frame(follower)
    size = os.get_terminal_size()
    with Live(rich_frame(table, st, min(size.columns, 160), max(size.lines - 14, 8)), auto_refresh=False,
              screen=False) as live:
        while not st.finished:
            time.sleep(interval)
            if follower.poll():
                table, st = _frame(follower)
                size = os.get_terminal_size()
                live.update(rich_frame(table, st, min(size.columns, 160), max(size.lines - 14, 8)), refresh=True)
    return _result(table, st)
