"""`ntjax eval CHECKPOINT`: evaluate a checkpoint of an ntjax run (a run folder: its latest; or
RUN/checkpoints/STEP), compare it with the run's other checkpoints and with a baseline, flag regressions,
and write `eval_report.md`.

`ntjax eval --forgetting BASE TUNED [--data ORIGINAL]`: how much a fine-tune forgot on the original data.
`ntjax eval MODEL.pt --torch-model module:function --data FILE`: a PyTorch state_dict, same metrics.
`ntjax eval --hf-model DIR --eval-data FILE`: a local Hugging Face causal LM with its own tokenizer.
`ntjax eval --command 'python eval.py ...'`: your own eval code, run as an `ntjax run`; its eval/* metrics.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

from ntjax.cli import Result, add_json_flag, add_progress_flag, add_trust_flags
from ntjax.core import runfolder
from ntjax.core.safefile import save_figure
from ntjax.errors import NtjaxError

FORGETTING_FILE = "forgetting_report.md"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint, compare with others, write a report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", help="run folder (its latest checkpoint) or RUN/checkpoints/STEP")
    p.add_argument("--step", type=int, help="evaluate this step's checkpoint of the run")
    p.add_argument("--best", action="store_true", help="evaluate the run's best checkpoint (lowest eval loss)")
    p.add_argument("--data", help="a text file: evaluate on its held-out tail instead of the run's eval split "
                                  "(with --forgetting: the original data; default: the base run's data)")
    p.add_argument("--batches", type=int, help="number of eval batches (default: the run's eval_batches)")
    p.add_argument("--baseline", help="a run folder or checkpoint to compare against on the same data")
    p.add_argument("--compare", action="store_true", help="evaluate every checkpoint of the run: table, plot, "
                                                          "regressions")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="relative eval-loss rise that counts as a regression (default 0.01 = 1%%)")
    p.add_argument("--forgetting", nargs=2, metavar=("BASE", "TUNED"),
                   help="how much TUNED (a fine-tune of BASE) forgot on the original data")
    p.add_argument("--torch-model", metavar="MODULE:FUNCTION",
                   help="evaluate a PyTorch state_dict CHECKPOINT with the model this function builds")
    p.add_argument("--seq-len", type=int, default=None, help="context length for --torch-model (default 128) "
                                                             "and --hf-model (default min(512, the model's context))")
    p.add_argument("--hf-model", metavar="DIR", help="a local Hugging Face causal LM folder, evaluated with its own "
                                                     "tokenizer on --eval-data (no download)")
    p.add_argument("--eval-data", metavar="FILE", help="with --hf-model: a local .txt file, or .jsonl with 'text'")
    p.add_argument("--command", dest="user_command", metavar="CMD",
                   help="your own eval command, run as an `ntjax run`; the eval/* metrics it logs are reported")
    p.add_argument("--grace", type=float, default=120.0, help="with --command: seconds to wait for its first metrics")
    p.add_argument("--out", help="folder for the report and plots (default: the run folder)")
    add_progress_flag(p)
    add_trust_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def _quiet_orbax() -> None:
    logging.getLogger("absl").setLevel(logging.ERROR)  # read-only checkpoint managers warn on every open


def run(args: argparse.Namespace) -> Result:
    _quiet_orbax()
    if args.hf_model or args.user_command:
        if args.checkpoint or args.forgetting or args.torch_model:
            raise NtjaxError("--hf-model/--command evaluate your own model: give no CHECKPOINT, --forgetting or "
                             "--torch-model with them")
        from ntjax.usercmd.evaluate import run_user_eval
        args.hf_seq_len = args.seq_len
        data = run_user_eval(args)
        return Result(data=data, human=lambda: print(Path(data["report"]).read_text()))
    if args.seq_len is None:
        args.seq_len = 128
    if args.forgetting:
        if args.checkpoint:
            raise NtjaxError("give either CHECKPOINT or --forgetting BASE TUNED, not both")
        return run_forgetting(args)
    if not args.checkpoint:
        raise NtjaxError("missing CHECKPOINT (a run folder or RUN/checkpoints/STEP), or --forgetting BASE TUNED")
    if args.torch_model:
        return run_torch(args)
    if args.batches is not None and args.batches < 1:
        raise NtjaxError(f"--batches must be at least 1 (got {args.batches})")
    if args.step is not None and args.best:
        raise NtjaxError("--step and --best name different checkpoints; give one")
    return run_eval(args)


def run_eval(args: argparse.Namespace) -> Result:
    from ntjax import evaluation as ev

    run_dir, _ = runfolder.locate_checkpoint(args.checkpoint)
    run = runfolder.load_checkpoint(args.checkpoint, args.step, args.best)
    data = ev.eval_data(run.cfg, args.data, args.batches)
    metrics = ev.evaluate_checkpoint(run, data)
    own_data = args.data is None and args.batches is None
    logged = ev.logged_evals(run_dir).get(run.step) if own_data else None
    out: dict[str, Any] = {"checkpoint": str(args.checkpoint), "run_dir": str(run_dir), "step": run.step,
                           "data": data.description, "metrics": metrics, "logged": logged,
                           "matches_logged": None, "comparison": None, "baseline": None, "regressions": []}
    if logged and "eval/loss" in logged:
        out["logged_delta"] = metrics["eval/loss"] - logged["eval/loss"]
        out["matches_logged"] = abs(out["logged_delta"]) <= 1e-5 * max(1.0, abs(logged["eval/loss"]))
    if args.compare:
        out["comparison"] = compare_all(run_dir, data, args.tolerance, own_data, _progress(args))
        out["regressions"] += [{"kind": "checkpoint", **r} for r in out["comparison"]["regressions"]]
    if args.baseline:
        out["baseline"] = baseline_result(args.baseline, run, args.data, args.batches, metrics, args.tolerance)
        if out["baseline"]["regression"]:
            out["regressions"].append({"kind": "baseline", "step": run.step, "value": metrics["eval/loss"],
                                       "baseline_value": out["baseline"]["metrics"]["eval/loss"],
                                       "relative_change": out["baseline"]["relative_change"]})
    out["regressed"] = bool(out["regressions"])
    out["verdict"] = verdict(out)
    folder = Path(args.out) if args.out else run_dir
    folder.mkdir(parents=True, exist_ok=True)
    out["plots"] = []
    if out["comparison"] or out["baseline"]:
        out["plots"].append(str(plot_comparison(out, folder / runfolder.PLOTS_DIR / "eval_compare.png")))
    report = folder / runfolder.EVAL_REPORT_FILE
    report.write_text(render_report(out, folder))
    out["report"] = str(report)
    return Result(data=out, human=lambda: print(report.read_text()))


def _progress(args: argparse.Namespace):
    """A per-checkpoint hook printing `progress: eval ...` lines (every checkpoint is worth a line: each
    takes seconds to minutes); None when not wanted."""
    import time

    from ntjax.viz.progress_lines import duration, emit, line, line_stream, wants_lines

    if not wants_lines(args.progress_every):
        return None
    stream, t0 = line_stream(args.json), time.monotonic()

    def report(done: int, total: int, step: int, loss: float) -> None:
        elapsed = time.monotonic() - t0
        emit(line("eval", {"checkpoint": f"{done}/{total}", "step": step, "eval_loss": f"{loss:.4f}",
                           "elapsed": duration(elapsed), "eta": duration(elapsed / done * (total - done))}), stream)
    return report


def compare_all(run_dir: Path, data, tolerance: float, own_data: bool, progress=None) -> dict[str, Any]:
    """Every checkpoint of the run on the same data, with what the run logged, and the regressions."""
    from ntjax import evaluation as ev
    from ntjax.core.step import make_eval_step

    logged = ev.logged_evals(run_dir) if own_data else {}
    rows, step_fn = [], None
    steps = runfolder.checkpoint_steps(run_dir)
    for i, ckpt in enumerate(runfolder.iter_checkpoints(run_dir, steps)):
        step_fn = step_fn or make_eval_step(ckpt.graphdef, data.loss_fn)  # one compile for all checkpoints
        rows.append({"step": ckpt.step, "metrics": ev.evaluate_checkpoint(ckpt, data, step_fn),
                     "logged_loss": logged.get(ckpt.step, {}).get("eval/loss")})
        if progress is not None:
            progress(i + 1, len(steps), ckpt.step, rows[-1]["metrics"]["eval/loss"])
    return {"rows": rows, "regressions": ev.regressions(rows, tolerance=tolerance),
            "logged_curve": sorted((s, m["eval/loss"]) for s, m in logged.items() if "eval/loss" in m)}


def baseline_result(path: str, run, data_path: str | None, n_batches: int | None, metrics: dict,
                    tolerance: float) -> dict[str, Any]:
    """The baseline evaluated on the candidate's data (its windows, cut to the baseline's context length)."""
    from ntjax import evaluation as ev

    base = runfolder.load_checkpoint(path)
    if base.cfg.spec or run.cfg.spec:
        if base.cfg.spec != run.cfg.spec:
            raise NtjaxError("a spec run can only be compared with a run of the same spec")
        data = ev.eval_data(run.cfg, data_path, n_batches)
        data.loss_fn = ev.eval_data(base.cfg).loss_fn
    else:
        text = data_path if data_path is not None else run.cfg.data
        cut = dataclasses.replace(run.cfg, model=dataclasses.replace(run.cfg.model, seq_len=base.cfg.model.seq_len))
        data = ev.EvalData(ev.text_batches(cut, text, n_batches), "", ev.eval_data(base.cfg).loss_fn)
    base_metrics = ev.evaluate_checkpoint(base, data)
    return {"checkpoint": path, "step": base.step, "metrics": base_metrics,
            **ev.compare_to_baseline(metrics, base_metrics, tolerance)}


def verdict(out: dict[str, Any]) -> str:
    m = out["metrics"]
    text = (f"step {out['step']}: eval loss {m['eval/loss']:.4f} (ppl {m['eval/ppl']:.2f}, "
            f"token accuracy {m['eval/accuracy']:.1%})")
    if out.get("matches_logged") is not None:
        text += ", matching the logged value" if out["matches_logged"] else (
            f", but the run logged {out['logged']['eval/loss']:.4f} at this step (data or code changed?)")
    problems = []
    for r in out["regressions"]:
        if r["kind"] == "checkpoint":
            problems.append(f"step {r['step']} ({r['value']:.4f}) is {r['relative_change']:+.1%} worse than "
                            f"step {r['best_step']} ({r['best_value']:.4f})")
        else:
            problems.append(f"{r['relative_change']:+.1%} worse than the baseline ({r['baseline_value']:.4f})")
    if problems:
        return "REGRESSION: " + "; ".join(problems) + ". " + text
    if out["baseline"]:
        text += f"; {out['baseline']['relative_change']:+.1%} vs the baseline"
    return "OK: " + text


def plot_comparison(out: dict[str, Any], path: Path) -> Path:
    """Eval loss vs step: every checkpoint (regressions in red), the logged curve, the baseline."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmp = out["comparison"]
    if cmp:
        if cmp["logged_curve"]:
            s, v = zip(*cmp["logged_curve"])
            ax.plot(s, v, color="0.6", lw=1, label="logged while training")
        steps = [r["step"] for r in cmp["rows"]]
        ax.plot(steps, [r["metrics"]["eval/loss"] for r in cmp["rows"]], "o-", color="tab:blue",
                label="checkpoints (re-evaluated)")
        bad = cmp["regressions"]
        if bad:
            ax.plot([r["step"] for r in bad], [r["value"] for r in bad], "o", ms=11, mfc="none", mec="red",
                    mew=2, label="regression")
    else:
        ax.plot([out["step"]], [out["metrics"]["eval/loss"]], "o", color="tab:blue", label=f"step {out['step']}")
    if out["baseline"]:
        ax.axhline(out["baseline"]["metrics"]["eval/loss"], color="tab:orange", ls="--",
                   label=f"baseline (step {out['baseline']['step']})")
    ax.set_xlabel("step")
    ax.set_ylabel("eval loss")
    ax.set_title("eval loss by checkpoint")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    return path


