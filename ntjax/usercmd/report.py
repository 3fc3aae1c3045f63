"""`report.md` and `plots/` for a run of the user's own command (`ntjax run`): the same sections as an
`ntjax train` report, from whatever the run logged (any format), with next steps that act on the user's
command rather than on ntjax's own model."""
from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from ntjax.viz.report import REPORT_FILE

# Flags a training script commonly takes for each hyperparameter (checked in this order).
FLAG_NAMES = {
    "lr": ("--lr", "--learning-rate", "--learning_rate", "--lr0", "--base-lr", "--base_lr"),
    "weight_decay": ("--weight-decay", "--weight_decay", "--wd"),
    "warmup": ("--warmup", "--warmup-steps", "--warmup_steps"),
    "clip_norm": ("--clip", "--clip-norm", "--clip_norm", "--max-grad-norm", "--max_grad_norm", "--grad-clip"),
    "steps": ("--steps", "--max-steps", "--max_steps", "--iters", "--num-steps"),
    "batch_size": ("--batch-size", "--batch_size", "--bs"),
}


def find_flag(argv: list[str], name: str) -> tuple[int, str, str] | None:
    """(index, flag, value) of the flag that sets hyperparameter `name` in argv (`--lr 0.1` or `--lr=0.1`)."""
    for flag in FLAG_NAMES.get(name, (f"--{name}",)):
        for i, a in enumerate(argv):
            if a == flag and i + 1 < len(argv):
                return i + 1, flag, argv[i + 1]
            if a.startswith(flag + "="):
                return i, flag, a.split("=", 1)[1]
    return None


def set_flag(argv: list[str], name: str, value: Any) -> list[str] | None:
    """argv with the flag for `name` set to `value`; None when the command has no such flag."""
    found = find_flag(argv, name)
    if found is None:
        return None
    i, flag, _ = found
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    new = list(argv)
    new[i] = f"{flag}={text}" if argv[i].startswith(flag + "=") else text
    return new


def template_with(argv: list[str], name: str) -> str | None:
    """The command as a template with `{name}` where its flag's value is: for `sweep --command`."""
    new = set_flag(argv, name, "{" + name + "}")
    if new is None:  # the script takes the flag but the command leaves it at its default: append it
        script = next((a for a in argv if a.endswith(".py") and Path(a).is_file()), None)
        text = Path(script).read_text(errors="replace") if script else ""
        flag = next((f for f in FLAG_NAMES.get(name, ()) if f'"{f}"' in text or f"'{f}'" in text), None)
        new = argv + [flag, "{" + name + "}"] if flag else None
    return shlex.join(new).replace("'{" + name + "}'", "{" + name + "}") if new else None


def _median(series) -> float | None:
    if series is None:
        return None
    s = series.finite()
    if not len(s):
        return None
    import numpy as np
    return float(np.median(s.value))


