"""Experiment design: from a hypothesis and a few numbers, the plan a careful researcher would write.

The budget is C = 6·N·D per run (Kaplan et al. 2020), with attention's 12·L·T·d per token reported
beside it; wall time comes from a measured throughput when given, else from the device's dense peak at
an assumed MFU. Seeds: the per-arm count a two-sided two-sample t-test needs to detect `effect` at 5 %
significance with 80 % power, given the run-to-run standard deviation measured in earlier runs.
"""
from __future__ import annotations

import dataclasses
import math
import re

from ntjax.core.flops import attention_flops_per_token, peak_flops
from ntjax.errors import NtjaxError

DEFAULT_MFU = 0.4
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}

# Experiment types: trigger words, what to vary, what to hold fixed, what to watch, what goes wrong.
TYPES: dict[str, dict] = {
    "optimizer": {
        "words": ("optimizer", "adam", "adamw", "lion", "muon", "sgd", "sophia", "shampoo", "adafactor", "momentum"),
        "vary": ["optimizer", "peak LR (swept per optimizer)"],
        "control": ["model and init", "data order and tokens seen", "schedule shape and length", "batch size",
                    "weight decay (or swept per arm)", "gradient clipping"],
        "metrics": ["eval/loss at equal tokens", "train/loss", "train/grad_norm", "update_ratio/<layer>",
                    "wall-clock per step"],
        "pitfalls": ["tuning LR only for the baseline: sweep peak LR (and warmup) for every optimizer",
                     "short-horizon bias: an optimizer that wins at 10% of the run may lose at the end",
                     "comparing per step when steps cost different wall time (second-order methods)"],
    },
    "learning_rate": {
        "words": ("learning rate", " lr", "schedule", "warmup", "cosine", "wsd", "decay"),
        "vary": ["peak LR or schedule"],
        "control": ["model", "optimizer and betas", "batch size", "total steps", "data order"],
        "metrics": ["eval/loss", "train/loss", "train/lr", "train/grad_norm", "loss spikes"],
        "pitfalls": ["judging schedules mid-run: a cosine run is behind a constant-LR run until it decays",
                     "a schedule length that differs from the run length (cosine must end where the run ends)",
                     "too coarse an LR grid: use factors of 2-3 and bracket the optimum on both sides"],
    },
    "architecture": {
        "words": ("architecture", "layer", "attention", "norm", "activation", "swiglu", "gelu", "rope",
                  "width", "depth", "head", "mlp", "embedding", "qk"),
        "vary": ["the architectural change"],
        "control": ["non-embedding parameter count or FLOPs per token (say which)", "tokens seen", "data",
                    "optimizer", "schedule"],
        "metrics": ["eval/loss at equal tokens and equal FLOPs", "train/grad_norm", "act_std/<layer>",
                    "attn_entropy/<layer>", "tokens/s"],
        "pitfalls": ["unequal parameter counts or FLOPs: a bigger model wins for the wrong reason",
                     "keeping the baseline's LR for the new architecture (re-tune, width changes the optimum)",
                     "one scale: architectural gains often shrink or flip with size; test two scales"],
    },
    "data": {
        "words": ("data", "dataset", "corpus", "filter", "dedup", "mixture", "tokenizer", "curriculum", "epoch"),
        "vary": ["the data (source, filter, mixture or tokenizer)"],
        "control": ["model", "tokens seen", "optimizer and schedule", "a fixed held-out eval set"],
        "metrics": ["eval/loss on a fixed held-out set", "bits per byte when tokenizers differ",
                    "downstream accuracy", "train/eval gap (repetition)"],
        "pitfalls": ["comparing losses across tokenizers: report bits per byte instead",
                     "evaluating each arm on its own data: use one held-out set for every arm",
                     "train/eval leakage after filtering or deduplication",
                     "repeating small data for many epochs: beyond ~4 epochs extra passes are worth little "
                     "(Muennighoff et al. 2023)"],
    },
    "batch_size": {
        "words": ("batch", "critical batch", "accumulation"),
        "vary": ["batch size (with LR re-tuned or scaled)"],
        "control": ["tokens seen (not steps)", "model", "schedule shape"],
        "metrics": ["eval/loss at equal tokens", "steps to target loss", "train/grad_norm", "gradient noise scale"],
        "pitfalls": ["comparing at equal steps: a bigger batch sees more tokens",
                     "keeping the LR fixed across batch sizes (scale it, then sweep)",
                     "past the critical batch size more batch buys no fewer steps (McCandlish et al. 2018)"],
    },
    "scaling": {
        "words": ("scaling", "scale", "compute-optimal", "chinchilla", "isoflop", "power law", "tokens per param"),
        "vary": ["model size N and tokens D (IsoFLOP groups)"],
        "control": ["model family (shape rules)", "data", "tokenizer", "optimizer", "LR rule by size"],
        "metrics": ["final eval/loss per run", "N (non-embedding) and D per run", "FLOPs per run"],
        "pitfalls": ["one LR for every size: use a size-dependent LR (ntjax's smart default) or sweep per size",
                     "schedules not matched to each run's length (a cosine cut short inflates the loss)",
                     "extrapolating more than ~1-2 decades beyond the runs, without an uncertainty band",
                     "mixing total and non-embedding parameter counts"],
    },
    "regularization": {
        "words": ("dropout", "weight decay", "regulari", "overfit", "label smoothing", "augment"),
        "vary": ["the regulariser's strength"],
        "control": ["model", "tokens seen", "optimizer and LR", "data"],
        "metrics": ["eval/loss", "train/eval gap", "weight norms"],
        "pitfalls": ["judging regularisation in the one-epoch regime where nothing overfits",
                     "weight decay coupled to LR in AdamW: changing LR changes effective decay"],
    },
    "finetuning": {
        "words": ("fine-tun", "finetun", "lora", "instruction", "sft", "adapter", "transfer"),
        "vary": ["the fine-tuning method or its rank/LR"],
        "control": ["base checkpoint", "data and its order", "tokens seen", "eval set"],
        "metrics": ["eval/loss on the target task", "eval/loss on the pretraining distribution (forgetting)",
                    "task accuracy"],
        "pitfalls": ["reusing the pretraining LR (fine-tuning wants 10-100x lower, LoRA higher)",
                     "evaluating on data the base model has seen"],
    },
}
GENERAL_PITFALLS = ["comparing runs at unequal tokens (or unequal steps when batch sizes differ)",
                    "one seed per arm: run-to-run noise can exceed the effect",
                    "changing more than one thing between arms",
                    "deciding the success criterion after seeing the results"]


