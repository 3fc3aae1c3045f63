"""`ntjax debug`'s reasoning: a log-linear model over independent signals, one log-odds per cause.

For each cause c, log-odds against "the run is healthy" = prior_c + sum over signals s of w_cs * x_s, where
x_s in [0, 1] is a signal's strength (`ntjax.diagnostics.evidence`: each a pure function of the run with a sentence of
numbers and steps). Confidences are the softmax of those log-odds (with "healthy" at 0) at a fitted
temperature: probabilities that sum to at most 1 over the causes, calibrated on the diagnosis benchmark's
dev part (`benchmarks/diagnosis/fit_engine.py` fits the priors, weights and temperature into
`ntjax/data/diagnosis_weights.json`). Every point of confidence is a listed contribution; near-ties are
said, never broken silently; where the evidence a cause needs was not logged, the output says what to log.
"""
from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ntjax.diagnostics.context import RunContext, _find, read_context
from ntjax.diagnostics.detectors import Analysis
from ntjax.diagnostics.evidence import Signal, collect, missing_inputs, parse_symptoms
from ntjax.diagnostics.runtable import RunTable

__all__ = ["Hypothesis", "parse_symptoms", "config_evidence", "rank", "diagnose", "load_weights"]

WEIGHTS_FILE = Path(__file__).parents[1] / "data" / "diagnosis_weights.json"  # ntjax/data/
MIN_CONFIDENCE = 0.05  # causes below 5% are not listed
TIE_MARGIN = 0.05  # two causes within 5 points of confidence are a tie the evidence cannot break
CONFIDENT = 0.5  # below this, everything missing from the log is asked for
LR_FAR_ABOVE = 10.0  # the fixes use the size-based rule when the LR is 10x off it
LR_FAR_BELOW = 0.1
LR_ABSURD = 0.1
# Which missing inputs would have informed which cause (for "insufficient evidence: log ...").
# The causes `ntjax debug` can rank (CONTRACTS.md's vocabulary; the fitted weights cover exactly these).
CAUSES = ("lr_too_high", "lr_too_low", "insufficient_warmup", "gradient_explosion", "vanishing_gradients",
          "numerical_precision", "overfitting", "underfitting", "data_pipeline", "batch_size", "weight_decay",
          "attention_logit_growth", "output_logit_divergence", "initialization", "lr_schedule", "label_noise")
NEEDS = {"vanishing_gradients": ("layers",), "gradient_explosion": ("grad_norm", "layers"),
         "lr_too_high": ("train", "lr", "updates", "grad_norm"), "lr_too_low": ("lr", "updates"),
         "insufficient_warmup": ("lr",), "overfitting": ("eval", "train"), "underfitting": ("eval",),
         "data_pipeline": ("eval",), "label_noise": ("eval",), "weight_decay": ("config",),
         "initialization": ("config",), "lr_schedule": ("lr",), "batch_size": ("config",),
         "numerical_precision": ("grad_norm",)}


@dataclasses.dataclass
class Hypothesis:
    """A possible cause with its confidence, the numbers that support it, the fix and the next step (data)."""

    cause: str
    confidence: float
    evidence: list[str]
    fix: str
    next_step: dict  # {"command": "train"|"sweep"|"curves"|..., "args": {...}, "path"?}: the CLI renders it
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig fields the fix sets
    contributions: list[dict] = dataclasses.field(default_factory=list)
    log_odds: float = 0.0
    next: str = ""  # the rendered command line, set by the CLI (`ntjax.commands.debug.render_next`)

    def to_dict(self) -> dict:
        return {"cause": self.cause, "confidence": round(self.confidence, 3), "evidence": self.evidence,
                "fix": self.fix, "next": self.next, "next_step": self.next_step, "log_odds": round(self.log_odds, 2),
                "contributions": self.contributions}


@dataclasses.dataclass
class Diagnosis:
    """The ranked hypotheses and what the engine could and could not see."""

    hypotheses: list[Hypothesis]
    context: RunContext
    signals: list[Signal]
    p_healthy: float
    tie: str | None = None
    insufficient: list[str] = dataclasses.field(default_factory=list)


