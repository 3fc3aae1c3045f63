"""`ntjax curves PATH [PATH...]`: read training logs of any supported format, detect patterns, plot and
diagnose. Each run gets a PNG (losses raw and smoothed, LR, every finding drawn where it is), a terminal
plot, a verdict with numbers, the findings and what to do."""
from __future__ import annotations

import argparse
from pathlib import Path

from ntjax.cli import Result, add_json_flag
from ntjax.errors import NtjaxError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("curves", help="read training logs (any format), detect patterns, plot, diagnose",
                       description=__doc__)
    p.add_argument("paths", nargs="+", metavar="PATH", help="a log file or run folder (format detected)")
    p.add_argument("--baseline", metavar="PATH", help="a run to compare against at the same steps")
    p.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: <run folder>/plots/)")
    p.add_argument("--no-plot", action="store_true", help="no terminal plot")
    add_json_flag(p)
    p.set_defaults(run=run)


def read(path: str):
    """A RunTable from a path; unreadable input raises `ReadError`, one clear line."""
    from ntjax.readers import read_run
    return read_run(path)


def plot_path(source: str, out: str | None, index: int, n_runs: int) -> Path:
    """Where a run's PNG goes: --out, else the run folder's plots/ or the temp folder (`plot_location`)."""
    from ntjax.viz.plots import plot_location

    src = Path(source)
    stem = "curves" if src.is_dir() else f"curves_{src.stem}"
    if out:
        name = f"{index:02d}_{src.name or 'run'}_curves.png" if n_runs > 1 else f"{stem}.png"
        return Path(out) / name
    return plot_location(src, f"{stem}.png")


def analyse_path(path: str, baseline, out: str | None, index: int, n_runs: int) -> tuple[dict, object, object]:
    """One run: read, analyse, draw. Returns (the contract's JSON object, the analysis, the table)."""
    from ntjax.diagnostics.detectors import analyse
    from ntjax.viz.plots import plot_curves
    table = read(path)
    analysis = analyse(table, baseline=baseline)
    data = analysis.to_dict()
    png = plot_path(table.source or path, out, index, n_runs)
    try:
        data["plots"] = [str(plot_curves(table, analysis.findings, png))]
    except OSError as e:
        raise NtjaxError(f"cannot write the plot {png}: {e.strerror or e}") from None
    return data, analysis, table


def human(analysis, data: dict, table, show_plot: bool) -> str:
    """The text a person reads: terminal plot, verdict, findings, recommendations."""
    from ntjax.diagnostics.findings import is_healthy
    lines = [f"== {data['source']} ({data['format']})"]
    if show_plot:
        from ntjax.viz.terminal_plot import render
        lines.append(render(table, title=Path(data["source"]).name))
    lines.append(("VERDICT: " if is_healthy(analysis.findings) else "VERDICT (!): ") + analysis.verdict)
    shown = [f for f in analysis.findings if f.kind != "healthy"]
    if shown:
        lines.append("findings:")
        for f in shown[:12]:
            where = f"step {f.start_step}" + (f"-{f.end_step}" if f.end_step not in (None, f.start_step) else "")
            lines.append(f"  [{f.severity}] {f.kind} in {f.metric} at {where}: {f.evidence}")
        if len(shown) > 12:
            lines.append(f"  ... and {len(shown) - 12} more (--json for all)")
    recs = list(dict.fromkeys(f.recommendation for f in analysis.findings
                              if f.recommendation and f.severity != "info"))
    if recs:
        lines.append("recommendations:")
        lines += [f"  - {r}" for r in recs[:5]]
    for p in table.problems[:3]:
        lines.append(f"note: {p}")
    lines.append("plot: " + ", ".join(data["plots"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Result:
    baseline = read(args.baseline) if args.baseline else None
    runs, texts = [], []
    for i, path in enumerate(args.paths):
        data, analysis, table = analyse_path(path, baseline, args.out, i, len(args.paths))
        runs.append(data)
        texts.append(human(analysis, data, table, show_plot=not args.no_plot))
    out = dict(runs[0])
    if len(runs) > 1:
        out["runs"] = runs
    return Result(out, "\n\n".join(texts))
