"""`ntjax debug PATH`: symptom-driven diagnosis of a run. Reads the logs (any format) and the run's
config.json when present, ranks the likely causes with their evidence, gives the concrete fix and the next
command. `--fix` re-trains an ntjax run briefly with the top fix applied and compares before/after at the
same steps. For a run of your own script (started with `ntjax run`, or logged by a bridge) the fix names
the flag or line to change, `next` is the exact re-run command, and `--fix` re-runs your command with the
changed flag and compares at equal steps."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ntjax.cli import Result, add_json_flag, add_trust_flags
from ntjax.core import runfolder as rf
from ntjax.diagnostics.runtable import value_near
from ntjax.errors import NtjaxError

FIX_MAX_STEPS = 1500  # the verification stops here (its schedule keeps the original length): enough to judge
FIX_SEEDS = 2  # two seeds of the fixed run: their spread is the seed-to-seed noise the change must beat


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("debug", help="diagnose a run: ranked causes with evidence, fixes and next commands",
                       description=__doc__)
    p.add_argument("path", metavar="PATH", help="a run folder or log file (any supported format)")
    p.add_argument("--symptom", metavar="TEXT", help='what you see, e.g. "loss stuck at 2.3", "NaN at step 2k"')
    p.add_argument("--fix", action="store_true", help="re-run a short training with the top fix and compare")
    add_trust_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


class _StopAt(Exception):
    """Raised from `on_eval` to end a verification run at the compare step (its schedule stays whole)."""


def _scatter(table, name: str, step: int) -> float:
    """Step-to-step scatter of a metric around `step` (MAD of its differences, in loss units)."""
    import numpy as np
    s = table.get(name)
    if s is None:
        return 0.0
    s = s.finite()
    keep = (s.step <= step) & (s.step >= step - max(5, int(0.1 * step)))
    v = s.value[keep]
    if v.size < 4:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(v) - np.median(np.diff(v)))) / np.sqrt(2))


def _arg(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _param(spec: dict) -> str:
    """A sweep parameter spec as `ntjax sweep --param` text: lr=log:1e-4:1e-2, batch_size=choice:16,32."""
    if spec["kind"] == "choice":
        return f"{spec['name']}=choice:" + ",".join(_arg(v) for v in spec["values"])
    return f"{spec['name']}={spec['kind']}:{spec['low']:.2g}:{spec['high']:.2g}"


def render_next(step: dict) -> str:
    """A hypothesis's next step ({"command", "args", "path"}) as the ntjax command line to type."""
    parts = ["ntjax", step["command"]]
    if step.get("path"):
        parts.append(str(step["path"]))
    for key, value in step.get("args", {}).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list) and key == "param":
            parts += [x for spec in value for x in (flag, _param(spec))]
        elif value is not None and value is not False:
            parts += [flag, _arg(value)]
    return " ".join(parts)