@lru_cache(maxsize=4)
def load_weights(path: str | None = None) -> dict:
    """The fitted priors, weights and temperature (package data)."""
    return json.loads(Path(path or WEIGHTS_FILE).read_text())


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


def _terms(spec: dict, signals: list[Signal]) -> tuple[float, list[dict]]:
    """A class's logit (prior plus weighted signals) and its rows."""
    z, rows = float(spec.get("prior", 0.0)), []
    for s in signals:
        w = spec["weights"].get(s.name)
        if w:
            rows.append({"signal": s.name, "value": round(s.value, 3), "weight": w,
                         "log_odds": round(w * s.value, 2), "evidence": s.evidence})
            z += w * s.value
    return z, rows


def scores(signals: list[Signal], weights: dict | None = None) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """Per cause: the log-odds against "healthy" and the contributions that make it up. The healthy class
    has its own terms (warning findings count against it); they enter each cause's log-odds negated."""
    weights = weights or load_weights()
    z_h, rows_h = _terms(weights.get("healthy", {"prior": 0.0, "weights": {}}), signals)
    against_healthy = [{**r, "signal": f"not healthy: {r['signal']}", "weight": -r["weight"],
                        "log_odds": -r["log_odds"]} for r in rows_h]
    logits, parts = {}, {}
    for cause, spec in weights["causes"].items():
        z, rows = _terms({"weights": spec["weights"]}, signals)
        logits[cause] = float(spec["prior"]) + z - z_h
        parts[cause] = rows + against_healthy
    return logits, parts


def probabilities(logits: dict[str, float], temperature: float) -> tuple[dict[str, float], float]:
    """Softmax over the causes and "healthy" (log-odds 0), at the fitted temperature."""
    names = list(logits)
    z = np.array([0.0] + [logits[n] for n in names]) / max(temperature, 1e-6)
    p = np.exp(z - z.max())
    p /= p.sum()
    return dict(zip(names, p[1:].tolist())), float(p[0])


def _train(preset: str | None, out: str, **args: Any) -> dict:
    """A next step that re-trains an ntjax run with `args` changed (flags in this order)."""
    return {"command": "train", "args": {**({"preset": preset} if preset else {}), **args, "out": out, "yes": True}}


def _sweep(param: dict, steps: Any, out: str) -> dict:
    return {"command": "sweep", "args": {"param": [param], "steps": int(steps), "out": out}}


def _curves(source: str) -> dict:
    return {"command": "curves", "path": source, "args": {}}


