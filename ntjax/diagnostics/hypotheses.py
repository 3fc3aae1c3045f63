"""`ntjax debug`'s reasoning: symptoms (free text) -> checks -> causes ranked by the evidence for each.

Each check reads one kind of evidence (curve findings, gradient norms, update ratios, attention logits,
the initial loss against ln(vocab), the run's config.json) and votes for causes with a weight. A cause's
confidence combines its votes as independent evidence: 1 - prod(1 - w).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterable

import numpy as np

from ntjax.diagnostics.detectors import Analysis
from ntjax.diagnostics.findings import fmt
from ntjax.diagnostics.runtable import RunTable

SYMPTOMS = {  # free-text pattern -> symptom
    "plateau": r"stuck|plateau|flat|not (decreas|improv|go(ing)? down|learn)|doesn'?t (decrease|learn|improve)",
    "nan": r"\bnan\b|\binf\b|non-?finite|overflow",
    "slow": r"slow|takes? (too )?long|barely",
    "spiky": r"spik|unstable|instab|jump|noisy|oscillat",
    "overfitting": r"overfit|val(idation)?[ _]loss (goes |is )?(up|ris|increas)|gap|memori",
    "diverging": r"diverg|explod|blow|increas|goes up|rising",
}
EXPLODING_GROWTH = 10.0  # the grad norm grew 10x from after warmup to the end: gradients explode
VANISHING_RATIO = 1e-3  # a layer's grad norm under 1e-3 of the median layer's: it stopped learning
UPDATE_RATIO_HIGH = 1e-2  # |update|/|param| per step above 1e-2 rewrites weights every ~100 steps
UPDATE_RATIO_LOW = 1e-5  # below 1e-5, weights barely move: the LR is too low (healthy ~1e-3)
# Attention logits of tens are normal once a model attends sharply (a byte model looking at the previous
# byte); the instability of Dehghani et al. 2023 and Wortsman et al. 2023 shows logits in the hundreds to
# thousands that are still climbing.
ATTN_LOGIT_HIGH = 200.0
ATTN_LOGIT_GROWTH = 2.0  # ...and still doubling over the second half of the run
INIT_LOSS_EXCESS = 1.2  # a first loss 20% above ln(vocab): the output logits start too large
LR_FAR_ABOVE = 10.0  # 10x the size-based LR rule: too high for AdamW at this size
LR_FAR_BELOW = 0.1  # a tenth of it: too low
WEIGHT_DECAY_HIGH = 1.0  # decoupled weight decay coefficients live in 0..0.3; 1 and above shrinks the weights
LR_ABSURD = 0.1  # an Adam LR of 0.1 or more is too high for almost any network


@dataclasses.dataclass
class Hypothesis:
    """A possible cause with its confidence, the numbers that support it, the fix and the next command."""

    cause: str
    confidence: float
    evidence: list[str]
    fix: str
    next: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig fields the fix sets

    def to_dict(self) -> dict:
        return {"cause": self.cause, "confidence": round(self.confidence, 3), "evidence": self.evidence,
                "fix": self.fix, "next": self.next}


def parse_symptoms(text: str | None) -> set[str]:
    """Map free text ("loss stuck at 2.3", "NaN after 2k steps") to symptom names."""
    low = (text or "").lower()
    return {name for name, pattern in SYMPTOMS.items() if re.search(pattern, low)}


def _find(tree: Any, keys: Iterable[str]) -> Any:
    """The first value under any of `keys` in a nested dict/list, searched breadth first."""
    keys = tuple(keys)
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for k in keys:
                if k in node and not isinstance(node[k], (dict, list)) and node[k] is not None:
                    return node[k]
            queue += list(node.values())
        elif isinstance(node, list):
            queue += node
    return None


def config_evidence(config: dict | None) -> dict[str, Any]:
    """lr, weight decay, warmup, optimizer, parameter count, vocab size from a config.json of any tool."""
    if not config:
        return {}
    found = {"lr": _find(config.get("optimizer", config), ("lr", "learning_rate")) or _find(config, ("lr",)),
             "weight_decay": _find(config, ("weight_decay",)), "warmup": _find(config, ("warmup", "warmup_steps")),
             "optimizer": _find(config.get("optimizer", {}), ("class",)) or _find(config, ("optimizer",)),
             "n_params": _find(config.get("model", config), ("n_params", "num_parameters", "parameters",
                                                              "param_count", "n_parameters")),
             "vocab_size": _find(config, ("vocab_size",)), "steps": _find(config, ("steps", "max_steps")),
             "preset": _find(config, ("preset",)), "framework": config.get("framework")}
    return {k: v for k, v in found.items() if v is not None}


class _Votes:
    """Evidence per cause: weights combine as independent evidence."""

    def __init__(self) -> None:
        self.items: dict[str, list[tuple[float, str]]] = {}

    def add(self, cause: str, weight: float, evidence: str) -> None:
        self.items.setdefault(cause, []).append((weight, evidence))

    def confidence(self, cause: str) -> float:
        return 1 - math.prod(1 - w for w, _ in self.items[cause])


def _median_tail(values: np.ndarray, fraction: float = 0.1) -> float:
    return float(np.median(values[-max(1, int(values.size * fraction)):]))


def _per_layer(table: RunTable, prefix: str) -> dict[str, float]:
    return {n.removeprefix(prefix): _median_tail(s.finite().value) for n, s in table.series.items()
            if n.startswith(prefix) and len(s.finite())}


def check_findings(analysis: Analysis, votes: _Votes) -> None:
    """Curve findings -> causes."""
    for f in analysis.findings:
        if f.severity == "info" and f.kind not in ("lr_loss_correlation",):
            continue
        e = f"{f.kind} in {f.metric}: {f.evidence}"
        if f.kind == "divergence":
            votes.add("lr_too_high", 0.6, e)
            votes.add("gradient_explosion", 0.3, e)
        elif f.kind == "nan":
            votes.add("numerical_precision", 0.4, e)
            votes.add("lr_too_high", 0.4, e)
        elif f.kind in ("oscillation", "spike"):
            votes.add("lr_too_high", 0.35, e)
            votes.add("batch_size", 0.15, e)
        elif f.kind == "lr_loss_correlation" and f.severity != "info":
            votes.add("lr_too_high", 0.6, e)
        elif f.kind == "short_warmup":
            votes.add("insufficient_warmup", 0.6, e)
        elif f.kind == "overfitting":
            votes.add("overfitting", 0.7, e)
        elif f.kind == "underfitting":
            votes.add("underfitting", 0.6, e)
        elif f.kind == "slow_convergence":
            votes.add("lr_too_low", 0.5, e)
        elif f.kind == "no_learning":
            votes.add("lr_too_low", 0.3, e)
            votes.add("data_pipeline", 0.3, e)
            votes.add("initialization", 0.2, e)
            if "ln " in f.evidence:
                votes.add("lr_too_high", 0.25, e + " (a too-high LR also collapses the output to uniform)")
        elif f.kind == "plateau":
            votes.add("lr_too_low", 0.3, e)
            votes.add("underfitting", 0.25, e)


def check_gradients(table: RunTable, votes: _Votes) -> None:
    """Global grad norm growth; per-layer norms (vanishing layers); per-layer update/param ratios."""
    g = table.get("train/grad_norm")
    if g is not None and len(g.finite()) >= 10:
        v = g.finite().value
        start = float(np.median(v[len(v) // 10: len(v) // 5 + 1]))
        end = _median_tail(v)
        if start > 0 and end / start >= EXPLODING_GROWTH:
            votes.add("gradient_explosion", 0.6, f"global grad norm grew {fmt(start)} -> {fmt(end)} "
                      f"(x{end / start:.0f})")
    layers = _per_layer(table, "grad_norm/")
    if len(layers) >= 3:
        mid = float(np.median(list(layers.values())))
        dead = {k: v for k, v in layers.items() if mid > 0 and v < VANISHING_RATIO * mid}
        if dead:
            names = ", ".join(sorted(dead)[:4])
            votes.add("vanishing_gradients", 0.6, f"{len(dead)} of {len(layers)} layers have grad norms under "
                      f"{VANISHING_RATIO:g} of the median layer ({fmt(mid)}): {names}")
    ratios = _per_layer(table, "update_ratio/")
    if ratios:
        med = float(np.median(list(ratios.values())))
        if med > UPDATE_RATIO_HIGH:
            votes.add("lr_too_high", 0.5, f"median update/param ratio {med:.2g} per step (healthy ~1e-3)")
        elif 0 < med < UPDATE_RATIO_LOW:
            votes.add("lr_too_low", 0.5, f"median update/param ratio {med:.2g} per step (healthy ~1e-3)")


def check_attention(table: RunTable, votes: _Votes) -> None:
    """Attention logits growing without bound: softmax saturates, then training destabilises."""
    for name, s in table.series.items():
        if name.startswith("attn_max_logit/") and len(s.finite()) >= 4:
            v = s.finite().value
            half = v.size // 2
            mid = float(np.median(v[max(0, half - max(1, v.size // 20)):half + max(1, v.size // 20)]))
            last = _median_tail(v)
            if last >= ATTN_LOGIT_HIGH and mid > 0 and last / mid >= ATTN_LOGIT_GROWTH:
                votes.add("attention_logit_growth", 0.6, f"{name} grew {fmt(mid)} -> {fmt(last)} over the second "
                                                         "half of the run and is still climbing")
                return


def check_initial_loss(table: RunTable, cfg: dict[str, Any], votes: _Votes) -> None:
    """A first loss far above ln(vocab): the output logits start too large (init or missing scaling)."""
    s = table.get("train/loss") or table.get("eval/loss")
    vocab = cfg.get("vocab_size")
    if s is None or not len(s.finite()) or not vocab:
        return
    first, uniform = float(s.finite().value[0]), math.log(float(vocab))
    if first > INIT_LOSS_EXCESS * uniform:
        e = f"first loss {fmt(first)} vs ln({vocab}) = {uniform:.2f}: the output logits start too large"
        votes.add("initialization", 0.5, e)
        votes.add("output_logit_divergence", 0.3, e)


def check_config(cfg: dict[str, Any], votes: _Votes) -> None:
    """The run's own settings: an LR far from the size-based rule, a huge weight decay, no warmup."""
    lr, n = cfg.get("lr"), cfg.get("n_params")
    if isinstance(lr, (int, float)) and lr > 0:
        if isinstance(n, (int, float)) and n > 0:
            from ntjax.core.config import smart_lr
            rule = smart_lr(int(n))
            if lr >= LR_FAR_ABOVE * rule:
                votes.add("lr_too_high", 0.6, f"config lr {lr:g} is {lr / rule:.0f}x the size-based rule "
                          f"{rule:.2g} for {int(n):,} parameters")
            elif lr <= LR_FAR_BELOW * rule:
                votes.add("lr_too_low", 0.6, f"config lr {lr:g} is 1/{rule / lr:.0f} of the size-based rule "
                          f"{rule:.2g} for {int(n):,} parameters")
        elif lr >= LR_ABSURD:
            votes.add("lr_too_high", 0.5, f"config lr {lr:g}: far above any Adam LR that trains")
    wd = cfg.get("weight_decay")
    if isinstance(wd, (int, float)) and wd >= WEIGHT_DECAY_HIGH:
        votes.add("weight_decay", 0.8, f"config weight_decay {wd:g}: weights shrink faster than they learn")
    if cfg.get("warmup") == 0:
        votes.add("insufficient_warmup", 0.2, "config warmup 0 steps")


