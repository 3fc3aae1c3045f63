"""Signals: the independent pieces of evidence `ntjax debug` combines. Each is a pure function of the run
(its table, the curve analysis and the context) returning a strength in [0, 1] and a sentence with the
numbers and steps, or None when it does not apply. A signal that depends on context says which context
it assumed (a size-based LR rule only for Adam-type optimizers; no LR rule at all for plain SGD).
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import numpy as np

from ntjax.diagnostics.context import RunContext
from ntjax.diagnostics.detectors import Analysis
from ntjax.diagnostics.detectors import smoothing as sm
from ntjax.diagnostics.findings import Finding, fmt
from ntjax.diagnostics.runtable import RunTable

EXPLODING_GROWTH = 10.0  # the grad norm grew 10x from after warmup to the end
VANISHING_RATIO = 1e-3  # a weight matrix's grad norm under 1e-3 of the median matrix's
UPDATE_RATIO_HIGH = 1e-2  # |update|/|param| per step above 1e-2 rewrites weights every ~100 steps
UPDATE_RATIO_LOW = 1e-4  # below 1e-4 weights barely move (healthy ~1e-3)
ATTN_LOGIT_HIGH = 200.0  # logits in the hundreds and still doubling (Dehghani et al. 2023)
ATTN_LOGIT_GROWTH = 2.0
INIT_LOSS_EXCESS = 1.05  # first loss 5% above the uniform baseline: the output logits start too large
ADAM_LR_ABSURD = 0.03  # an Adam-type LR of 0.03 or more is too high for almost any network
SGD_LR_HIGH_UNCLIPPED = 1.0  # plain SGD above 1 without clipping (with clipping, lr 20 on an LSTM is fine)
DECOUPLED_WD_HIGH = 1.0  # AdamW-style decay coefficients live in 0..0.3
WD_EFOLDS_FORGET = 5  # e-folds of pure decay over a run: the weights forget what they learned
# The largest weight decay in common use per optimizer family: decoupled AdamW-type 0.3 (Lion, with 3-10x
# lower LRs, up to 3), coupled L2 with SGD 1e-2 (usually 1e-4..5e-4).
WD_USUAL = {"adam": 0.3, "adafactor": 0.3, "lion": 3.0, "sgd": 1e-2}
WARMUP_LR_BAND = (1.0, 10.0)  # LR / the size rule where missing warmup, not the LR itself, is the suspect
EARLY_STALL = 1 / 3  # a loss that goes wrong within the first third of the run (eval: its first few points)
WD_SHRINK_HIGH = 1e-3  # lr * wd: weights lose 0.1% per step to decay (half-life ~700 steps); typical 3e-5
EPS_LARGE = 1e-4  # Adam eps this large turns it into SGD with a tiny LR
NAN_BLOWUP = 10.0  # ...or 10x above the first loss: a blow-up
NAN_RISE = 1.5  # the last points before a NaN 1.5x above the loss before them: it blew up first
EVAL_BELOW_TRAIN = 0.9  # eval loss under 90% of train loss
NOISE_HIGH = 0.15  # per-step scatter around the trend above 15% of the starting loss: the batch is tiny
TINY_BATCH = 2  # a batch of 1-2 examples: each step follows one example's gradient
PARAMS_PER_OUTPUT_TINY = 50.0  # parameters per output unit (class or vocabulary entry) below this: too small
AT_CHANCE = 0.95  # eval loss ending within 5% of the trivial baseline: nothing generalisable was learned
TRACKS_TRAIN = 0.07  # eval within 7% of train over the run's second half while train fell: no generalisation gap
MEMORISE_DROP = 0.9  # train loss fell 90% while eval did not improve at all: the model saw one batch
SAME_BATCH_ROUGH = 0.01  # median |2nd difference| of log train loss per step: minibatch streams scatter 0.02-0.5
SYMPTOMS = {  # free-text pattern -> symptom
    "plateau": r"stuck|plateau|flat|not (decreas|improv|go(ing)? down|learn)|doesn'?t (decrease|learn|improve)",
    "nan": r"\bnan\b|\binf\b|non-?finite|overflow",
    "slow": r"slow|takes? (too )?long|barely",
    "spiky": r"spik|unstable|instab|jump|noisy|oscillat",
    "overfitting": r"overfit|\b(e?val(idation)?|test|held-?out)[ _](loss|error|perplexity|ppl)\b( \w+){0,2} "
                   r"(up|ris|increas|worse|climb)|gap|memori",
    "diverging": r"diverg|explod|blow|increas|goes up|rising",
    "resume": r"resum|restart|checkpoint|reload",
    "too_good": r"too good|suspicious|leak|as low as (the )?train|as fast as (the )?train|"
                r"(too|unrealistically|implausibly|surprisingly) low",
}
NORM_OR_BIAS = re.compile(r"(^|[._/])(ln\w*|norm\w*|layernorm|bn\d*|bias|scale|gamma|beta)($|[._/])", re.I)
EMBEDDING = re.compile(r"emb|wte|wpe|encoder\.weight$|token", re.I)


@dataclasses.dataclass(frozen=True)
class Signal:
    """One piece of evidence: its name, strength in [0, 1], and the sentence with numbers that shows it."""

    name: str
    value: float
    evidence: str


Context = tuple[RunTable, Analysis, RunContext, set]
SignalFn = Callable[[RunTable, Analysis, RunContext, set], "Signal | list[Signal] | None"]


def parse_symptoms(text: str | None) -> set[str]:
    """Map free text ("loss stuck at 2.3", "NaN after 2k steps") to symptom names."""
    low = (text or "").lower()
    return {name for name, pattern in SYMPTOMS.items() if re.search(pattern, low)}


def _finding(analysis: Analysis, kind: str, *, warning: bool = True, metric: str | None = None) -> Finding | None:
    for f in analysis.findings:
        if f.kind == kind and (not warning or f.severity != "info") and (metric is None or f.metric == metric):
            return f
    return None


def _say(f: Finding) -> str:
    return f"{f.kind} in {f.metric} at step {f.start_step}: {f.evidence}"


def _at_resume(f: Finding | None, ctx: RunContext, table: RunTable) -> bool:
    """A curve event that starts at a resume point is the resume's doing, not a cause of its own."""
    if f is None or f.start_step is None or not ctx.resumes:
        return False
    span = max((float(s.step[-1]) for s in table.series.values() if len(s)), default=1.0)
    return any(abs(f.start_step - r.step) <= max(3, 0.03 * span) for r in ctx.resumes if r.kind == "restart")