def _fixes(cause: str, cfg: dict[str, Any], table: RunTable, source: str,
           signals: frozenset[str] = frozenset()) -> tuple[str, dict, dict]:
    """The concrete fix, the next step as data ({"command", "args", "path"}: an ntjax command the CLI
    renders as a command line) and the config overrides."""
    lr = cfg.get("lr")
    lr = lr if isinstance(lr, (int, float)) and lr > 0 else None
    if lr is None:
        lr_s = table.get("train/lr")
        lr = float(np.nanmax(lr_s.value)) if lr_s is not None and len(lr_s.finite()) else None
    steps = cfg.get("steps") or (int(max(s.step[-1] for s in table.series.values())) if table.series else 1000)
    preset = cfg.get("preset") or None
    out = f"{source.rstrip('/')}_fix"
    if cfg.get("framework") != "ntjax" and cause in ("lr_too_high", "lr_too_low") and lr:
        # Not an ntjax run: `ntjax train` would train another model. Sweep the LR band the fix points to.
        lo, hi = (lr / 30, lr / 3) if cause == "lr_too_high" else (lr * 3, lr * 30)
        fix = f"peak LR {lr:.3g} -> {lo * 3:.3g}..{hi / 3:.3g}" if cause == "lr_too_high" else \
            f"peak LR {lr:.3g} -> {lr * 10:.3g}"
        if cause == "lr_too_high":
            fix += f"; warmup {cfg.get('warmup', '?')} -> ~5% of the run; clip grad norm at 1.0"
        return fix, _sweep({"name": "lr", "kind": "log", "low": lo, "high": hi}, 300, "sweeps/lr"), {}
    warm = max(100, int(0.05 * steps))
    n = cfg.get("n_params")
    rule = None
    if isinstance(n, (int, float)) and n > 0:
        from ntjax.core.config import smart_lr
        rule = smart_lr(int(n))
    if cause == "lr_too_high" and lr:
        new = rule if rule and lr >= LR_FAR_ABOVE * rule else (lr / 10 if lr >= LR_ABSURD else lr / 5)
        return (f"peak LR {lr:.3g} -> {new:.3g}; warmup {cfg.get('warmup', '?')} -> {warm} steps; clip grad norm "
                f"at 1.0", _train(preset, out, lr=new, warmup=warm), {"lr": new, "warmup": warm})
    if cause == "lr_too_low" and lr:
        new = rule if rule and lr <= LR_FAR_BELOW * rule else lr * 10
        return (f"peak LR {lr:.3g} -> {new:.3g} (then confirm with an LR range test)",
                _train(preset, out, lr=new), {"lr": new})
    if cause in ("lr_too_high", "lr_too_low"):
        return ("find the LR with a range test, then sweep around it",
                _sweep({"name": "lr", "kind": "log", "low": 1e-4, "high": 1e-2}, 300, "sweeps/lr"), {})
    if cause == "insufficient_warmup":
        return (f"warmup {cfg.get('warmup', '?')} -> {warm} steps (~5% of the run)",
                _train(preset, out, warmup=warm), {"warmup": warm})
    if cause == "weight_decay":
        return (f"weight_decay {cfg.get('weight_decay')} -> 0.1", _train(preset, out, weight_decay=0.1),
                {"weight_decay": 0.1})
    if cause == "gradient_explosion":
        return ("clip the global grad norm at 1.0 and lower the LR 2-3x",
                _train(preset, out, clip_norm=1.0, **({"lr": lr / 3} if lr else {})),
                {"clip_norm": 1.0, **({"lr": lr / 3} if lr else {})})
    if cause in ("attention_logit_growth", "output_logit_divergence"):
        return ("normalise queries and keys (QK-norm) and add a small z-loss (1e-4)",
                _train(preset, out, qk_norm=True, z_loss=1e-4), {"z_loss": 1e-4})
    if cause == "numerical_precision":
        return ("compute the loss/softmax in float32, add eps to divisions, skip non-finite updates",
                _train(preset, out, on_instability="rollback"), {"on_instability": "rollback"})
    if cause == "overfitting":
        return ("stop at the best eval step, add weight decay/dropout or more data",
                _sweep({"name": "weight_decay", "kind": "log", "low": 0.01, "high": 0.3}, steps, "sweeps/wd"), {})
    if cause == "underfitting":
        return ("a larger model or a longer run; less regularisation",
                _train(preset, out, steps=2 * int(steps)), {"steps": 2 * int(steps)})
    if cause == "vanishing_gradients":
        return ("check the dead layers' init and residual paths; pre-LN; lower depth or use a higher LR",
                _curves(source), {})
    if cause == "batch_size":
        return ("a larger batch (or gradient accumulation) to cut gradient noise",
                _sweep({"name": "batch_size", "kind": "choice", "values": [16, 32, 64]}, steps, "sweeps/bs"), {})
    if cause == "lr_schedule":
        return ("resume with the checkpoint's optimizer state and schedule position (the step counter and LR "
                "must continue, not restart)", _curves(source), {})
    if cause == "label_noise":
        return ("check the labels: a sample of (input, label) pairs by eye, label agreement, shuffling that "
                "moves labels apart from inputs", _curves(source), {})
    if cause == "initialization" and "zero_grad_layers" in signals:
        return ("re-initialise the layers whose gradient is exactly 0: all-zero (or constant) weights keep every "
                "unit identical, and ReLUs pushed negative (a large negative bias) stay dead; use the framework's "
                "default (Kaiming/Xavier) init, a zero or small positive bias, or leaky ReLU",
                _curves(source), {})
    if cause == "initialization":
        return ("scale the output layer init down (or zero it) so the first loss is about ln(vocab)",
                _curves(source), {})
    return ("check the data pipeline: labels aligned with inputs, shuffling, masking, no duplicated batch",
            _curves(source), {})


