"""`ntjax scale run --command 'python train.py --width {width} --steps {steps} ...'`: a scaling study of the
user's own model family. Every point (width x steps) is an `ntjax run` of the filled-in template into
OUT/w<width>_s<steps>; N is the parameter count the run's `config.json` reports (the bridges write it) or
`--n-params WIDTH=N,...`; D = steps x --tokens-per-step; the loss is the final logged --metric. The rows go
to the same scaling.csv that `ntjax scale fit` reads."""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from ntjax.errors import NtjaxError


def parse_n_params(text: str | None) -> dict[int, int]:
    """`16=1234,32=4567` -> {16: 1234, 32: 4567}."""
    if not text:
        return {}
    try:
        return {int(k): int(float(v)) for k, v in (item.split("=") for item in text.split(",") if item.strip())}
    except ValueError:
        raise NtjaxError(f"--n-params must look like WIDTH=N,WIDTH=N (got {text!r})") from None


def config_n_params(run_dir: Path) -> int | None:
    """The parameter count in a run folder's config.json (bridge `model.parameters`, ntjax `n_params`)."""
    from ntjax.diagnostics.hypotheses import config_evidence

    path = run_dir / "config.json"
    if not path.is_file():
        return None
    try:
        n = config_evidence(json.loads(path.read_text())).get("n_params")
    except (OSError, ValueError):
        return None
    return int(n) if isinstance(n, (int, float)) and n > 0 else None


def design(template: str, widths: Sequence[int], steps: Sequence[int]) -> list[tuple[int, int]]:
    from ntjax.usercmd.launch import placeholders

    used = placeholders(template)
    unknown = used - {"width", "steps", "run_dir", "seed"}
    if unknown:
        raise NtjaxError(f"--command uses {', '.join('{' + u + '}' for u in sorted(unknown))}; scale run fills "
                         "{width}, {steps}, {run_dir} and {seed}")
    if "width" not in used and "steps" not in used:
        raise NtjaxError("--command must use {width} and/or {steps}: they are what the study varies")
    if ("width" in used) != bool(widths) or ("steps" in used) != bool(steps):
        raise NtjaxError("give --widths W,W,... for {width} and --step-counts S,S,... for {steps} (and only those)")
    points = list(itertools.product(widths or [0], steps or [0]))
    if len(points) < 3:
        raise NtjaxError(f"{len(points)} runs: a scaling study needs at least 3 (5 for L(N, D))")
    return points


def execute_command(template: str, widths: Sequence[int], steps: Sequence[int], out_dir: Path, *,
                    tokens_per_step: float, metric: str = "eval/loss", n_params: dict[int, int] | None = None,
                    grace: float = 120.0, log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Run every point (a finished point's recorded row is reused) and return the CSV rows."""
    from ntjax.sweep.command import final_value
    from ntjax.usercmd.launch import fill_template, launch_and_report, write_run_file

    points = design(template, widths, steps)
    rows = []
    for i, (w, s) in enumerate(points):
        name = f"w{w}_s{s}"
        folder = (out_dir / name).absolute()
        done = folder / "scale_point.json"
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            continue
        values = {"width": w, "steps": s, "run_dir": str(folder), "seed": 0}
        argv = fill_template(template, values)
        log(f"[{i + 1}/{len(points)}] {name}: {' '.join(argv)}")
        write_run_file(folder, argv, template=template, values=values)
        outcome = launch_and_report(argv, folder, grace, "warn", plots=False)  # the study plots the fit
        if outcome.failed_at_start or outcome.stopped == "no_metrics":
            raise NtjaxError(f"run {name} failed before logging anything: {outcome.message.splitlines()[0]}")
        n = (n_params or {}).get(w) or config_n_params(folder)
        if n is None:
            raise NtjaxError(f"run {name} reports no parameter count (no config.json with one): log with an ntjax "
                             "bridge monitor, or pass --n-params WIDTH=N,...")
        loss, names = final_value(outcome.metrics_source, metric)
        if loss is None:
            raise NtjaxError(f"run {name} never logged {metric} (logged: {', '.join(names)})")
        last = outcome.last_step or s
        row = {"name": name, "group": "command", "N": n, "N_total": n, "D": int(last * tokens_per_step),
               "flops": 6.0 * n * last * tokens_per_step, "loss": loss, "d_model": w, "n_layers": None,
               "steps": last, "lr": None, "warmup": None,
               "diverged": bool(outcome.exit_code != 0 or not math.isfinite(loss))}
        done.write_text(json.dumps(row))
        rows.append(row)
    return rows