def parse_count(text: str | float | int | None) -> float | None:
    """`124M`, `10B`, `1.5e9`, `7e3k` -> a float; None passes through."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise NtjaxError(f"cannot read {text!r} as a count (examples: 124M, 10B, 1.5e9)")
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)


def classify(hypothesis: str) -> str:
    """The experiment type whose trigger words the hypothesis mentions most; `general` if none."""
    text = f" {hypothesis.lower()} "
    scores = {name: sum(text.count(w) for w in t["words"]) for name, t in TYPES.items()}
    best = max(scores, key=scores.get)
    return best if scores[best] > 0 else "general"


def seeds_needed(noise_std: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Runs per arm for a two-sided two-sample t-test to detect a difference `effect` in means at
    significance `alpha` with `power`, with per-run standard deviation `noise_std` (noncentral t)."""
    from scipy import stats

    if noise_std <= 0 or effect <= 0:
        raise NtjaxError("--noise-std and --effect must be positive")
    for n in range(2, 10_001):
        df = 2 * n - 2
        t_crit = stats.t.ppf(1 - alpha / 2, df)
        nc = effect / (noise_std * math.sqrt(2.0 / n))
        if stats.nct.sf(t_crit, df, nc) + stats.nct.cdf(-t_crit, df, nc) >= power:
            return n
    return 10_001


