"""Read a whole run: every detector over a RunTable, a summary of each metric, and a one-line verdict.

`analyse(table)` is what `ntjax curves` prints and `ntjax debug` builds on. Detectors are pure functions
over arrays (`curve` for one curve, `relations` for pairs); this module only picks which curve each one
reads and orders what they say.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ntjax.diagnostics.context import read_context
from ntjax.diagnostics.detectors import context_findings, curve, histograms, relations
from ntjax.diagnostics.detectors import smoothing as sm
from ntjax.diagnostics.findings import Finding, fmt, is_healthy, ranked
from ntjax.diagnostics.runtable import RunTable, Series

GRAD_NORM = "train/grad_norm"
TROUBLE = ("spike", "divergence", "oscillation", "nan")  # what a too-short warmup shows in the loss


@dataclasses.dataclass
class Analysis:
    """What a run's curves say: per-metric summaries, findings (worst first), verdict, baseline numbers."""

    source: str
    format: str
    primary: str | None
    metrics: dict[str, dict]
    findings: list[Finding]
    verdict: str
    baseline: list[dict] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        """The `ntjax curves --json` object (plots are added by the command)."""
        out = {"source": self.source, "format": self.format, "primary_metric": self.primary,
               "metrics": self.metrics, "findings": [f.to_dict() for f in self.findings],
               "verdict": self.verdict, "healthy": is_healthy(self.findings)}
        if self.baseline:
            out["baseline"] = self.baseline
        if self.problems:
            out["problems"] = self.problems
        return out


def summarise(series: Series) -> dict:
    """points/first/last/min/min_step of one metric (finite values; counts non-finite ones too)."""
    fin = series.finite()
    out = {"points": len(series), "nonfinite": len(series) - len(fin)}
    if len(fin):
        i = int(np.argmin(fin.value))
        out.update(first=float(fin.value[0]), last=float(fin.value[-1]), min=float(fin.value[i]),
                   min_step=int(fin.step[i]), first_step=int(fin.step[0]), last_step=int(fin.step[-1]))
    return out


def primary_metric(table: RunTable) -> str | None:
    """The curve a verdict is about: train loss, else eval loss, else any loss-like metric."""
    for name in ("train/loss", "eval/loss"):
        s = table.get(name)
        if s is not None and len(s.finite()) >= 3:
            return name
    losses = [n for n in table.names() if "loss" in n.lower() and len(table.series[n].finite()) >= 3]
    return losses[0] if losses else None


def _lr_fraction(table: RunTable):
    """A function step -> LR as a fraction of its peak (None without a logged LR)."""
    lr = table.get("train/lr")
    if lr is None or len(lr.finite()) < 2:
        return None
    lr = lr.finite()
    peak = float(lr.value.max())
    if peak <= 0:
        return None
    return lambda step: float(np.interp(step, lr.step, lr.value)) / peak


def _curve_findings(s: Series, lr_at, *, primary: bool) -> list[Finding]:
    """All one-curve detectors on a loss curve, in the order that lets later ones skip what earlier found."""
    out = curve.detect_nonfinite(s.step, s.value, s.name)
    fin = s.finite()
    if out:  # analyse what came before the first non-finite value
        fin = _until(fin, (out[0].start_step or 0) - 1)
    step, value = fin.step, fin.value
    if value.size < 3:
        return out
    divergence = curve.detect_divergence(step, value, s.name) if primary else []
    out += divergence
    if divergence:  # the rest reads only the part before the blow-up
        keep = step <= divergence[0].start_step
        step, value = step[keep], value[keep]
    no_learning = curve.detect_no_learning(step, value, s.name) if primary else []
    out += no_learning
    if s.split != "eval":
        out += curve.detect_spikes(step, value, s.name)
        out += curve.detect_oscillation(step, value, s.name)
    if not no_learning:
        plateau = curve.detect_plateau(step, value, s.name, lr_at)
        stuck = curve.detect_stuck_at_uniform(step, value, s.name, plateau[0] if plateau else None)
        out += stuck or plateau
        if primary and not plateau and not divergence:
            out += curve.detect_slow_convergence(step, value, s.name)
    return out


