"""The run's `report.md` and `plots/`: final numbers, best eval, throughput, anomalies, next steps."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ntjax.core.runfolder import PLOTS_DIR, REPORT_FILE


def next_steps(result: Any, unigram: float | None) -> list[str]:
    """Concrete suggestions from the run's own numbers; each is a command that works as written."""
    out = str(result.out_dir)
    tips = [f"`ntjax curves {out}` — plot and detect patterns (spikes, plateaus, overfitting) in this run",
            f"`ntjax debug {out}` — ranked hypotheses if anything looks wrong"]
    if result.diverged:
        tips.insert(0, f"The run diverged: find a stable LR with `ntjax lr-find --out {out}-lrfind`, then retrain "
                       "with about a third of the suggested maximum.")
    elif result.eval_history and len(result.eval_history) >= 2:
        (s0, l0), (s1, l1) = result.eval_history[-2], result.eval_history[-1]
        if l1 > l0:
            tips.insert(0, f"Eval loss rose from {l0:.4f} (step {s0}) to {l1:.4f} (step {s1}): the best "
                           f"checkpoint is step {result.best_eval_step}; more data or regularisation beats more steps.")
        else:
            gain = (l0 - l1) / max(s1 - s0, 1) * 1000
            tips.insert(0, f"Eval loss was still falling ({gain:.4f} per 1k steps at the end): a longer run "
                           f"(`--steps {2 * result.final_step}`) should help; check with `ntjax curves {out}`.")
    tips.append(f"`ntjax sweep --param lr=log:1e-4:1e-2 --steps 200 --max-runs 8 --out {out}-sweep` — tune the "
                "peak LR for this model before scaling it up")
    return tips


def render(result: Any, config: dict, plots: list[Path], analysis: Any = None) -> str:
    """The markdown text of report.md."""
    cfg = config.get("train", {})
    data = config.get("data", {})
    unigram = data.get("unigram_entropy")
    lines = [f"# Training report: {result.out_dir.name}", ""]
    status = "diverged (non-finite loss)" if result.diverged else "completed"
    lines += [f"- Status: **{status}** at step {result.final_step} of {cfg.get('steps')}"
              + (f" (resumed from step {result.resumed_from})" if result.resumed_from else ""),
              f"- Model: {config.get('model', {}).get('class', '?')}, "
              f"{config.get('model', {}).get('n_params', 0):,} parameters",
              f"- Optimizer: {cfg.get('optimizer')} peak LR {cfg.get('lr'):.3g}, {cfg.get('schedule')} schedule, "
              f"warmup {cfg.get('warmup')} steps, weight decay {cfg.get('weight_decay')}, "
              f"batch {cfg.get('batch_size')} (micro-batch {cfg.get('micro_batch_size')})",
              f"- Data: {data.get('source', '?')}; eval on {data.get('held_out', 'the given eval set')}", ""]
    lines += ["## Numbers", "", "| metric | value |", "|---|---|",
              f"| final train loss | {result.final_train_loss:.4f} |"]
    if result.best_eval_step is not None:
        lines.append(f"| best eval loss | {result.best_eval_loss:.4f} (step {result.best_eval_step}, "
                     f"ppl {math.exp(min(result.best_eval_loss, 50)):.2f}) |")
        lines.append(f"| last eval loss | {result.eval_history[-1][1]:.4f} (step {result.eval_history[-1][0]}) |")
    if unigram:
        lines.append(f"| unigram entropy of the data | {unigram:.4f} nats (a context-free model's loss) |")
    lines += [f"| throughput | {result.tokens_per_s:,.0f} tokens/s |", f"| wall time | {result.wall_s:.1f} s |", ""]
    lines += ["## Anomalies seen while training", ""]
    lines += [f"- step {e['step']}: {e['kind']} — {e['message']}" for e in result.events] or ["- none"]
    if analysis is not None:
        lines += ["", "## What the curves say (`ntjax curves`)", "", analysis.verdict, ""]
        lines += [f"- [{f.severity}] {f.kind} in {f.metric}: {f.evidence}" for f in analysis.findings]
    lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    lines += ["## Suggested next steps", ""] + [f"{i}. {t}" for i, t in enumerate(next_steps(result, unigram), 1)]
    return "\n".join(lines) + "\n"


def write_report(result: Any, config: dict, table: Any, analysis: Any) -> Path:
    """Draw the run's plots into `plots/` and write `report.md` from the analysis it is handed."""
    from ntjax.viz.plots import plot_training_report

    out = Path(result.out_dir)
    plots = plot_training_report(table, out / PLOTS_DIR)
    path = out / REPORT_FILE
    path.write_text(render(result, config, plots, analysis))
    return path