def apply_fix(run_dir: Path, hypothesis, before_table, seeds: int = FIX_SEEDS) -> dict:
    """Re-train the run's config with the fix's overrides, keeping the original schedule length (steps),
    stopped at the compare step; `seeds` re-runs give the seed-to-seed noise. "improved" only when the
    fixed runs beat the original at the same step by more than twice that noise."""
    import numpy as np

    from ntjax.core import config as config_lib
    from ntjax.readers import read_run
    from ntjax.trainer import train
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise NtjaxError(f"--fix needs a run folder with config.json (ntjax train) or run.json (ntjax run); "
                         f"{run_dir} has neither")
    cfg = config_lib.load(cfg_path)
    if not hypothesis.overrides:
        raise NtjaxError(f"the top cause ({hypothesis.cause}) has no automatic fix; run: {hypothesis.next}")
    last = max(int(s.step[-1]) for s in before_table.series.values() if len(s))
    stop = min(cfg.steps, FIX_MAX_STEPS, max(1, last))
    overrides = {k: v for k, v in hypothesis.overrides.items() if k != "steps"}
    if "warmup" in overrides:  # a warmup longer than the run would never reach the new peak LR
        overrides["warmup"] = min(overrides["warmup"], max(1, cfg.steps // 10))
    eval_every = cfg.eval_every if stop % cfg.eval_every == 0 else stop
    runs, outs = [], []
    for k in range(seeds):
        fixed = dataclasses.replace(cfg, seed=cfg.seed + k, eval_every=eval_every, **overrides)  # steps kept
        out = run_dir.parent / f"{run_dir.name}_fix"
        n = 2
        while out.exists():
            out, n = run_dir.parent / f"{run_dir.name}_fix{n}", n + 1

        def on_eval(step, metrics, stop=stop):
            if step >= stop and stop < fixed.steps:
                raise _StopAt()
        diverged = False
        try:
            diverged = bool(train(fixed, out, progress=False, on_eval=on_eval).diverged)
        except _StopAt:
            pass
        runs.append((read_run(out), diverged))
        outs.append(str(out))
    compare = {}
    for name in ("train/loss", "eval/loss"):
        b = value_near(before_table, name, stop)
        after = [a for a in (value_near(t, name, stop) for t, _ in runs) if a is not None]
        if b is None or not after:
            continue
        seed_noise = float(np.ptp(after)) if len(after) > 1 else 0.0
        noise = max(seed_noise, _scatter(before_table, name, stop), *(_scatter(t, name, stop) for t, _ in runs))
        mean = float(np.mean(after))
        compare[name] = {"before": b, "after": mean, "after_per_seed": after, "change": mean - b,
                         "seed_noise": seed_noise, "noise": noise,
                         "improved": bool(b - mean > 2 * noise)}
    main = compare.get("eval/loss") or compare.get("train/loss")
    return {"cause": hypothesis.cause, "applied": overrides, "steps": stop, "schedule_steps": cfg.steps,
            "seeds": seeds, "out": outs[0], "outs": outs, "step": stop, "compare": compare,
            "improved": bool(main and main["improved"]), "diverged": any(d for _, d in runs)}


def _check_trusted(run_dir: Path) -> None:
    """--fix trains the run's config: refuse before anything else if that imports a spec nobody named."""
    from ntjax.core.trust import check_spec

    spec = ((rf.read_config_dict(run_dir) or {}).get("train") or {}).get("spec")
    if spec:
        check_spec(spec)


def human(data: dict) -> str:
    lines = [f"== {data['source']} ({data['format']})", f"curves: {data['verdict']}"]
    if data.get("problems"):  # what could not be read was skipped, not fatal: say so
        lines.append("skipped while reading: " + "; ".join(data["problems"][:3])
                     + (f" (+{len(data['problems']) - 3} more)" if len(data["problems"]) > 3 else ""))
    if data["symptoms"]:
        lines.append("symptoms: " + ", ".join(data["symptoms"]))
    if not data["hypotheses"]:
        lines.append("no likely cause found: the curves look healthy. Run `ntjax curves` for the full picture.")
    if data.get("context"):
        lines.append("context: " + data["context"]["summary"])
    for i, h in enumerate(data["hypotheses"][:5], 1):
        lines.append(f"{i}. {h['cause']}  (confidence {h['confidence']:.2f}; log-odds {h['log_odds']:+.1f} "
                     f"vs healthy, prior {h['contributions'][0]['log_odds']:+.1f})")
        lines += [f"     - {e}" for e in h["evidence"][:5]]
        lines.append(f"     fix:  {h['fix']}")
        lines.append(f"     next: {h['next']}")
    if data.get("tie"):
        lines.append(data["tie"])
    lines += data.get("insufficient", [])
    fix = data.get("fix_result")
    if fix:
        if fix.get("command"):  # the user's own command, re-run with the change
            lines.append(f"--fix ({fix['cause']}: {fix['applied']}) -> {fix['out']}, {fix['steps']} steps:")
            lines.append(f"     re-ran: {fix['command']}")
        else:
            lines.append(f"--fix ({fix['cause']}: {fix['applied']}) -> {fix['out']}: {fix['seeds']} seeds, compared "
                         f"at step {fix['step']} of a {fix['schedule_steps']}-step schedule (the original length):")
        for name, c in fix["compare"].items():
            noise = (f"; seed-to-seed noise {c['seed_noise']:.3g}, noise used {c['noise']:.3g}"
                     if "noise" in c else "")
            lines.append(f"     {name} at step {fix['step']}: {c['before']:.4g} -> {c['after']:.4g} "
                         f"({c['change']:+.4g}{noise})")
        if fix.get("command"):
            lines.append("     improved" if fix["improved"] else "     not improved: try the next hypothesis")
        else:
            lines.append("     improved (beyond 2x the noise)" if fix["improved"] else
                         "     not improved beyond the noise: try the next hypothesis")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Result:
    from ntjax.commands.curves import read
    from ntjax.diagnostics.detectors import analyse
    from ntjax.diagnostics.hypotheses import diagnose, parse_symptoms
    table = read(args.path)
    analysis = analyse(table)
    symptoms = parse_symptoms(args.symptom)
    diagnosis = diagnose(table, analysis, symptoms, args.path)
    hypotheses = diagnosis.hypotheses
    for h in hypotheses:
        h.next = render_next(h.next_step)
    from ntjax.usercmd import fix as userfix
    user = userfix.user_run(args.path, table.meta.get("config"))
    if user is not None:  # the user's own script: fixes name its flags/lines, next re-runs its command
        cfg = userfix.user_config(table)
        hypotheses = [userfix.adapt(h, user, cfg, table, args.path) for h in hypotheses]
    data = {"source": table.source, "format": table.format, "symptoms": sorted(symptoms),
            "hypotheses": [h.to_dict() for h in hypotheses], "verdict": analysis.verdict,
            "findings": [f.to_dict() for f in analysis.findings], "problems": list(table.problems),
            "context": {"summary": diagnosis.context.summary(), **diagnosis.context.to_dict()},
            "p_healthy": round(diagnosis.p_healthy, 3), "insufficient": diagnosis.insufficient}
    if diagnosis.tie:
        data["tie"] = diagnosis.tie
    if user is not None:
        data["user_run"] = userfix.describe(user)
    if args.fix:
        _check_trusted(Path(args.path))
        if not hypotheses:
            raise NtjaxError("--fix: no cause found to fix (the curves look healthy)")
        top = next((h for h in hypotheses if h.overrides), hypotheses[0])
        if user is not None:
            data["fix_result"] = userfix.apply_user_fix(user, top, table)
        else:
            data["fix_result"] = apply_fix(Path(args.path), top, table)
    return Result(data, human(data))