def analyse(table: RunTable, baseline: RunTable | None = None) -> Analysis:
    """Run every detector that the logged metrics allow, and summarise the run in one verdict."""
    primary = primary_metric(table)
    lr_at = _lr_fraction(table)
    train, eval_ = table.get("train/loss"), table.get("eval/loss")
    findings: list[Finding] = []
    if primary:
        findings += _curve_findings(table.series[primary], lr_at, primary=True)
    if primary != "train/loss" and train is not None:  # too few finite points to be the primary: NaN early
        findings += curve.detect_nonfinite(train.step, train.value, train.name)
    blowup = next((f.start_step for f in findings if f.kind in ("divergence", "nan")), None)
    if eval_ is not None and blowup is not None:  # after the blow-up, eval only echoes it
        findings += curve.detect_nonfinite(eval_.step, eval_.value, eval_.name)  # but its own NaN is said
        eval_ = _until(eval_, blowup)
    if eval_ is not None and primary != "eval/loss" and len(eval_.finite()) >= 3:
        eval_findings = _curve_findings(eval_, lr_at, primary=False)
        overfit = relations.detect_overfitting(train.finite() if train else None, eval_.finite())
        if overfit:  # overfitting explains a flat eval: do not report it twice
            eval_findings = [f for f in eval_findings if f.kind != "plateau"]
        eval_findings = [_eval_saturated(f, train) for f in eval_findings]
        findings += eval_findings + overfit
    elif eval_ is not None:
        findings += curve.detect_nonfinite(eval_.step, eval_.value, eval_.name)
    ctx = read_context(table)
    findings = [_learned_floor(f, ctx, table) for f in findings]  # before underfitting reads the plateau
    if train is not None and eval_ is not None and primary == "train/loss":
        plateau = next((f for f in findings if f.kind == "plateau" and f.metric == "train/loss"), None)
        findings += relations.detect_underfitting(train.finite(), eval_.finite(), plateau)
    grad = table.get(GRAD_NORM)
    if grad is not None:
        findings += curve.detect_nonfinite(grad.step, grad.value, grad.name)
        findings += curve.detect_spikes(grad.finite().step, grad.finite().value, grad.name, quiet=True)
    lr = table.get("train/lr")
    if train is not None and lr is not None and primary == "train/loss":
        trouble = [f for f in findings if f.metric == "train/loss" and f.kind in TROUBLE]
        findings += relations.detect_lr_loss(train.finite(), lr, trouble)
    if eval_ is not None and len(eval_.finite()) >= 3:
        for name in table.names():
            if name.startswith("eval/") and name != "eval/loss":
                findings += relations.detect_metric_disagreement(eval_.finite(), table.series[name].finite())
    early_decay = any(f.kind == "plateau" and "decayed too early" in f.evidence for f in findings)
    if primary and not early_decay and not any(f.kind in ("divergence", "nan") for f in findings):
        first_eval = eval_.finite() if eval_ is not None else None
        init_loss = (float(first_eval.value[0]) if first_eval is not None and len(first_eval)
                     and first_eval.step[0] <= table.series[primary].step[0] + 1 else None)
        trivial = context_findings.detect_trivial_solution(table.series[primary], ctx, init_loss)
        if trivial:  # the trivial level explains the flat loss: one finding, not three
            findings = [f for f in findings if f.kind not in ("plateau", "underfitting", "slow_convergence")] + trivial
    findings = _explain_by_context(findings, context_findings.detect_resume_regression(train, eval_, ctx), ctx)
    findings += histograms.detect_grad_histograms(table.meta.get("histograms"))
    comparisons = []
    if baseline is not None:
        for name in ("eval/loss", "train/loss"):
            a, b = table.get(name), baseline.get(name)
            if a is not None and b is not None:
                cmp = relations.compare_with_baseline(a.finite(), b.finite())
                if cmp:
                    cmp["baseline_source"] = baseline.source
                    comparisons.append(cmp)
                    findings.append(relations.baseline_finding(cmp))
    if primary and is_healthy(findings):
        findings.append(_healthy(table.series[primary].finite(), eval_))
    findings = ranked(list({(f.kind, f.metric, f.start_step): f for f in findings}.values()))  # each once
    metrics = {name: summarise(s) for name, s in sorted(table.series.items())}
    return Analysis(table.source, table.format, primary, metrics, findings,
                    verdict(table, primary, findings), comparisons, list(table.problems))