def estimate_shape(n_params: float) -> tuple[int, int]:
    """(n_layers, d_model) of a GPT-style model with ~N non-embedding parameters at GPT-2's aspect
    ratio d = 64·L (N ≈ 12·L·d²): used only for the attention term when the shape is not given."""
    d = (64 * n_params / 12.0) ** (1 / 3)
    return max(1, round(d / 64)), max(64, int(round(d / 64)) * 64)


@dataclasses.dataclass(frozen=True)
class PlanInputs:
    hypothesis: str = ""
    params: float | None = None
    tokens: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    runs: int = 1
    seeds: int | None = None
    throughput: float | None = None  # tokens per second per run, measured
    mfu: float = DEFAULT_MFU
    device: str | None = None
    n_devices: int = 1
    noise_std: float | None = None
    effect: float | None = None
    n_layers: int | None = None
    d_model: int | None = None


def _tokens(p: PlanInputs) -> float:
    if p.tokens is not None:
        return p.tokens
    if p.steps and p.batch_size and p.seq_len:
        return float(p.steps) * p.batch_size * p.seq_len
    raise NtjaxError("give --tokens, or --steps with --batch-size and --seq-len")


def budget(p: PlanInputs, n_runs: int) -> dict:
    """FLOPs per run (6ND exactly), attention FLOPs beside it, totals and wall time."""
    if p.params is None or p.params <= 0:
        raise NtjaxError("give --params N (the model's parameter count, e.g. 124M)")
    d = _tokens(p)
    if d <= 0:
        raise NtjaxError("the token count must be positive")
    out: dict = {"n_params": p.params, "tokens_per_run": d, "flops_per_run": 6 * p.params * d,
                 "tokens_per_param": d / p.params}
    attention = None
    if p.seq_len:
        shape_given = p.n_layers is not None and p.d_model is not None
        layers, width = (p.n_layers, p.d_model) if shape_given else estimate_shape(p.params)
        attention = attention_flops_per_token(layers, p.seq_len, width) * d
        out["attention_flops_per_run"] = attention
        out["attention_shape"] = {"n_layers": layers, "d_model": width, "estimated": not shape_given}
    out["runs_total"] = n_runs
    out["total_flops"] = out["flops_per_run"] * n_runs
    per_run_flops = out["flops_per_run"] + (attention or 0.0)
    if p.throughput:
        seconds = d / p.throughput
        out["time_basis"] = f"measured throughput {p.throughput:.4g} tokens/s per run"
    elif p.device:
        try:
            peak = peak_flops(p.device)
        except KeyError as e:
            raise NtjaxError(str(e).strip("'\"")) from None
        if not 0 < p.mfu <= 1:
            raise NtjaxError(f"--mfu must lie in (0, 1] (got {p.mfu})")
        seconds = per_run_flops / (peak * p.mfu * p.n_devices)
        out["time_basis"] = (f"{p.n_devices}x {p.device} at {peak:.3g} FLOP/s dense peak, MFU {p.mfu:g} "
                             "(6ND + attention)")
    else:
        seconds = None
        out["time_basis"] = "unknown: give --throughput (tokens/s, from `ntjax train` logs) or --device"
    out["wall_time_hours_per_run"] = None if seconds is None else seconds / 3600
    out["wall_time_hours"] = None if seconds is None else seconds * n_runs / 3600
    return out


def checklist(kind: str, seeds: int) -> list[str]:
    """The ordered steps from hypothesis to write-up."""
    return [
        "Write the hypothesis, the predicted effect size and the decision rule before any run",
        "Fix the eval set, metric and token budget every arm is compared at",
        f"Reproduce the baseline and measure run-to-run noise ({max(seeds, 2)} seeds; "
        "`ntjax curves` on each run)",
        "Smoke-test each arm for ~1% of the budget: loss falls, no NaN (`ntjax debug` if not)",
        "Sweep peak LR for every arm, not only the baseline (`ntjax sweep --param lr=log:...`)"
        if kind != "learning_rate" else "Bracket the LR optimum on both sides with a log grid",
        f"Run every arm at the same tokens with {seeds} seeds each, logging to metrics.jsonl",
        "Watch the runs live (`ntjax monitor`) and stop diverged ones early, recording why",
        "Compare mean ± std of final eval loss; test the difference against the noise (t-test)",
        "Record results, plots, configs and the decision in the lab notebook",
    ]


