"""What a sweep found: the trials (as the contract's JSON and as a rich table sorted by value), the best
configuration and its run folder, parameter importance, and the plots (importance, performance vs
compute with each trial's eval curve, value vs each parameter)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


def _trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials a reader cares about (not the ones closed unrun because the budget was reached)."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("skipped")]


def _sort_key(t: FrozenTrial, direction: str) -> tuple:
    v = t.value if t.value is not None and not math.isnan(t.value) else math.inf
    v = v if direction == "minimize" else -v
    return (t.state != TrialState.COMPLETE or math.isinf(v), v, t.number)


def sorted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials best first, then pruned and failed ones."""
    direction = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"
    return sorted(_trials(study), key=lambda t: _sort_key(t, direction))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in sorted_trials(study) if t.state == TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value)]
    return done[0] if done else None


def trial_record(t: FrozenTrial) -> dict[str, Any]:
    """One trial as the contract's JSON (plus where its run folder is and why it stopped)."""
    rec = {"number": t.number, "params": dict(t.params), "value": t.value, "state": t.state.name,
           "run_dir": t.user_attrs.get("run_dir"), "seconds": t.user_attrs.get("seconds")}
    reason = t.user_attrs.get("diverged") or t.user_attrs.get("fail_reason")
    if t.state == TrialState.FAIL and not reason:
        reason = "worker lost (no heartbeat)"
    if t.state == TrialState.PRUNED:
        reason = f"pruned at step {t.last_step}" if t.last_step is not None else "pruned"
    if reason:
        rec["reason"] = reason
    if t.user_attrs.get("diverged"):
        rec["diverged"] = True
    return rec