def _explain_by_context(findings: list[Finding], resumes: list[Finding], ctx) -> list[Finding]:
    """One event, one finding: what a restart or an early LR decay explains is not reported again.

    A resume regression takes over the LR-loss jump, the spike and the "short warmup" at its step (a
    restart that jumps back to the peak LR causes all three); a raised LR that set off an oscillation is
    that oscillation's story instead. A plateau from an LR decayed too early is not underfitting."""
    span = max([f.end_step or f.start_step or 0 for f in findings] + [1])
    near = lambda a, b: a is not None and b is not None and abs(a - b) <= max(3, 0.03 * span)  # noqa: E731
    kept_resumes = []
    for r in resumes:
        raised = next((p for p in ctx.resumes if p.step == r.start_step), None)
        if raised is not None and raised.kind == "lr_raised" and any(
                f.kind == "oscillation" and near(f.start_step, r.start_step) for f in findings):
            continue
        kept_resumes.append(r)
    taken = ("lr_loss_correlation", "spike", "short_warmup")
    out = [f for f in findings if not (f.kind in taken and f.severity != "info"
                                       and any(near(f.start_step, r.start_step) for r in kept_resumes))]
    if any(f.kind == "plateau" and "decayed too early" in f.evidence for f in out):
        out = [f for f in out if f.kind != "underfitting"]
    return out + kept_resumes


EVAL_SATURATED_TRAIN_SLOPE = 0.10  # train loss still improving 10%+ per decade of steps: the model still learns
EVAL_SATURATED_TRAIN_DROP = 0.10  # ...or fell 10%+ from the stretch's first tenth to its last (noisy curves)
LEARNED_FLOOR = 2 / 3  # under two thirds of the trivial baseline: the model learned; stalls sit near the baseline
LEARNED_FLOOR_LN_V = 0.5  # ln V is a weak baseline (text's unigram entropy is 55-75% of it): under half of it


