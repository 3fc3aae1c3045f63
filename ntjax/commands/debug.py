"""`ntjax debug PATH`: symptom-driven diagnosis of a run. Reads the logs (any format) and the run's
config.json when present, ranks the likely causes with their evidence, gives the concrete fix and the next
command. `--fix` re-trains an ntjax run briefly with the top fix applied and compares before/after at the
same steps."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ntjax.cli import Result, add_json_flag, add_trust_flags
from ntjax.errors import NtjaxError
from ntjax.core import runfolder as rf

FIX_MAX_STEPS = 1500  # the verification run is short: the first steps already tell a fixed LR from a bad one


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("debug", help="diagnose a run: ranked causes with evidence, fixes and next commands",
                       description=__doc__)
    p.add_argument("path", metavar="PATH", help="a run folder or log file (any supported format)")
    p.add_argument("--symptom", metavar="TEXT", help='what you see, e.g. "loss stuck at 2.3", "NaN at step 2k"')
    p.add_argument("--fix", action="store_true", help="re-run a short training with the top fix and compare")
    add_trust_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def _at(table, name: str, step: int) -> float | None:
    """The metric near `step`: median of the logged points in the last 5% of steps up to it."""
    import numpy as np
    s = table.get(name)
    if s is None:
        return None
    s = s.finite()
    keep = (s.step <= step) & (s.step >= step - max(1, int(0.05 * step)))
    if not keep.any():
        keep = s.step <= step
    return float(np.median(s.value[keep][-5:])) if keep.any() else None


def apply_fix(run_dir: Path, hypothesis, before_table) -> dict:
    """Train the run's config with the fix's overrides for a short while; before/after at the same step."""
    from ntjax.core import config as config_lib
    from ntjax.readers import read_run
    from ntjax.trainer import train
    cfg_path = run_dir / rf.CONFIG_FILE
    if not cfg_path.exists():
        raise NtjaxError(f"--fix needs an ntjax run folder with config.json; {run_dir} has none")
    cfg = config_lib.load(cfg_path)
    if not hypothesis.overrides:
        raise NtjaxError(f"the top cause ({hypothesis.cause}) has no automatic fix; run: {hypothesis.next}")
    last = max(int(s.step[-1]) for s in before_table.series.values() if len(s))
    steps = min(cfg.steps, FIX_MAX_STEPS, max(1, last))
    overrides = {k: v for k, v in hypothesis.overrides.items() if k != "steps"}
    if "warmup" in overrides:
        overrides["warmup"] = min(overrides["warmup"], max(1, steps // 10))
    fixed = dataclasses.replace(cfg, steps=steps, **overrides)
    out = run_dir.parent / f"{run_dir.name}_fix"
    k = 2
    while out.exists():
        out, k = run_dir.parent / f"{run_dir.name}_fix{k}", k + 1
    result = train(fixed, out, progress=False)
    after_table = read_run(out)
    step = min(steps, last)
    compare = {}
    for name in ("train/loss", "eval/loss"):
        b, a = _at(before_table, name, step), _at(after_table, name, step)
        if b is not None and a is not None:
            compare[name] = {"before": b, "after": a, "change": a - b}
    main = compare.get("eval/loss") or compare.get("train/loss")
    return {"cause": hypothesis.cause, "applied": overrides, "steps": steps, "out": str(out), "step": step,
            "compare": compare, "improved": bool(main and main["after"] < main["before"]),
            "diverged": bool(result.diverged)}


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
    for i, h in enumerate(data["hypotheses"][:5], 1):
        lines.append(f"{i}. {h['cause']}  (confidence {h['confidence']:.2f})")
        lines += [f"     - {e}" for e in h["evidence"][:4]]
        lines.append(f"     fix:  {h['fix']}")
        lines.append(f"     next: {h['next']}")
    fix = data.get("fix_result")
    if fix:
        lines.append(f"--fix ({fix['cause']}: {fix['applied']}) -> {fix['out']}, {fix['steps']} steps:")
        for name, c in fix["compare"].items():
            lines.append(f"     {name} at step {fix['step']}: {c['before']:.4g} -> {c['after']:.4g} "
                         f"({c['change']:+.4g})")
        lines.append("     improved" if fix["improved"] else "     not improved: try the next hypothesis")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Result:
    from ntjax.commands.curves import read
    from ntjax.diagnostics.detectors import analyse
    from ntjax.diagnostics.hypotheses import parse_symptoms, rank
    table = read(args.path)
    analysis = analyse(table)
    symptoms = parse_symptoms(args.symptom)
    hypotheses = rank(table, analysis, symptoms, args.path)
    data = {"source": table.source, "format": table.format, "symptoms": sorted(symptoms),
            "hypotheses": [h.to_dict() for h in hypotheses], "verdict": analysis.verdict,
            "findings": [f.to_dict() for f in analysis.findings], "problems": list(table.problems)}
    if args.fix:
        _check_trusted(Path(args.path))
        if not hypotheses:
            raise NtjaxError("--fix: no cause found to fix (the curves look healthy)")
        top = next((h for h in hypotheses if h.overrides), hypotheses[0])
        data["fix_result"] = apply_fix(Path(args.path), top, table)
    return Result(data, human(data))