def _fmt(x: float | None) -> str:
    return "—" if x is None else (f"{x:.4f}" if math.isfinite(x) else str(x))


def render_report(out: dict[str, Any], folder: Path) -> str:
    """eval_report.md (written into `folder`): the numbers, the comparison and the verdict."""
    lines = [f"# Eval report: {out['checkpoint']}", "", f"**Verdict:** {out['verdict']}", "",
             f"- Checkpoint: step {out['step']} of `{out['run_dir']}`" if out["run_dir"] else
             f"- Checkpoint: PyTorch state_dict, model from `{out['torch_model']}`", f"- Data: {out['data']}", "",
             "| metric | value | logged at this step |", "|---|---|---|"]
    logged = out.get("logged") or {}
    lines += [f"| {k} | {_fmt(v)} | {_fmt(logged.get(k))} |" for k, v in out["metrics"].items()]
    if out["comparison"]:
        lines += ["", "## Checkpoints of this run", "", "| step | eval loss | ppl | accuracy | logged loss | |",
                  "|---|---|---|---|---|---|"]
        flagged = {r["step"] for r in out["comparison"]["regressions"]}
        for r in out["comparison"]["rows"]:
            m = r["metrics"]
            lines.append(f"| {r['step']} | {_fmt(m['eval/loss'])} | {m['eval/ppl']:.2f} | {m['eval/accuracy']:.1%} "
                         f"| {_fmt(r['logged_loss'])} | {'**regression**' if r['step'] in flagged else ''} |")
    if out["baseline"]:
        b = out["baseline"]
        lines += ["", f"## Against the baseline `{b['checkpoint']}` (step {b['step']})", "",
                  "| metric | this | baseline | difference |", "|---|---|---|---|"]
        lines += [f"| {k} | {_fmt(out['metrics'][k])} | {_fmt(b['metrics'][k])} | {d:+.4f} |"
                  for k, d in b["delta"].items()]
    if out["plots"]:
        lines += ["", "## Plot", ""] + [f"![eval loss by checkpoint]({os.path.relpath(p, folder)})"
                                         for p in out["plots"]]
    return "\n".join(lines) + "\n"