def _eval_saturated(f: Finding, train: Series | None) -> Finding:
    """A flat eval loss while the train loss keeps falling is held-out loss saturating (the generalisation
    gap opening: more data or regularisation would help), not a stalled run: `info`, not a warning. A run
    that is stuck has a flat train loss too. "Still falling" is read in the plateau's own unit, improvement
    per decade of steps, over the same stretch (healthy runs improve 5-15% per decade, a stall under 2%), or
    as the drop between the stretch's first and last tenth, which per-batch noise disturbs less."""
    if f.kind != "plateau" or f.severity == "info" or train is None or f.start_step is None:
        return f
    tr = train.finite()
    keep = tr.step >= f.start_step
    if int(keep.sum()) < 10 or np.any(tr.value[keep] <= 0):
        return f
    during = tr.value[keep]
    slope, _ = sm.slope_per_decade(tr.step[keep], np.log(during))
    k = max(3, during.size // 10)
    drop = 1 - float(np.median(during[-k:])) / float(np.median(during[:k]))
    if -slope < EVAL_SATURATED_TRAIN_SLOPE and drop < EVAL_SATURATED_TRAIN_DROP:
        return f
    return dataclasses.replace(f, severity="info", evidence=f"{f.evidence}; train loss still improved "
                               f"{-100 * slope:.0f}% per decade of steps ({100 * drop:.0f}% in all) over the same "
                               f"stretch: held-out loss has saturated while the model still learns")


def _learned_floor(f: Finding, ctx, table: RunTable) -> Finding:
    """A train- or eval-loss plateau well below the task's trivial baseline (under two thirds of ln K, the
    unigram entropy or the target variance) is a model that learned what the task gives at this LR and now
    sits at the noise floor of the LR: `info` with the advice to decay the LR, not a stall. The stalls that
    faults give (extreme weight decay, a batch of one, an undivided accumulated loss) sit at 80-100% of the
    baseline. ln V is a weaker baseline (text's unigram entropy is 55-75% of it: a byte LM stuck at the
    unigram level sits at 59% of ln 256), so against ln V the bar is half. A plateau from an LR that decayed
    too early keeps its warning: that schedule is the fault."""
    series = table.get(f.metric) if f.metric in ("train/loss", "eval/loss") else None
    if (f.kind != "plateau" or f.severity == "info" or series is None or not ctx.baselines
            or "decayed too early" in f.evidence or f.start_step is None):
        return f
    bars = {k: (LEARNED_FLOOR_LN_V if k.startswith("ln V") else LEARNED_FLOOR) * v for k, v in ctx.baselines.items()}
    name = min(bars, key=lambda k: bars[k])
    base = ctx.baselines[name]
    s = series.finite()
    flat = s.value[s.step >= f.start_step]
    level = float(np.median(flat)) if flat.size else None
    if base <= 0 or level is None or level > bars[name]:
        return f
    return dataclasses.replace(f, severity="info", evidence=f"{f.evidence}; the loss is at {level / base:.0%} "
                               f"of {name} ({fmt(base)}): it learned what the task gives at this LR and sits "
                               f"at the noise floor of its LR, which a decay would lower",
                               recommendation="decay the LR (cosine or linear to ~0) to get below this floor; train "
                                              "longer or larger only if eval loss keeps pace")


def _until(s: Series, step: int) -> Series:
    keep = s.step <= step
    return dataclasses.replace(s, step=s.step[keep], value=s.value[keep], time=s.time[keep])


def _healthy(s: Series, eval_: Series | None) -> Finding:
    head = max(1, len(s) // 50)
    start, end = float(np.median(s.value[:head])), float(np.median(s.value[-head:]))
    best = ""
    if eval_ is not None and len(eval_.finite()):
        e = eval_.finite()
        i = int(np.argmin(e.value))
        best = f"; eval loss best {fmt(float(e.value[i]))} at step {int(e.step[i])}"
    change = f" ({100 * (end / start - 1):+.0f}%)" if start > 0 else ""
    return Finding("healthy", s.name, int(s.step[0]), int(s.step[-1]), "info", 0.8,
                   f"{s.name} {fmt(start)} -> {fmt(end)}{change} over {int(s.step[-1] - s.step[0])} steps, "
                   f"no instability{best}", "")


def verdict(table: RunTable, primary: str | None, findings: list[Finding]) -> str:
    """One sentence: how the run went, with the numbers that matter most."""
    if primary is None:
        return "no loss curve found: nothing to judge (" + ", ".join(table.names()[:6]) + ")"
    bad = [f for f in findings if f.severity != "info"]
    if not bad:
        healthy = next((f for f in findings if f.kind == "healthy"), None)
        return "healthy: " + (healthy.evidence if healthy else "no warnings")
    head = "critical" if bad[0].severity == "critical" else "needs attention"
    kinds = ", ".join(dict.fromkeys(f"{f.kind} ({f.metric}, step {f.start_step})" for f in bad[:3]))
    return f"{head}: {kinds}. {bad[0].evidence}"