def make_plan(p: PlanInputs) -> dict:
    """The whole plan as a JSON-ready dict (the `ntjax plan --json` object)."""
    kind = classify(p.hypothesis)
    seeds_info: dict = {}
    if p.noise_std is not None and p.effect is not None:
        n = seeds_needed(p.noise_std, p.effect)
        seeds_info = {"needed_per_arm": n, "basis": f"two-sided t-test, alpha 0.05, power 0.8, noise std "
                                                   f"{p.noise_std:g}, effect {p.effect:g}"}
    seeds = p.seeds or seeds_info.get("needed_per_arm") or 3
    seeds_info.setdefault("basis", "no noise estimate: 3 seeds per arm; measure the noise with the baseline's "
                                   "seeds, then pass --noise-std and --effect")
    seeds_info["per_arm"] = seeds
    info = TYPES.get(kind, {"vary": ["the one factor the hypothesis names"],
                            "control": ["model", "data", "tokens seen", "optimizer and schedule", "eval set"],
                            "metrics": ["eval/loss", "train/loss", "train/grad_norm"], "pitfalls": []})
    n_runs = p.runs * seeds
    plan = {"hypothesis": p.hypothesis, "experiment_type": kind,
            "variables": {"vary": info["vary"], "control": info["control"]},
            "metrics": info["metrics"], "seeds": seeds_info, "runs": p.runs}
    plan.update(budget(p, n_runs))
    plan["checklist"] = checklist(kind, seeds)
    plan["pitfalls"] = info["pitfalls"] + GENERAL_PITFALLS
    return plan


def _fmt(x: float | None, unit: str = "") -> str:
    return "unknown" if x is None else f"{x:.3g}{unit}"


def markdown(plan: dict) -> str:
    """The plan as lab-notebook markdown."""
    lines = [f"# Experiment plan: {plan['hypothesis'] or '(no hypothesis given)'}", "",
             f"Type: **{plan['experiment_type']}**. Arms: {plan['runs']}, seeds per arm: "
             f"{plan['seeds']['per_arm']} ({plan['seeds']['basis']}).", "", "## Variables", "",
             "Vary: " + "; ".join(plan["variables"]["vary"]) + ".", "",
             "Hold fixed: " + "; ".join(plan["variables"]["control"]) + ".", "", "## Metrics", ""]
    lines += [f"- {m}" for m in plan["metrics"]]
    lines += ["", "## Compute budget", "", "| quantity | value |", "|---|---|",
              f"| parameters N | {plan['n_params']:.4g} |", f"| tokens per run D | {plan['tokens_per_run']:.4g} |",
              f"| tokens per parameter | {plan['tokens_per_param']:.3g} |",
              f"| FLOPs per run (6ND) | {plan['flops_per_run']:.4g} |"]
    if "attention_flops_per_run" in plan:
        est = " (shape estimated)" if plan["attention_shape"]["estimated"] else ""
        lines.append(f"| attention FLOPs per run{est} | {plan['attention_flops_per_run']:.4g} |")
    lines += [f"| runs in total | {plan['runs_total']} |", f"| total FLOPs (6ND) | {plan['total_flops']:.4g} |",
              f"| wall time per run | {_fmt(plan['wall_time_hours_per_run'], ' h')} |",
              f"| wall time, all runs in sequence | {_fmt(plan['wall_time_hours'], ' h')} |", "",
              f"Time basis: {plan['time_basis']}.", "", "## Checklist", ""]
    lines += [f"{i}. [ ] {step}" for i, step in enumerate(plan["checklist"], 1)]
    lines += ["", "## Pitfalls", ""] + [f"- {x}" for x in plan["pitfalls"]]
    lines += ["", "## Results", "", "| arm | seed | final eval/loss | notes |", "|---|---|---|---|", ""]
    return "\n".join(lines)