def _fixes(cause: str, cfg: dict[str, Any], table: RunTable, source: str) -> tuple[str, str, dict]:
    """The concrete fix, the next command (a real ntjax command line) and the config overrides."""
    lr = cfg.get("lr")
    lr = lr if isinstance(lr, (int, float)) and lr > 0 else None
    if lr is None:
        lr_s = table.get("train/lr")
        lr = float(np.nanmax(lr_s.value)) if lr_s is not None and len(lr_s.finite()) else None
    steps = cfg.get("steps") or (int(max(s.step[-1] for s in table.series.values())) if table.series else 1000)
    preset = f" --preset {cfg['preset']}" if cfg.get("preset") else ""
    out = f"{source.rstrip('/')}_fix"
    if cfg.get("framework") != "ntjax" and cause in ("lr_too_high", "lr_too_low") and lr:
        # Not an ntjax run: `ntjax train` would train another model. Sweep the LR band the fix points to.
        lo, hi = (lr / 30, lr / 3) if cause == "lr_too_high" else (lr * 3, lr * 30)
        fix = f"peak LR {lr:.3g} -> {lo * 3:.3g}..{hi / 3:.3g}" if cause == "lr_too_high" else \
            f"peak LR {lr:.3g} -> {lr * 10:.3g}"
        if cause == "lr_too_high":
            fix += f"; warmup {cfg.get('warmup', '?')} -> ~5% of the run; clip grad norm at 1.0"
        return fix, f"ntjax sweep --param lr=log:{lo:.2g}:{hi:.2g} --steps 300 --out sweeps/lr", {}
    warm = max(100, int(0.05 * steps))
    n = cfg.get("n_params")
    rule = None
    if isinstance(n, (int, float)) and n > 0:
        from ntjax.core.config import smart_lr
        rule = smart_lr(int(n))
    if cause == "lr_too_high" and lr:
        new = rule if rule and lr >= LR_FAR_ABOVE * rule else (lr / 10 if lr >= LR_ABSURD else lr / 5)
        return (f"peak LR {lr:.3g} -> {new:.3g}; warmup {cfg.get('warmup', '?')} -> {warm} steps; clip grad norm "
                f"at 1.0", f"ntjax train{preset} --lr {new:.3g} --warmup {warm} --out {out} --yes",
                {"lr": new, "warmup": warm})
    if cause == "lr_too_low" and lr:
        new = rule if rule and lr <= LR_FAR_BELOW * rule else lr * 10
        return (f"peak LR {lr:.3g} -> {new:.3g} (then confirm with an LR range test)",
                f"ntjax train{preset} --lr {new:.3g} --out {out} --yes", {"lr": new})
    if cause in ("lr_too_high", "lr_too_low"):
        return ("find the LR with a range test, then sweep around it",
                "ntjax sweep --param lr=log:1e-4:1e-2 --steps 300 --out sweeps/lr", {})
    if cause == "insufficient_warmup":
        return (f"warmup {cfg.get('warmup', '?')} -> {warm} steps (~5% of the run)",
                f"ntjax train{preset} --warmup {warm} --out {out} --yes", {"warmup": warm})
    if cause == "weight_decay":
        return (f"weight_decay {cfg.get('weight_decay')} -> 0.1", f"ntjax train{preset} --weight-decay 0.1 "
                f"--out {out} --yes", {"weight_decay": 0.1})
    if cause == "gradient_explosion":
        return ("clip the global grad norm at 1.0 and lower the LR 2-3x",
                f"ntjax train{preset} --clip-norm 1.0{f' --lr {lr / 3:.3g}' if lr else ''} --out {out} --yes",
                {"clip_norm": 1.0, **({"lr": lr / 3} if lr else {})})
    if cause in ("attention_logit_growth", "output_logit_divergence"):
        return ("normalise queries and keys (QK-norm) and add a small z-loss (1e-4)",
                f"ntjax train{preset} --qk-norm --z-loss 1e-4 --out {out} --yes", {"z_loss": 1e-4})
    if cause == "numerical_precision":
        return ("compute the loss/softmax in float32, add eps to divisions, skip non-finite updates",
                f"ntjax train{preset} --on-instability rollback --out {out} --yes", {"on_instability": "rollback"})
    if cause == "overfitting":
        return ("stop at the best eval step, add weight decay/dropout or more data",
                f"ntjax sweep --param weight_decay=log:0.01:0.3 --steps {steps} --out sweeps/wd", {})
    if cause == "underfitting":
        return ("a larger model or a longer run; less regularisation",
                f"ntjax train{preset} --steps {2 * int(steps)} --out {out} --yes", {"steps": 2 * int(steps)})
    if cause == "vanishing_gradients":
        return ("check the dead layers' init and residual paths; pre-LN; lower depth or use a higher LR",
                f"ntjax curves {source}", {})
    if cause == "batch_size":
        return ("a larger batch (or gradient accumulation) to cut gradient noise",
                f"ntjax sweep --param batch_size=choice:16,32,64 --steps {steps} --out sweeps/bs", {})
    if cause == "initialization":
        return ("scale the output layer init down (or zero it) so the first loss is about ln(vocab)",
                f"ntjax curves {source}", {})
    return ("check the data pipeline: labels aligned with inputs, shuffling, masking, no duplicated batch",
            f"ntjax curves {source}", {})