def render_user(run_dir: Path, outcome: Any, argv: list[str], table: Any, analysis: Any,
                plots: list[Path]) -> str:
    """The markdown text of a user-command run's report.md."""
    from ntjax.diagnostics.hypotheses import config_evidence

    cfg = config_evidence(table.meta.get("config")) if table is not None else {}
    status = {None: "completed" if outcome.exit_code == 0 else f"failed (exit {outcome.exit_code})",
              "instability": "stopped on a non-finite loss (--on-instability stop)",
              "no_metrics": "stopped: no metrics were logged", "callback": "stopped early (pruned)",
              "interrupted": "interrupted (Ctrl-C)"}[outcome.stopped]
    lines = [f"# Training report: {run_dir.name}", "",
             f"- Status: **{status}**" + (f" at step {outcome.last_step}" if outcome.last_step is not None else ""),
             f"- Command: `{shlex.join(argv)}`",
             f"- Framework: {cfg.get('framework', 'unknown')}; metrics read from {outcome.metrics_source}"]
    if cfg.get("n_params") or cfg.get("optimizer"):
        lines.append(f"- Model: {cfg.get('n_params', '?'):,} parameters; optimizer {cfg.get('optimizer', '?')} "
                     f"lr {cfg.get('lr', '?')}, weight decay {cfg.get('weight_decay', '?')}"
                     if isinstance(cfg.get("n_params"), int) else
                     f"- Optimizer: {cfg.get('optimizer', '?')} lr {cfg.get('lr', '?')}")
    lines += ["", "## Numbers", "", "| metric | value |", "|---|---|"]
    if table is not None:
        loss = table.get("train/loss")
        if loss is not None and len(loss):
            lines.append(f"| final train loss | {float(loss.value[-1]):.4f} (step {int(loss.step[-1])}) |")
        ev = table.get("eval/loss")
        if ev is not None and len(ev.finite()):
            f = ev.finite()
            i = int(f.value.argmin())
            lines.append(f"| best eval loss | {float(f.value[i]):.4f} (step {int(f.step[i])}, ppl "
                         f"{math.exp(min(float(f.value[i]), 50)):.2f}) |")
            lines.append(f"| last eval loss | {float(ev.value[-1]):.4f} (step {int(ev.step[-1])}) |")
        for name in sorted(table.series):
            if name.startswith("eval/") and name not in ("eval/loss",) and len(table.series[name]):
                s = table.series[name]
                lines.append(f"| {name} (last) | {float(s.value[-1]):.4g} (step {int(s.step[-1])}) |")
        thr = _median(table.get("train/throughput"))
        if thr:
            lines.append(f"| throughput | {thr:,.1f} samples/s (median) |")
    lines += [f"| wall time | {outcome.wall_s:.1f} s |", ""]
    lines += ["## Anomalies seen while training", ""]
    lines += [f"- step {e['step']}: {e['kind']} — {e['message']}" for e in outcome.events] or ["- none"]
    if analysis is not None:
        lines += ["", "## What the curves say (`ntjax curves`)", "", analysis.verdict, ""]
        lines += [f"- [{f.severity}] {f.kind} in {f.metric}: {f.evidence}" for f in analysis.findings]
    lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    lines += ["## Suggested next steps", ""]
    lines += [f"{i}. {t}" for i, t in enumerate(next_steps_user(run_dir, argv), 1)]
    return "\n".join(lines) + "\n"


def next_steps_user(run_dir: Path, argv: list[str]) -> list[str]:
    """Commands that act on this run and on the user's own command (never on ntjax's own model)."""
    out = str(run_dir)
    tips = [f"`ntjax curves {out}` — plot and detect patterns in this run",
            f"`ntjax debug {out}` — ranked causes if anything looks wrong (names the flag or line to change)"]
    tmpl = template_with(argv, "lr")
    if tmpl:
        tips.append(f"`ntjax lr-find --command \"{shlex.join(argv)}\"` — an LR range test of this script's "
                    "own model")
        tips.append(f"`ntjax sweep --command \"{tmpl}\" --param lr=log:1e-4:1e-1 --max-runs 8 "
                    f"--out {out}-sweep` — tune the LR of this script")
    else:
        tips.append("give the script an `--lr` flag (argparse) so that `ntjax sweep --command '... --lr {lr}'` "
                    "can tune it")
    return tips


def write_user_report(run_dir: Path, outcome: Any, argv: list[str], plots_too: bool = True) -> Path | None:
    """Draw the plots and write report.md for a user-command run; None when it logged nothing readable."""
    from ntjax.diagnostics.detectors import analyse
    from ntjax.readers import ReadError, read_run
    from ntjax.viz.plots import plot_training_report

    table = analysis = None
    plots: list[Path] = []
    if outcome.metrics_source:
        try:
            table = read_run(outcome.metrics_source if not outcome.metrics_source.endswith("metrics.jsonl")
                             else str(Path(outcome.metrics_source).parent))
        except ReadError:
            table = None
    if table is not None:
        analysis = analyse(table)
        if plots_too:
            plots = plot_training_report(table, run_dir / "plots")
    path = run_dir / REPORT_FILE
    path.write_text(render_user(run_dir, outcome, argv, table, analysis, plots))
    return path