def diagnose(table: RunTable, analysis: Analysis, symptoms: set[str], source: str,
             weights: dict | None = None) -> Diagnosis:
    """Signals -> per-cause log-odds -> calibrated confidences, with ties and missing evidence named."""
    weights = weights or load_weights()
    ctx = read_context(table)
    signals = collect(table, analysis, ctx, symptoms)
    logits, parts = scores(signals, weights)
    probs, p_healthy = probabilities(logits, float(weights.get("temperature", 1.0)))
    cfg = config_evidence(table.meta.get("config"))
    out = []
    for cause, p in sorted(probs.items(), key=lambda kv: (-kv[1], kv[0])):
        # Listed only when this run's own evidence points to the cause: a signal for it, and its signals net
        # of what the same signals say for "healthy" (a finding's "not healthy: trouble" aside) in its
        # favour. The base rate alone never names a cause.
        specific = [c for c in parts[cause] if c["signal"] != "not healthy: trouble"]
        support = [c for c in specific if c["log_odds"] > 0 and not c["signal"].startswith("not healthy")]
        if p < MIN_CONFIDENCE or not support or sum(c["log_odds"] for c in specific) <= 0:
            continue
        prior = float(weights["causes"][cause]["prior"])
        rows = [{"signal": "prior", "value": 1.0, "weight": prior, "log_odds": round(prior, 2),
                 "evidence": f"base rate of {cause} among diagnosed runs"}] + \
            sorted(parts[cause], key=lambda c: -abs(c["log_odds"]))
        evidence = [f"{c['evidence']} [{c['log_odds']:+.1f} log-odds]" for c in rows[1:] if c["log_odds"] > 0]
        evidence += [f"against: {c['evidence']} [{c['log_odds']:+.1f} log-odds]" for c in rows[1:] if c["log_odds"] < 0]
        fix, nxt, overrides = _fixes(cause, cfg, table, source, frozenset(s.name for s in signals))
        out.append(Hypothesis(cause, p, evidence, fix, nxt, overrides, rows, logits[cause]))
    tie = None
    if len(out) >= 2 and out[0].confidence - out[1].confidence < TIE_MARGIN:
        tied = [h for h in out if out[0].confidence - h.confidence < TIE_MARGIN]
        tie = (f"tie: {' and '.join(h.cause for h in tied)} are within {TIE_MARGIN:.0%} "
               f"({', '.join(f'{h.confidence:.2f}' for h in tied)}); the evidence does not separate them (the order "
               f"is by confidence alone, alphabetical where equal). Try the cheapest fix first; if nothing "
               f"changes, the next")
        for h in tied:
            h.evidence.append(f"tied with {', '.join(t.cause for t in tied if t is not h)}: see `tie`")
    missing = missing_inputs(table, ctx)
    insufficient = []
    bad = [f for f in analysis.findings if f.severity != "info"]
    if bad or out:
        # what the top causes' checks need and the log lacks (always said: a confident cause can still be
        # settled by a metric the log does not hold); below CONFIDENT, everything missing is asked for
        wanted = [k for h in out[:3] for k in NEEDS.get(h.cause, ())]
        if not out or out[0].confidence < CONFIDENT:
            wanted += list(missing)
        insufficient = [f"insufficient evidence: log {missing[k]}" for k in dict.fromkeys(wanted) if k in missing]
        if not insufficient and not out:
            insufficient = ["insufficient evidence: the curves show " + ", ".join(
                dict.fromkeys(f.kind for f in bad)) + " but no signal points to a cause"]
    return Diagnosis(out, ctx, signals, p_healthy, tie, insufficient)


def rank(table: RunTable, analysis: Analysis, symptoms: set[str], source: str) -> list[Hypothesis]:
    """Causes ranked by calibrated confidence (see `diagnose` for the ties and missing evidence)."""
    return diagnose(table, analysis, symptoms, source).hypotheses