def _from_finding(kind: str, name: str | None = None, train_only: bool = False) -> SignalFn:
    def signal(table, analysis, ctx, symptoms):
        f = _finding(analysis, kind, metric="train/loss" if train_only else None)
        if kind != "resume_regression" and _at_resume(f, ctx, table):
            return None
        if kind in ("plateau", "underfitting") and _decayed_early(analysis):
            return None  # explained by the LR schedule
        return Signal(name or kind, 1.0, _say(f)) if f else None
    signal.__name__ = name or kind
    return signal


def _tail(values: np.ndarray, fraction: float = 0.1, at_least: int = 1) -> float:
    """Median of the last `fraction` of the values (at least `at_least` of them)."""
    return float(np.median(values[-max(at_least, int(values.size * fraction)):]))


def _ends(values: np.ndarray, at_least: int = 1) -> tuple[float, float]:
    """Medians of the first and the last 5% of the values (at least `at_least` each): where a curve
    started and where it ended, robust to single noisy steps."""
    head = max(at_least, values.size // 20)
    return float(np.median(values[:head])), float(np.median(values[-head:]))


def _layers(table: RunTable, prefix: str) -> dict[str, np.ndarray]:
    """Each logged layer's finite values under `prefix` (`grad_norm/`, `update_ratio/`), keyed by the
    layer's own name (the prefix removed, so name rules such as NORM_OR_BIAS see only the layer)."""
    return {n.removeprefix(prefix): s.finite().value for n, s in table.series.items()
            if n.startswith(prefix) and len(s.finite())}


def _per_layer(table: RunTable, prefix: str) -> dict[str, float]:
    """Each layer's value at the end of the run."""
    return {k: _tail(v) for k, v in _layers(table, prefix).items()}


# --- curve shape
def sig_trouble(table, analysis, ctx, symptoms):
    """Any warning or critical finding: whatever the cause, the run is not healthy."""
    bad = [f for f in analysis.findings if f.severity != "info"]
    if not bad:
        return None
    kinds = ", ".join(dict.fromkeys(f"{f.kind} ({f.severity})" for f in bad))
    return Signal("trouble", 1.0, f"the curves are not healthy: {kinds}")


def sig_divergence(table, analysis, ctx, symptoms):
    f = _finding(analysis, "divergence")
    if f is None or _at_resume(f, ctx, table):
        return None
    if f.metric.startswith("eval") and table.get("train/loss") is None:
        return Signal("eval_rise_only", 1.0, _say(f) + " (only eval loss is logged: a diverging run and an "
                                                      "overfitting one look the same here)")
    early = f.start_step is not None and ctx.steps and f.start_step <= 0.1 * ctx.steps
    return Signal("divergence", 1.0, _say(f) + (" (from the first steps)" if early else ""))


def sig_trivial(table, analysis, ctx, symptoms):
    f = _finding(analysis, "trivial_solution")
    return Signal("trivial_solution", 1.0, _say(f)) if f else None


def sig_no_learning(table, analysis, ctx, symptoms):
    f = _finding(analysis, "no_learning")
    return Signal("no_learning", 1.0, _say(f)) if f else None


def sig_noise(table, analysis, ctx, symptoms):
    """Per-step scatter of the train loss around its trend, in units of its starting level: a tiny batch
    makes it a large share of the loss itself. (In log units a loss near 0 always scatters widely; in
    units of the starting loss it does not.)"""
    s = table.get("train/loss")
    if s is None or len(s.finite()) < 50:
        return None
    v = s.finite().value
    start = _ends(v, at_least=3)[0]
    if start <= 0:
        return None
    resid = v - sm.rolling_median(v, sm.smooth_window(v.size, 0.05, 301))
    rel = sm.robust_sigma(resid) / start
    if rel < NOISE_HIGH:
        return None
    return Signal("loss_noise", float(min(1.0, rel / (2 * NOISE_HIGH))),
                  f"train loss scatters {fmt(sm.robust_sigma(resid))} step to step around its trend, "
                  f"{100 * rel:.0f}% of its starting level {fmt(start)} (healthy batches: under "
                  f"{100 * NOISE_HIGH:.0f}%)")


def sig_memorise(table, analysis, ctx, symptoms):
    """Train loss collapses while eval never improves: the model memorised a few batches."""
    tr, ev = table.get("train/loss"), table.get("eval/loss")
    if tr is None or ev is None or len(tr.finite()) < 10 or len(ev.finite()) < 3:
        return None
    e = ev.finite().value
    t0, t1 = _ends(tr.finite().value)
    if t0 <= 0 or 1 - t1 / t0 < MEMORISE_DROP or float(np.min(e)) < 0.85 * float(e[0]):
        return None
    return Signal("train_memorises", 1.0, f"train loss fell {fmt(t0)} -> {fmt(t1)} (-{100 * (1 - t1 / t0):.0f}%) "
                  f"while eval loss never went below {fmt(float(np.min(e)))} (started at {fmt(float(e[0]))})")


def sig_same_batch(table, analysis, ctx, symptoms):
    """A per-step train loss that falls 90% with no batch-to-batch scatter: every step saw the same examples
    (a loader repeating one batch, or full-batch training on a small set). A stream of fresh minibatches
    makes the per-step log loss jump by 0.02-0.5 step to step; one repeated batch makes it a smooth
    function of the step. Only for per-step logs (averaging over a logging interval smooths any curve)."""
    tr = table.get("train/loss")
    if tr is None or len(tr.finite()) < 50:
        return None
    tr = tr.finite()
    if float(np.median(np.diff(tr.step))) > 2:
        return None
    v = np.log(np.maximum(tr.value, 1e-12))
    first, last = _ends(v, at_least=3)
    drop = first - last
    rough = float(np.median(np.abs(np.diff(v, 2))))
    if drop < math.log(1 / (1 - MEMORISE_DROP)) or rough >= SAME_BATCH_ROUGH:
        return None
    return Signal("same_batch", 1.0, f"train loss fell {math.exp(drop):.0f}x with a step-to-step scatter of "
                                     f"{rough:.1e} in log units (fresh minibatches: 0.02-0.5): every step saw "
                                     f"the same examples")


def sig_eval_tracks_chance(table, analysis, ctx, symptoms):
    """Train improves but eval stays at its start: the labels carry no signal the model can generalise."""
    tr, ev = table.get("train/loss"), table.get("eval/loss")
    if tr is None or ev is None or len(ev.finite()) < 3 or len(tr.finite()) < 10:
        return None
    e = ev.finite().value
    t0, t1 = _ends(tr.finite().value)
    e_best = float(np.min(e))
    if e[0] <= 0 or t0 <= 0:
        return None
    if e_best >= 0.97 * e[0] and 0.1 <= 1 - t1 / t0 < MEMORISE_DROP:
        return Signal("eval_never_improves", 1.0, f"eval loss best {fmt(e_best)} vs {fmt(float(e[0]))} at the first "
                      f"eval while train fell {fmt(t0)} -> {fmt(t1)}")
    return None


def _decayed_early(analysis: Analysis) -> Finding | None:
    return next((f for f in analysis.findings if f.kind == "plateau" and "decayed too early" in f.evidence), None)


def sig_lr_decayed_early(table, analysis, ctx, symptoms):
    """A plateau that starts where the LR has already fallen near 0 with much of the run left."""
    f = _decayed_early(analysis)
    return Signal("lr_decayed_early", 1.0, _say(f)) if f else None


def sig_resume_point(table, analysis, ctx, symptoms):
    """The run restarted or its schedule jumped (context), whether or not the loss got visibly worse."""
    if not ctx.resumes:
        return None
    r = ctx.resumes[0]
    if r.kind == "lr_raised":
        return Signal("lr_raised", 1.0, f"the LR was raised mid-run at step {r.step}: {r.what}")
    return Signal("resume_point", 1.0, f"resume at step {r.step}: {r.what}")


def sig_nan_without_rise(table, analysis, ctx, symptoms):
    """Non-finite values with no loss rise before them: an overflow or underflow in the arithmetic (fp16,
    a log of 0, a division), not an LR-driven blow-up, which climbs first."""
    f = _finding(analysis, "nan")
    s = table.get("train/loss")
    if f is None or s is None or not len(s) or f.start_step is None:
        return None
    fin = s.finite()
    before = fin.value[fin.step < f.start_step]
    if before.size >= 2 and float(np.max(before[1:])) > NAN_BLOWUP * float(before[0]):
        return Signal("nan_after_blowup", 1.0, f"the loss grew {fmt(float(before[0]))} -> "
                                               f"{fmt(float(np.max(before)))} before turning non-finite at step "
                                               f"{f.start_step}: it blew up first")
    if before.size >= 3:
        recent = before[-max(3, before.size // 10):]
        if float(np.max(recent)) > NAN_RISE * float(np.median(before[-max(10, before.size // 3):])):
            return None  # it climbed first: an instability that ended in overflow
    where = "from the first steps" if before.size < 3 else f"at step {f.start_step} after a steady loss"
    return Signal("nan_without_rise", 1.0, f"non-finite {where} ({f.metric}), with no rise before it: an "
                                           f"overflow or underflow in the arithmetic")


def sig_early_instability(table, analysis, ctx, symptoms):
    """A blow-up (a spike of 3x or more, or a divergence) in the first 20% of the run."""
    s = table.get("train/loss")
    if s is None or not len(s):
        return None
    first, span = float(s.step[0]), max(1.0, float(s.step[-1] - s.step[0]))
    for f in analysis.findings:
        if f.kind in ("spike", "divergence") and f.metric == "train/loss" and f.start_step is not None \
                and f.start_step - first <= 0.2 * span and not _at_resume(f, ctx, table):
            m = re.search(r"\(x([0-9.]+)\)", f.evidence)
            if f.kind == "divergence" or (m and float(m.group(1)) >= 3):
                return Signal("early_instability", 1.0, f"{f.kind} at step {f.start_step}, in the first 20% of the "
                                                        f"run: {f.evidence}")
    return None


def sig_zero_grads(table, analysis, ctx, symptoms):
    """Weight matrices whose gradient is exactly zero from the first sample on: nothing reaches them (zero init,
    dead ReLUs at init). Gradients that were alive at the start and are zero at the end died in training:
    units killed by too large an update (`grads_died`), not the initialisation."""
    series = {k: v for k, v in _layers(table, "grad_norm/").items() if not NORM_OR_BIAS.search(k)}
    if len(series) < 2:
        return None
    zero_end = sorted(k for k, v in series.items() if _tail(v) == 0.0)
    if len(zero_end) < max(1, len(series) // 2):
        return None
    zero_start = [k for k in zero_end if series[k][0] == 0.0]
    if len(zero_start) >= max(1, len(series) // 2):
        return Signal("zero_grad_layers", float(len(zero_start) / len(series)),
                      f"{len(zero_start)} of {len(series)} weight matrices get exactly zero gradient from the first "
                      f"sample on: {', '.join(zero_start[:4])}")
    return Signal("grads_died", float(len(zero_end) / len(series)),
                  f"{len(zero_end)} of {len(series)} weight matrices had gradients at the start and get exactly "
                  f"zero at the end ({', '.join(zero_end[:4])}): units died during training, the mark of "
                  f"updates too large for them")


def sig_eval_below_train(table, analysis, ctx, symptoms):
    """Eval loss well below train loss all run: the eval data is (partly) training data, or train is noisier."""
    tr, ev = table.get("train/loss"), table.get("eval/loss")
    if tr is None or ev is None or len(ev.finite()) < 3 or len(tr.finite()) < 10:
        return None
    tr, ev = tr.finite(), ev.finite()
    later = ev.step >= ev.step[0] + 0.3 * (ev.step[-1] - ev.step[0])
    t_at = np.interp(ev.step[later], tr.step, sm.rolling_median(tr.value, sm.smooth_window(len(tr), 0.05)))
    ratio = float(np.median(ev.value[later] / np.maximum(t_at, 1e-12)))
    if ratio > EVAL_BELOW_TRAIN:
        return None
    # Full strength when the train loss also stalled high (kept over half of where it started): wrong training
    # labels hold it there. A train loss that fell steeply with eval below it is the commoner healthy case:
    # dropout or augmentation in training only, or a train loss averaged over each epoch while it fell.
    start, end = _ends(tr.value)
    stalled = end >= 0.5 * start
    return Signal("eval_below_train", 1.0 if stalled else 0.5,
                  f"eval loss is {100 * (1 - ratio):.0f}% below the train loss over the last 70% of the run"
                  + (f", and train loss stalled at {100 * end / start:.0f}% of its start" if stalled else "")
                  + ": held-out data should not be easier than training data (noisy training labels, a leak, or "
                  "dropout/augmentation only in training)")


# --- gradients and updates
def sig_grad_growth(table, analysis, ctx, symptoms):
    g = table.get("train/grad_norm")
    if g is None or len(g.finite()) < 10:
        return None
    v = g.finite().value
    start = float(np.median(v[len(v) // 10: len(v) // 5 + 1]))
    end = _tail(v)
    if start <= 0 or end / start < EXPLODING_GROWTH:
        return None
    clip = f"; clipping at {ctx.clip_norm:g} caps the update, not the gradient" if ctx.clip_norm else ""
    return Signal("grad_norm_growth", float(min(1.0, math.log10(end / start) / 2)),
                  f"global grad norm grew {fmt(start)} -> {fmt(end)} (x{end / start:.0f}){clip}")


def sig_vanishing(table, analysis, ctx, symptoms):
    """Weight matrices whose gradients are ~0 next to the rest. Norm scales, biases and embeddings are left
    out: their small or sparse gradients are normal."""
    layers = {k: v for k, v in _per_layer(table, "grad_norm/").items()
              if not NORM_OR_BIAS.search(k) and not EMBEDDING.search(k)}
    if len(layers) < 3:
        return None
    mid = float(np.median(list(layers.values())))
    dead = {k: v for k, v in layers.items() if mid > 0 and v < VANISHING_RATIO * mid}
    if not dead:
        return None
    names = ", ".join(sorted(dead)[:4])
    return Signal("vanishing_layers", float(min(1.0, 3 * len(dead) / len(layers))),
                  f"{len(dead)} of {len(layers)} weight matrices have grad norms under {VANISHING_RATIO:g} of the "
                  f"median matrix ({fmt(mid)}): {names} (norm scales, biases and embeddings not counted)")


def sig_depth_decay(table, analysis, ctx, symptoms):
    """Grad norms falling steadily from the last layer to the first: gradients vanish with depth."""
    layers = {k: v for k, v in _per_layer(table, "grad_norm/").items()
              if not NORM_OR_BIAS.search(k) and not EMBEDDING.search(k)}
    idx = []
    for k, v in layers.items():
        m = re.search(r"(?:^|[._/])(\d+)(?:[._/]|$)", k)
        if m and v > 0:
            idx.append((int(m.group(1)), v))
    depths = sorted({d for d, _ in idx})
    if len(depths) < 4:
        return None
    med = [float(np.median([v for d, v in idx if d == k])) for k in depths]
    first, last = med[0], med[-1]
    if first <= 0 or last / first < 100:
        return None
    return Signal("depth_decay", float(min(1.0, math.log10(last / first) / 4)),
                  f"grad norms fall {last / first:.0f}x from layer {depths[-1]} ({fmt(last)}) to layer {depths[0]} "
                  f"({fmt(first)}): gradients vanish on the way back through {len(depths)} layers")


def sig_update_ratio(table, analysis, ctx, symptoms):
    """|update| / |param| per step, the median over the run of each layer, then over layers: the run's
    typical step size whatever the optimizer. Healthy runs here sit at 7e-4 to 1e-2 (the ~1e-3 rule of thumb);
    ten times below that the weights hardly leave their initialisation. Over the run, not at its end: a
    run that has converged, or whose units died, moves little at the end for other reasons."""
    ratios = {k: float(np.median(v)) for k, v in _layers(table, "update_ratio/").items()}
    if not ratios:
        return None
    med = float(np.median(list(ratios.values())))
    if med > UPDATE_RATIO_HIGH:
        return Signal("update_ratio_high", float(min(1.0, math.log10(med / UPDATE_RATIO_HIGH) / 1.5 + 0.3)),
                      f"median update/param ratio {med:.2g} per step (healthy ~1e-3)")
    if 0 < med < UPDATE_RATIO_LOW:
        return Signal("update_ratio_low", float(min(1.0, math.log10(UPDATE_RATIO_LOW / med) / 1.5 + 0.3)),
                      f"median update/param ratio {med:.2g} per step (healthy ~1e-3)")
    return None


def sig_attention(table, analysis, ctx, symptoms):
    for name, s in table.series.items():
        if name.startswith("attn_max_logit/") and len(s.finite()) >= 4:
            v = s.finite().value
            half = v.size // 2
            w = max(1, v.size // 20)
            mid = float(np.median(v[max(0, half - w):half + w]))
            last = _tail(v)
            if last >= ATTN_LOGIT_HIGH and mid > 0 and last / mid >= ATTN_LOGIT_GROWTH:
                return Signal("attn_logit_growth", 1.0, f"{name} grew {fmt(mid)} -> {fmt(last)} over the second "
                                                        "half of the run and is still climbing")
    return None


def sig_initial_loss(table, analysis, ctx, symptoms):
    s = table.get("train/loss") or table.get("eval/loss")
    uniform = next((v for k, v in ctx.baselines.items() if k.startswith(("ln V", "ln K"))), None)
    if s is None or not len(s.finite()) or not uniform:
        return None
    v = s.finite().value
    # the first loss, unless the next two say it was one noisy batch (a batch of one example scatters widely)
    first = float(min(v[0], np.median(v[:3])))
    if first <= INIT_LOSS_EXCESS * uniform:
        return None
    return Signal("initial_loss_high", float(min(1.0, 5 * (first / uniform - 1))),
                  f"first loss {fmt(first)} vs {fmt(uniform)} for uniform predictions: the output logits start "
                  f"too large")


# --- configuration, read in context
def _lr_rule(ctx: RunContext) -> float | None:
    """The size-based AdamW rule applies to Adam-type optimizers on transformers only."""
    if ctx.family != "adam" or not ctx.n_params or ctx.arch not in ("transformer", "unknown"):
        return None
    from ntjax.core.config import smart_lr
    return smart_lr(int(ctx.n_params))


def sig_config_lr(table, analysis, ctx, symptoms):
    """The configured LR against what its context allows."""
    lr = ctx.lr
    if lr is None or lr <= 0:
        return None
    rule = _lr_rule(ctx)
    assumed = f"(assumes {ctx.family} on a {ctx.arch}; {ctx.n_params or '?'} parameters)"
    if rule:
        ratio = lr / rule
        if ratio >= 3:
            return Signal("config_lr_above", float(min(1.0, math.log10(ratio) / 3)),
                          f"config lr {lr:g} is {ratio:.0f}x the size-based AdamW rule {rule:.2g} {assumed}")
        if ratio <= 1 / 10:
            return Signal("config_lr_below", float(min(1.0, math.log10(1 / ratio) / 3)),
                          f"config lr {lr:g} is 1/{1 / ratio:.0f} of the size-based AdamW rule {rule:.2g} {assumed}")
        return None
    if ctx.family in ("adam", "lion", "adafactor") and lr >= ADAM_LR_ABSURD:
        scale = 3 if ctx.family == "lion" else 1  # Lion's updates are sign-sized: it needs 3-10x lower LRs
        return Signal("config_lr_above", float(min(1.0, math.log10(scale * lr / ADAM_LR_ABSURD) / 2 + 0.4)),
                      f"config lr {lr:g}: far above any {ctx.optimizer} LR that trains (>= {ADAM_LR_ABSURD:g}) "
                      f"{assumed}")
    if ctx.family in ("adam", "lion") and lr <= 1e-6:
        return Signal("config_lr_below", 0.8, f"config lr {lr:g}: weights barely move with {ctx.optimizer}")
    if ctx.family == "sgd" and lr >= SGD_LR_HIGH_UNCLIPPED and not ctx.clip_norm:
        return Signal("config_lr_above", 0.4, f"config lr {lr:g} with plain SGD and no gradient clipping logged "
                                              f"(with clipping, lr 20 on an LSTM LM is a known healthy setup)")
    return None


def sig_config_wd(table, analysis, ctx, symptoms):
    """Weight decay that shrinks the weights faster than they learn: the per-step shrink is lr * wd (torch's
    AdamW and SGD alike); counted only when the curves are in trouble (a config alone is not a failure)."""
    wd = ctx.weight_decay
    if wd is None or wd <= 0:
        return None
    usual = WD_USUAL.get(ctx.family or "")
    if usual is not None and wd <= usual:  # a large lr * wd from a usual coefficient is the LR's doing
        return None
    trouble = any(f.severity != "info" for f in analysis.findings)
    if ctx.lr:
        shrink = ctx.lr * wd
        if shrink < WD_SHRINK_HIGH:
            return None
        steps = max((float(s.step[-1]) for s in table.series.values() if len(s)), default=0.0)
        if not trouble and (shrink * steps < WD_EFOLDS_FORGET or wd < DECOUPLED_WD_HIGH):
            # without a bad curve, only a coefficient far outside the usual range that decays the weights
            # away counts (a large lr*wd from an absurd LR is the LR's doing)
            return None
        value = (min(1.0, shrink * steps / WD_EFOLDS_FORGET) if steps
                 else min(1.0, 0.5 + math.log10(shrink / WD_SHRINK_HIGH)))
        return Signal("config_wd_high", float(value),
                      f"config weight_decay {wd:g} at lr {ctx.lr:g}: weights shrink {100 * shrink:.2g}% per step "
                      f"(half-life {math.log(2) / shrink:.0f} steps, {shrink * steps:.1f} e-folds over the run), "
                      f"faster than they learn")
    if wd < DECOUPLED_WD_HIGH or not trouble:
        return None
    return Signal("config_wd_high", 0.7, f"config weight_decay {wd:g} (typical under 0.3): weights shrink faster "
                                         f"than they learn")


def sig_config_warmup(table, analysis, ctx, symptoms):
    if ctx.warmup != 0 or ctx.family not in ("adam", "lion", "adafactor") or ctx.arch != "transformer":
        return None
    return Signal("config_no_warmup", 1.0, f"config warmup 0 steps with {ctx.optimizer} on a transformer "
                                           f"(Adam's second moment needs ~2/(1-beta2) steps to settle)")


def sig_stall_without_warmup(table, analysis, ctx, symptoms):
    """No warmup with an Adam-type optimizer on a transformer, an LR at or a few times above the size rule
    (not absurd), and a loss that blew up or went flat within the first third: the no-warmup failure. Adam's
    first updates, before its second moment settles, knock the model onto a flat level (post-LN blocks
    most of all, Xiong et al. 2020); the same LR with a warmup trains. It explains the instability that would
    otherwise point at the LR itself, so it counts for insufficient_warmup and against lr_too_high."""
    if sig_config_warmup(table, analysis, ctx, symptoms) is None or ctx.finetune or not ctx.lr:
        return None
    rule = _lr_rule(ctx)
    if not rule or not WARMUP_LR_BAND[0] <= ctx.lr / rule <= WARMUP_LR_BAND[1]:
        return None
    s = table.get("train/loss")
    if s is None or not len(s):
        return None
    first, span = float(s.step[0]), max(1.0, float(s.step[-1] - s.step[0]))
    early = next((f for f in analysis.findings if f.metric in ("train/loss", "eval/loss") and f.start_step is not None
                  and f.kind in ("plateau", "divergence", "spike", "no_learning")
                  and f.start_step - first <= EARLY_STALL * span), None)
    if early is None:
        return None
    return Signal("stall_without_warmup", 1.0,
                  f"no warmup with {ctx.optimizer} on a transformer at lr {ctx.lr:g} ({ctx.lr / rule:.1f}x the "
                  f"size rule {rule:.2g}: near the usual peak, not absurd), and the loss went wrong by step "
                  f"{early.start_step} ({(early.start_step - first) / span:.0%} of the run): {_say(early)}")


def sig_config_eps(table, analysis, ctx, symptoms):
    if ctx.family != "adam" or ctx.eps is None or ctx.eps < EPS_LARGE:
        return None
    return Signal("config_eps_large", 1.0, f"Adam eps {ctx.eps:g}: with gradients below eps the update is "
                                           f"lr*g/eps, a plain SGD step with a tiny LR")


def sig_beta2_unstable(table, analysis, ctx, symptoms):
    spiky = _finding(analysis, "spike") or _finding(analysis, "oscillation")
    if ctx.family != "adam" or ctx.beta2 is None or ctx.beta2 < 0.999 or spiky is None:
        return None
    return Signal("beta2_slow_with_spikes", 1.0, f"beta2 {ctx.beta2:g} adapts over ~{1 / (1 - ctx.beta2):.0f} steps "
                                                 f"and the loss is unstable: {_say(spiky)}")


def sig_symptom(name: str) -> SignalFn:
    def signal(table, analysis, ctx, symptoms):
        return Signal(f"symptom_{name}", 1.0, f"matches the reported symptom: {name}") if name in symptoms else None
    signal.__name__ = f"symptom_{name}"
    return signal


# --- scale-free signals (ratios to the run's own baselines and config; valid across model families)
def _baseline(ctx: RunContext) -> tuple[str, float] | None:
    """The lowest trivial loss the context knows (ln K, unigram entropy, target variance...)."""
    if not ctx.baselines:
        return None
    name, value = min(ctx.baselines.items(), key=lambda kv: kv[1])
    return (name, value) if value > 0 else None


def sig_config_batch(table, analysis, ctx, symptoms):
    """A batch of one or two examples (config): the gradient noise of a single example at a batch LR."""
    from ntjax.diagnostics.context import _find
    config = table.meta.get("config") or {}
    bs = _find(config, ("batch_size", "per_device_train_batch_size", "train_batch_size", "batch"))
    if not isinstance(bs, (int, float)) or isinstance(bs, bool) or bs <= 0 or bs > 2 * TINY_BATCH:
        return None
    return Signal("config_batch_tiny", 1.0 if bs <= TINY_BATCH else 0.5,
                  f"config batch size {bs:g}: each step follows the gradient of {bs:g} example(s)")


def sig_unstable_tiny_batch(table, analysis, ctx, symptoms):
    """A batch of one or two examples and an unstable loss (divergence, a non-finite loss, warning spikes or
    oscillation): the instability has a cause more specific than the LR, the batch the LR was set for."""
    tiny = sig_config_batch(table, analysis, ctx, symptoms)
    if tiny is None:
        return None
    bad = [f for f in analysis.findings if f.kind in ("divergence", "nan", "spike", "oscillation")
           and f.severity != "info" and f.metric.startswith("train")]
    if not bad:
        return None
    return Signal("unstable_tiny_batch", tiny.value, f"{tiny.evidence}, and the loss is unstable: {_say(bad[0])}")


def sig_model_tiny(table, analysis, ctx, symptoms):
    """Few parameters per output unit (config) and a loss that stays a large share of its trivial baseline:
    the model is too small to fit. Scale-free: parameters per class/vocabulary entry, loss / baseline."""
    out = ctx.vocab_size or ctx.n_classes
    base = _baseline(ctx)
    tr = table.get("train/loss")
    if not ctx.n_params or not out or base is None or tr is None or len(tr.finite()) < 10:
        return None
    per = ctx.n_params / out
    if per >= PARAMS_PER_OUTPUT_TINY:
        return None
    level = _tail(tr.finite().value, at_least=3) / base[1]
    value = min(1.0, math.log(PARAMS_PER_OUTPUT_TINY / per) / math.log(10)) * min(1.0, level / 0.5)
    return Signal("model_tiny", float(value), f"{ctx.n_params:,} parameters for {out} outputs "
                  f"({per:.1f} per output) and the train loss ends at {100 * level:.0f}% of {base[0]}")


def sig_eval_at_chance(table, analysis, ctx, symptoms):
    """Eval loss ends at the trivial baseline (ln K / unigram entropy): nothing that generalises was learned."""
    base = _baseline(ctx)
    ev = table.get("eval/loss")
    if base is None or ev is None or len(ev.finite()) < 3:
        return None
    e = ev.finite().value
    end = _tail(e, at_least=3)
    if end < AT_CHANCE * base[1] or float(np.min(e)) < 0.9 * base[1]:
        return None
    return Signal("eval_at_chance", 1.0, f"eval loss ends at {fmt(end)} (best {fmt(float(np.min(e)))}), "
                                         f"{100 * end / base[1]:.0f}% of {base[0]} = {fmt(base[1])}")


def sig_eval_tracks_train(table, analysis, ctx, symptoms):
    """Eval loss within a few percent of train over the run's second half while train fell a lot: no
    generalisation gap at all (a leak, or plentiful fresh data)."""
    tr, ev = table.get("train/loss"), table.get("eval/loss")
    if tr is None or ev is None or len(ev.finite()) < 3 or len(tr.finite()) < 10:
        return None
    tr, ev = tr.finite(), ev.finite()
    t = tr.value
    if 1 - _tail(t, at_least=3) / max(_ends(t)[0], 1e-12) < 0.3:
        return None
    later = ev.step >= ev.step[0] + 0.5 * (ev.step[-1] - ev.step[0])
    t_at = np.interp(ev.step[later], tr.step, sm.rolling_median(tr.value, sm.smooth_window(len(tr), 0.05)))
    gap = float(np.median(np.abs(ev.value[later] / np.maximum(t_at, 1e-12) - 1)))
    if gap > TRACKS_TRAIN:
        return None
    return Signal("eval_tracks_train", 1.0, f"eval loss stays within {100 * gap:.0f}% of the train loss over the "
                                            f"second half while train fell: no generalisation gap at all")


SIGNALS: tuple[SignalFn, ...] = (
    sig_trouble, sig_divergence, _from_finding("nan"), _from_finding("spike", "spikes", train_only=True),
    _from_finding("oscillation"), _from_finding("short_warmup"), _from_finding("lr_loss_correlation", "lr_loss_rise"),
    _from_finding("overfitting"), _from_finding("underfitting"), _from_finding("slow_convergence"),
    _from_finding("plateau", "plateau_stalled"), sig_no_learning, sig_trivial,
    _from_finding("resume_regression"), _from_finding("dead_gradients"), _from_finding("collapsing_gradients"),
    sig_lr_decayed_early, sig_resume_point, sig_nan_without_rise, sig_early_instability, sig_zero_grads,
    sig_eval_below_train,
    sig_noise, sig_memorise, sig_same_batch, sig_eval_tracks_chance, sig_grad_growth,
    sig_vanishing, sig_depth_decay, sig_update_ratio, sig_attention, sig_initial_loss, sig_config_lr, sig_config_wd,
    sig_config_warmup, sig_stall_without_warmup, sig_config_eps, sig_beta2_unstable,
    sig_config_batch, sig_unstable_tiny_batch, sig_model_tiny, sig_eval_at_chance, sig_eval_tracks_train,
    *(sig_symptom(s) for s in SYMPTOMS),
)


def collect(table: RunTable, analysis: Analysis, ctx: RunContext, symptoms: set[str]) -> list[Signal]:
    """Every signal that applies to this run."""
    out: list[Signal] = []
    for fn in SIGNALS:
        got = fn(table, analysis, ctx, symptoms)
        if got is None:
            continue
        out += got if isinstance(got, list) else [got]
    return [s for s in out if s.value > 0]


def missing_inputs(table: RunTable, ctx: RunContext) -> dict[str, str]:
    """What was not logged, keyed by the evidence it would have given."""
    names = table.names()
    out = {}
    if table.get("train/loss") is None:
        out["train"] = "the train loss (train/loss) next to the eval loss"
    if not any(n.startswith("grad_norm/") for n in names):
        out["layers"] = "per-layer grad norms (grad_norm/<layer>)"
    if table.get("train/grad_norm") is None:
        out["grad_norm"] = "the global grad norm (train/grad_norm)"
    if table.get("eval/loss") is None:
        out["eval"] = "eval loss on held-out data (eval/loss)"
    if table.get("train/lr") is None and ctx.lr is None:
        out["lr"] = "the LR (train/lr) or a config.json with the optimizer settings"
    if not ctx.has_config:
        out["config"] = "config.json (optimizer class and settings, model size: the TorchMonitor bridge writes it)"
    if not any(n.startswith("update_ratio/") for n in names):
        out["updates"] = "update/param ratios (update_ratio/<layer>)"
    return out