def importance(study: optuna.Study) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importance over complete trials with a finite value, or {} and why not.

    The evaluator is PED-ANOVA (Watanabe et al. 2023): Optuna's default, fANOVA, needs scikit-learn, which
    ntjax does not depend on. It asks which parameters matter for reaching the top `q` of trials; with q at
    least 5 trials' worth (and at most half), small sweeps are not judged on one or two lucky trials.
    """
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    names = sorted({k for t in done for k in t.params})
    if len(done) < 2:
        return {}, f"parameter importance needs at least 2 complete trials (have {len(done)})"
    if len(names) == 1:
        return {names[0]: 1.0}, "one parameter searched: it explains all the variation by definition"
    try:
        q = min(0.5, max(0.1, 5 / len(done)))
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=q)
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return {k: float(v) for k, v in imp.items()}, None
    except (ValueError, RuntimeError, ImportError) as e:
        return {}, f"parameter importance unavailable: {e}"


def summary(study: optuna.Study, metric: str) -> dict[str, Any]:
    """The contract's `ntjax sweep --json` object (before plots and extras are added)."""
    best = best_trial(study)
    imp, note = importance(study)
    states = [t.state.name for t in _trials(study)]
    out = {"trials": [trial_record(t) for t in _trials(study)],
           "best": ({"params": dict(best.params), "value": best.value, "number": best.number,
                     "run_dir": best.user_attrs.get("run_dir")} if best else {"params": {}, "value": None}),
           "importance": imp, "plots": [], "metric": metric, "direction": study.direction.name.lower(),
           "counts": {s: states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING") if s in states}}
    if note:
        out["importance_note"] = note
    return out


def table(study: optuna.Study, metric: str, limit: int = 30):
    """A rich table of the trials sorted by value, best first."""
    from rich.table import Table

    trials = sorted_trials(study)
    names = sorted({k for t in trials for k in t.params})
    tab = Table(title=f"sweep: {len(trials)} trials, sorted by {metric}")
    for col in ("#", "state", metric, *names, "seconds", "note"):
        tab.add_column(col, justify="right" if col not in ("state", "note") else "left")
    for t in trials[:limit]:
        rec = trial_record(t)
        value = "" if t.value is None else f"{t.value:.4f}"
        cells = [f"{t.params[n]:.3g}" if isinstance(t.params.get(n), float) else str(t.params.get(n, ""))
                 for n in names]
        secs = f"{rec['seconds']:.0f}" if rec.get("seconds") is not None else ""
        tab.add_row(str(t.number), t.state.name, value, *cells, secs, rec.get("reason", ""))
    return tab


def human_lines(data: dict[str, Any]) -> list[str]:
    """The lines printed under the table: best config, importance, plots."""
    lines = []
    best = data["best"]
    if best.get("value") is not None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        lines.append(f"best: {data['metric']} {best['value']:.4f} with {params}  (trial {best['number']}, "
                     f"run folder {best['run_dir']}; inspect it with: ntjax curves {best['run_dir']})")
    else:
        lines.append("no trial completed with a finite value")
    if data["importance"]:
        lines.append("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                sorted(data["importance"].items(), key=lambda kv: -kv[1])))
    if data.get("importance_note"):
        lines.append(f"note: {data['importance_note']}")
    if data.get("sensitivity"):
        s = data["sensitivity"]
        lines.append(f"LR sensitivity (Wortsman et al. 2023): {s['value']:.4f}  (L0 {s['init_loss']:.3f}, best "
                     f"{s['best_loss']:.3f} at lr {s['best_lr']:.3g}; lower = less sensitive)")
    lines += [f"plot: {p}" for p in data["plots"]]
    return lines


# --- plots -------------------------------------------------------------------------------------------

def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.subplots(1, ncols)


def plot_importance(imp: dict[str, float], path: Path) -> Path | None:
    if not imp:
        return None
    fig, ax = _figure(6, 0.6 + 0.45 * len(imp))
    items = sorted(imp.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("importance (PED-ANOVA, normalised)")
    ax.set_xlim(0, 1)
    fig.savefig(path)
    return path


def plot_progress(study: optuna.Study, metric: str, path: Path) -> Path | None:
    """Left: best value found vs cumulative trial time (the compute spent). Right: every trial's eval
    curve (the metric at each eval), pruned ones dashed, the best one thick."""
    trials = [t for t in _trials(study) if t.state.is_finished()]
    if not trials:
        return None
    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    fig, (left, right) = _figure(12, 4.5, ncols=2)
    order = sorted(trials, key=lambda t: t.datetime_complete or t.datetime_start)
    spent, best, xs, ys = 0.0, math.inf if minimize else -math.inf, [], []
    for t in order:
        spent += float(t.user_attrs.get("seconds") or 0.0)
        v = t.value
        if t.state == TrialState.COMPLETE and v is not None and math.isfinite(v):
            best = min(best, v) if minimize else max(best, v)
        if math.isfinite(best):
            xs.append(spent / 60)
            ys.append(best)
    if xs:
        left.step(xs, ys, where="post", color="tab:green", lw=2)
        left.plot(xs, ys, "o", color="tab:green", ms=4)
    left.set_xlabel("cumulative trial time (minutes)")
    left.set_ylabel(f"best {metric} so far")
    left.set_title("performance vs compute")
    top = best_trial(study)
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        is_best = top is not None and t.number == top.number
        right.plot(steps, [t.intermediate_values[s] for s in steps], "--" if t.state == TrialState.PRUNED else "-",
                   lw=2.5 if is_best else 1, alpha=1 if is_best else 0.6,
                   label=f"best: trial {t.number}" if is_best else None)
    right.set_xlabel("step")
    right.set_ylabel(metric)
    right.set_title("each trial's eval curve (dashed: pruned)")
    if right.get_legend_handles_labels()[0]:  # the best trial may have no eval curve (e.g. diverged)
        right.legend()
    fig.savefig(path)
    return path


def plot_params(study: optuna.Study, metric: str, path: Path) -> Path | None:
    """The final value against each searched parameter (log axis for positive ranges spanning > 20x)."""
    done = [t for t in _trials(study) if t.state == TrialState.COMPLETE and t.value is not None]
    names = sorted({k for t in done for k in t.params})
    if not done or not names:
        return None
    fig, axes = _figure(4.5 * len(names), 4, ncols=len(names))
    axes = [axes] if len(names) == 1 else list(axes)
    finite = [t.value for t in done if math.isfinite(t.value)]
    ceiling = max(finite) if finite else 0.0
    for ax, name in zip(axes, names):
        pts = [(t.params[name], t.value) for t in done if name in t.params]
        xs = [p[0] for p in pts]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        if numeric and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        xs_plot = xs if numeric else [str(x) for x in xs]
        ok = [(x, v) for x, v in zip(xs_plot, [p[1] for p in pts]) if math.isfinite(v)]
        bad = [x for x, v in zip(xs_plot, [p[1] for p in pts]) if not math.isfinite(v)]
        if ok:
            ax.plot(*zip(*ok), "o", color="tab:blue", label="complete")
        if bad:
            ax.plot(bad, [ceiling] * len(bad), "x", color="tab:red", ms=9, label="diverged")
            ax.legend()
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
    fig.savefig(path)
    return path


def plot_sensitivity(sens: dict[str, Any], path: Path) -> Path:
    """Final loss vs LR with L0 and L*: the shaded area above L* (capped at L0) is what the metric averages."""
    fig, ax = _figure(6, 4)
    lrs, losses = sens["lrs"], [min(v, sens["init_loss"]) if math.isfinite(v) else sens["init_loss"]
                                for v in sens["losses"]]
    ax.plot(lrs, losses, "o-", color="tab:blue", label="final loss, capped at L0")
    ax.fill_between(lrs, sens["best_loss"], losses, alpha=0.2, color="tab:blue")
    ax.axhline(sens["init_loss"], color="gray", ls=":", label="L0 (init)")
    ax.axhline(sens["best_loss"], color="tab:green", ls="--", label="L* (best)")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final eval loss")
    ax.set_title(f"LR sensitivity {sens['value']:.4f}")
    ax.legend()
    fig.savefig(path)
    return path


def write_plots(study: optuna.Study, data: dict[str, Any], plot_dir: Path) -> list[str]:
    plot_dir.mkdir(parents=True, exist_ok=True)
    made = [plot_progress(study, data["metric"], plot_dir / "progress.png"),
            plot_importance(data["importance"], plot_dir / "importance.png"),
            plot_params(study, data["metric"], plot_dir / "params.png")]
    if data.get("sensitivity"):
        made.append(plot_sensitivity(data["sensitivity"], plot_dir / "sensitivity.png"))
    return [str(p) for p in made if p is not None]