def run_forgetting(args: argparse.Namespace) -> Result:
    from ntjax import evaluation as ev

    base_path, tuned_path = args.forgetting
    base, tuned = runfolder.load_checkpoint(base_path), runfolder.load_checkpoint(tuned_path)
    out = {"base_checkpoint": base_path, "tuned_checkpoint": tuned_path,
           **ev.forgetting(base, tuned, args.data, args.batches)}
    folder = Path(args.out) if args.out else runfolder.locate_checkpoint(tuned_path)[0]
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / FORGETTING_FILE
    report.write_text(render_forgetting(out))
    out["report"] = str(report)
    return Result(data=out, human=lambda: print(report.read_text()))


def _stats_rows(s: dict[str, Any]) -> list[str]:
    d = s["per_token_delta"]
    return [f"| loss (nats/token) | {s['base_loss']:.4f} | {s['tuned_loss']:.4f} | {s['loss_delta']:+.4f} "
            f"(95% CI {s['loss_delta_ci95'][0]:+.4f} to {s['loss_delta_ci95'][1]:+.4f}) |",
            f"| perplexity | {s['base_ppl']:.2f} | {s['tuned_ppl']:.2f} | {s['tuned_ppl'] - s['base_ppl']:+.2f} |",
            f"| token accuracy | {s['base_accuracy']:.1%} | {s['tuned_accuracy']:.1%} | "
            f"{s['tuned_accuracy'] - s['base_accuracy']:+.1%} |",
            "", f"Per-token loss change over {s['tokens']:,} tokens ({s['windows']} windows): median "
            f"{d['median']:+.4f}, p10 {d['p10']:+.4f}, p90 {d['p90']:+.4f}, p99 {d['p99']:+.4f}; "
            f"{s['fraction_worse']:.0%} of tokens worse, {s['fraction_worse_by_1_nat']:.1%} worse by over 1 nat, "
            f"{s['fraction_better']:.0%} better."]