def rank(table: RunTable, analysis: Analysis, symptoms: set[str], source: str) -> list[Hypothesis]:
    """Causes ranked by the evidence for them; symptoms boost the causes they point to."""
    cfg = config_evidence(table.meta.get("config"))
    votes = _Votes()
    check_findings(analysis, votes)
    check_gradients(table, votes)
    check_attention(table, votes)
    check_initial_loss(table, cfg, votes)
    check_config(cfg, votes)
    boosts = {"plateau": ("lr_too_low", "underfitting", "weight_decay", "data_pipeline"),
              "slow": ("lr_too_low",), "nan": ("numerical_precision", "lr_too_high", "gradient_explosion"),
              "spiky": ("lr_too_high", "insufficient_warmup", "batch_size"), "overfitting": ("overfitting",),
              "diverging": ("lr_too_high", "gradient_explosion", "insufficient_warmup")}
    for symptom in symptoms:
        for cause in boosts[symptom]:
            if cause in votes.items:
                votes.add(cause, 0.15, f"matches the reported symptom: {symptom}")
    # The config's own LR settles the direction: curve shapes that look "slow" under a 100x LR are chaos.
    config_says = [c for c in ("lr_too_high", "lr_too_low")
                   if any(e.startswith("config lr") for _, e in votes.items.get(c, []))]
    if len(config_says) == 1:
        votes.items.pop({"lr_too_high": "lr_too_low", "lr_too_low": "lr_too_high"}[config_says[0]], None)
    out = []
    for cause, items in votes.items.items():
        fix, nxt, overrides = _fixes(cause, cfg, table, source)
        evidence = [e for _, e in sorted(items, key=lambda x: -x[0])]
        out.append(Hypothesis(cause, votes.confidence(cause), list(dict.fromkeys(evidence)), fix, nxt, overrides))
    return sorted(out, key=lambda h: -h.confidence)
