"""`ntjax scale fit CSV` fits scaling laws to final losses; `ntjax scale run` trains a scaling study.

fit: L(N, D) = E + A/N^alpha + B/D^beta as Hoffmann et al. 2022 and Besiroglu et al. 2024 do (Huber
loss, delta 1e-3, on log loss; L-BFGS from a grid of 4,500 starts, all at once), bootstrap 95 % CIs,
compute-optimal N and D for budgets beside Chinchilla's and Kaplan's, the one-variable laws L(N), L(D),
L(C), and Chinchilla's Approaches 1 (frontier) and 2 (IsoFLOP parabolas). Columns are found by name
(N/params/Model Size, D/tokens, C/flops/Training FLOP, loss); without tokens, D = C/(6N).

run: trains runs of the preset's family (width -> N, steps -> D) at fixed compute per IsoFLOP group (or
along one axis), LR and warmup from the smart defaults, writes OUT/scaling.csv and fits it. N is the
non-embedding parameter count unless --count total.

Examples:
  ntjax scale fit tests/fixtures/chinchilla/svg_extracted_data.csv --drop-highest 5 --budget 5.88e23
  ntjax scale run --preset tiny --budgets 3e9,1e10,3e10 --out runs/scale
  ntjax scale run --preset tiny --axis width --values 16,32,48,64 --out runs/scale-width
  ntjax scale run --command 'python train.py --width {width} --steps {steps}' --widths 16,32,64 \
      --step-counts 100,200 --tokens-per-step 4096 --out runs/scale-mine
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ntjax.cli import Result, add_json_flag, add_progress_flag
from ntjax.core import runfolder as rf
from ntjax.errors import NtjaxError


def _floats(text: str) -> list[float]:
    """Comma-separated positive, finite numbers (budgets, widths, step counts)."""
    import math

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive, finite numbers, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", help="fit scaling laws (scale fit CSV) or run a scaling study (scale run)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_json_flag(p)
    p.set_defaults(run=_no_subcommand)
    ssub = p.add_subparsers(dest="scale_command", metavar="{fit,run}")

    f = ssub.add_parser("fit", help="fit L(N, D) and friends to a CSV of runs")
    f.add_argument("csv", help="one row per run: parameters, tokens or FLOPs, final loss")
    f.add_argument("--budget", type=_floats, default=[1e21], metavar="C[,C...]",
                   help="FLOP budgets for the compute-optimal allocation (default 1e21)")
    f.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples (0: no CIs)")
    f.add_argument("--drop-highest", type=int, default=0, metavar="K",
                   help="drop the K highest-loss runs first (Epoch drops 5 outliers from the Chinchilla data)")
    f.add_argument("--unique-tokens", type=float, metavar="U",
                   help="unique tokens available: adds Muennighoff et al.'s data-constrained optimum")
    f.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log loss (default 1e-3)")
    f.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    f.add_argument("--plot", metavar="PNG", help="where to write the figure (default: next to the CSV)")
    f.add_argument("--no-plot", action="store_true")
    add_json_flag(f)
    f.set_defaults(run=run_fit)

    r = ssub.add_parser("run", help="train a scaling study and fit it")
    r.add_argument("--preset", default="tiny", help="the model family's base (tiny | default | small); default tiny")
    r.add_argument("--budgets", type=_floats, metavar="C[,C...]",
                   help="IsoFLOP budgets in FLOPs (6·N·D); default: three budgets sized for the preset")
    r.add_argument("--sizes", type=int, default=3, help="model widths per IsoFLOP budget (default 3)")
    r.add_argument("--axis", choices=["width", "steps"], help="vary one axis instead of IsoFLOP groups")
    r.add_argument("--values", type=_floats, help="with --axis: d_model values or step counts")
    r.add_argument("--steps", type=int, help="with --axis width: steps per run (default: the preset's)")
    r.add_argument("--count", choices=["non-embedding", "total"], default="non-embedding",
                   help="what N counts (default non-embedding, as Kaplan et al.)")
    r.add_argument("--out", default="runs/scale", help="study folder (default runs/scale); re-running resumes")
    r.add_argument("--bootstrap", type=int, default=200, metavar="B")
    r.add_argument("--budget", type=_floats, metavar="C[,C...]", help="budgets to extrapolate the allocation to")
    r.add_argument("--dry-run", action="store_true", help="print the designed runs without training")
    r.add_argument("--command", dest="user_command", metavar="TEMPLATE",
                   help="study your own model family: a command with {width} and/or {steps} (and {run_dir}); "
                        "each point is an `ntjax run`")
    r.add_argument("--widths", type=_floats, metavar="W[,W...]", help="with --command: the {width} values")
    r.add_argument("--step-counts", type=_floats, metavar="S[,S...]", help="with --command: the {steps} values")
    r.add_argument("--tokens-per-step", type=float,
                   help="with --command: tokens (or samples) per optimizer step, so D = steps x this")
    r.add_argument("--n-params", metavar="W=N[,W=N...]",
                   help="with --command: parameters per width, when the runs' config.json does not report it")
    r.add_argument("--metric", default="eval/loss", help="with --command: the loss to fit (default eval/loss)")
    r.add_argument("--grace", type=float, default=120.0, help="with --command: seconds to the first metrics")
    add_progress_flag(r)
    r.add_argument("--parametrization", choices=["sp", "mup"], default="sp",
                   help="mup: every width keeps the preset's heads and one peak LR (μP transfers it), so the "
                        "sizes need no re-tuning")
    r.add_argument("--base-width", type=int, help="μP: the width --lr was tuned at (default: the preset's d_model)")
    r.add_argument("--lr", type=float, help="μP: the peak LR tuned at the base width (default: the smart LR there)")
    add_json_flag(r)
    r.set_defaults(run=run_study)


def _no_subcommand(args: argparse.Namespace) -> Result:
    raise NtjaxError("choose a subcommand: `ntjax scale fit CSV` or `ntjax scale run` (see --help)")


def run_fit(args: argparse.Namespace) -> Result:
    from ntjax.scaling import analysis
    from ntjax.scaling.plots import plot_analysis
    from ntjax.scaling.points import drop_highest_loss, read_points

    points = drop_highest_loss(read_points(args.csv), args.drop_highest)
    if len(points) < 5:
        raise NtjaxError(f"{len(points)} runs left; L(N, D) has 5 parameters and needs at least 5 runs")
    if args.bootstrap < 0 or args.delta <= 0:
        raise NtjaxError("--bootstrap must be ≥ 0 and --delta positive")
    from ntjax.viz.plots import plot_location
    plot = None if args.no_plot else (args.plot or str(plot_location(args.csv, "scaling.png")))
    data, samples = analysis.analyse(points, budgets=args.budget, n_boot=args.bootstrap, seed=args.seed,
                                     unique_tokens=args.unique_tokens, delta=args.delta)
    if plot is not None:
        data["plots"].append(str(plot_analysis(points, data, samples, plot)))
    data["source"] = str(args.csv)
    data["dropped_highest"] = args.drop_highest
    return Result(data, analysis.summary(data))


def _default_budgets(preset: str) -> list[float]:
    return {"tiny": [3e9, 1e10, 3e10], "default": [1e12, 3e12, 1e13]}.get(preset, [1e13, 3e13, 1e14])


def run_study(args: argparse.Namespace) -> Result:
    import dataclasses
    import sys

    from ntjax.core.config import preset
    from ntjax.scaling import study
    from ntjax.viz.progress_lines import emit, line, line_stream, wants_lines

    if args.sizes < 1 or (args.steps is not None and args.steps < 1) or args.bootstrap < 0:
        raise NtjaxError("--sizes and --steps must be at least 1, --bootstrap at least 0")
    if args.user_command:
        return _fit_rows(_command_rows(args), Path(args.out), args)
    base = preset(args.preset)
    if args.steps:
        base = dataclasses.replace(base, steps=args.steps)
    if args.parametrization == "mup":
        base = dataclasses.replace(base, parametrization="mup", base_width=args.base_width, lr=args.lr)
    elif args.lr is not None or args.base_width is not None:
        raise NtjaxError("--lr and --base-width apply to --parametrization mup (SP runs take the smart LR per size)")
    if args.axis:
        if not args.values:
            raise NtjaxError("--axis needs --values (d_model values or step counts)")
        runs = study.design_axis(base, args.axis, [int(v) for v in args.values], count=args.count)
    else:
        runs = study.design_isoflop(base, args.budgets or _default_budgets(args.preset), sizes=args.sizes,
                                    count=args.count)
    plan = [{"name": r.name, "group": r.group, "N": r.n_params, "D": r.n_tokens, "flops": r.flops,
             "steps": r.cfg.steps, "d_model": r.cfg.model.d_model, "lr": r.cfg.lr, "warmup": r.cfg.warmup}
            for r in runs]
    if args.dry_run:
        return Result({"runs": plan, "n_count": args.count}, "\n".join(
            f"{p['name']:<18} {p['group']:<10} N={p['N']:>9,} D={p['D']:>11,} C={p['flops']:.3g} lr={p['lr']:.3g}"
            for p in plan))
    out = Path(args.out)
    every = args.progress_every if wants_lines(args.progress_every) else 0.0
    stream = line_stream(args.json)

    def log(text: str) -> None:  # "[i/N] name: ..." as each run starts; a progress line too when piped
        print(text, file=sys.stderr)
        if every:
            done, _, rest = text[1:].partition("]")
            emit(line("scale", {"run": done, "name": rest.strip().split(":")[0]}), stream)

    rows = study.execute(runs, out, log=log, lines=(every, stream) if every else None)
    return _fit_rows(rows, out, args)


def _command_rows(args: argparse.Namespace) -> list[dict]:
    import sys

    from ntjax.scaling.command import execute_command, parse_n_params

    if not args.tokens_per_step or args.tokens_per_step <= 0:
        raise NtjaxError("--command needs --tokens-per-step (tokens per optimizer step: batch x sequence length)")
    widths = [int(w) for w in args.widths or []]
    steps = [int(s) for s in args.step_counts or []]
    return execute_command(args.user_command, widths, steps, Path(args.out), tokens_per_step=args.tokens_per_step,
                           metric=args.metric, n_params=parse_n_params(args.n_params), grace=args.grace,
                           log=lambda s: print(s, file=sys.stderr))


def _fit_rows(rows: list[dict], out: Path, args: argparse.Namespace) -> Result:
    """Write scaling.csv and fit it (L(N, D) with 5+ usable runs; a one-axis law along one axis)."""
    from ntjax.scaling import analysis, study
    from ntjax.scaling.plots import plot_analysis
    from ntjax.scaling.points import from_arrays

    csv_path = study.write_csv(rows, out / "scaling.csv")
    good = study.usable(rows)
    data: dict = {"runs": rows, "csv": str(csv_path), "n_count": args.count}
    if len(good) >= 5:
        pts = from_arrays([r["N"] for r in good], [r["loss"] for r in good], n_tokens=[r["D"] for r in good],
                          columns={"n": "N", "d": "D", "loss": "loss"})
        budgets = args.budget or [max(r["flops"] for r in good) * 10]
        data["fit"], samples = analysis.analyse(pts, budgets=budgets, n_boot=args.bootstrap)
        data["fit"]["plots"].append(str(plot_analysis(pts, data["fit"], samples, out / rf.PLOTS_DIR / "scaling.png")))
        human = analysis.summary(data["fit"])
    else:
        data["fit"] = None
        human = f"{len(good)} usable runs: too few for L(N, D) (5 parameters); rows are in {csv_path}"
    data["one_axis"] = _one_axis_fit(good)
    if data["one_axis"]:
        human += f"\n{data['one_axis']['law']} = {data['one_axis']['E']:.4g} + {data['one_axis']['A']:.4g}" \
                 f"·x^-{data['one_axis']['exponent']:.3f}"
    return Result(data, f"{len(rows)} runs in {out}; CSV {csv_path}\n{human}")


def _one_axis_fit(rows: list[dict]) -> dict | None:
    """With runs along one axis (≥ 3 distinct values), L(N) or L(D) = E + A·x^-k."""
    import numpy as np

    from ntjax.scaling.fit import fit_power_law

    for key, law in (("N", "L(N)"), ("D", "L(D)")):
        x = np.array([r[key] for r in rows], float)
        others = {r["D" if key == "N" else "N"] for r in rows}
        if len(set(x)) >= 3 and len(others) == 1:
            fitted = fit_power_law(x, np.array([r["loss"] for r in rows], float))
            return {"law": law, "E": fitted.E, "A": fitted.A, "exponent": fitted.k, "objective": fitted.objective}
    return None