def render_forgetting(out: dict[str, Any]) -> str:
    """forgetting_report.md: BASE vs TUNED on the original data (and on the fine-tuning data)."""
    t = out["tuned"]
    how = f"LoRA rank {t['lora_rank']} on {', '.join(t['lora_targets'])}" if t["lora_rank"] else "all weights"
    lines = [f"# Forgetting report: {out['tuned_checkpoint']} vs {out['base_checkpoint']}", "",
             f"**Verdict:** {out['verdict']}", "",
             f"- Base: step {out['base']['step']}; tuned: step {t['step']} ({how}, from {t['init_from']})",
             f"- Original data: held-out tail of {out['original_data']}", "",
             "## On the original data", "", "| | base | tuned | change |", "|---|---|---|---|"]
    lines += _stats_rows(out["original"])
    worst = out["original"]["most_forgotten_tokens"]
    if worst:
        lines += ["", "Tokens forgotten most (mean loss change): " +
                  ", ".join(f"{w['text']} {w['mean_delta']:+.3f} (n={w['count']})" for w in worst)]
    if out["new"]:
        lines += ["", f"## On the fine-tuning data ({out['new_data']})", "", "| | base | tuned | change |",
                  "|---|---|---|---|"] + _stats_rows(out["new"])
    return "\n".join(lines) + "\n"


def run_torch(args: argparse.Namespace) -> Result:
    from ntjax.evaluation import evaluate_state_dict

    if not args.data:
        raise NtjaxError("--torch-model needs --data FILE (the text to evaluate the PyTorch model on)")
    metrics = evaluate_state_dict(args.checkpoint, args.torch_model, args.data, args.seq_len,
                                  n_batches=args.batches or 8)
    out = {"checkpoint": str(args.checkpoint), "run_dir": None, "torch_model": args.torch_model, "step": None,
           "data":
           f"held-out last 10% of {args.data} (seq_len {args.seq_len})", "metrics": metrics, "logged": None,
           "matches_logged": None, "comparison": None, "baseline": None, "regressions": [], "regressed": False,
           "plots": []}
    out["verdict"] = "OK: " + (f"eval loss {metrics['eval/loss']:.4f} (ppl {metrics['eval/ppl']:.2f}, "
                               f"token accuracy {metrics['eval/accuracy']:.1%})")
    folder = Path(args.out) if args.out else Path(args.checkpoint).parent
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / runfolder.EVAL_REPORT_FILE
    report.write_text(render_report(out, folder))
    out["report"] = str(report)
    return Result(data=out, human=lambda: print(report.read_text()))
