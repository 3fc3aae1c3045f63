"""`ntjax debug` on a run of the user's own script (a bridge `config.json`, or an `ntjax run` folder with
`run.json`): the fix names the flag or the line to change, `next` is the exact re-run command (from the
recorded command or its sweep template), and `--fix` re-runs that command with the change and compares
the two runs at equal steps. ntjax's own `train`/`sweep` commands are never suggested for such a run:
they would train ntjax's model, not the user's."""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError
from ntjax.usercmd.report import FLAG_NAMES, find_flag, set_flag

# The Python keyword a script most likely sets each hyperparameter with (for naming the line to edit).
KEYWORDS = {"lr": ("lr", "learning_rate"), "weight_decay": ("weight_decay",), "clip_norm": ("max_norm", "clipnorm"),
            "warmup": ("warmup", "warmup_steps", "num_warmup_steps"), "steps": ("steps", "max_steps", "epochs")}


@dataclasses.dataclass
class UserRun:
    """What is known about how a user-script run was started."""

    path: Path
    framework: str
    argv: list[str] | None  # the command `ntjax run` launched (None: started outside ntjax run)
    template: str | None  # the sweep template it was filled from, if any
    values: dict[str, Any]
    cwd: str | None = None  # where the command was started (its relative paths are relative to it)

    @property
    def script(self) -> str | None:
        base = Path(self.cwd or ".")
        return next((str(base / a) if not Path(a).is_absolute() and self.cwd else a for a in self.argv or []
                     if a.endswith(".py") and (base / a).is_file()), None)


def user_run(path: str | Path, config: dict | None) -> UserRun | None:
    """The run as a user-script run, or None for an ntjax (`ntjax train`) run or a bare log file."""
    from ntjax.usercmd.launch import read_run_file

    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    run = read_run_file(folder)
    ntjax_native = bool(config) and (config.get("framework") == "ntjax" or "train" in config)
    if run is None and (not config or ntjax_native):
        return None
    framework = (config or {}).get("framework") or "unknown"
    if run is None:
        return UserRun(folder, framework, None, None, {})
    return UserRun(folder, framework, list(run.get("argv") or []) or None, run.get("template"),
                   dict(run.get("values") or {}), run.get("cwd"))


def proposal(cause: str, cfg: dict[str, Any], table) -> dict[str, Any]:
    """The hyperparameter changes the top fix for `cause` amounts to, e.g. {"lr": 3e-4} (3 digits)."""
    return {k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in _proposal(cause, cfg, table).items()}


def _proposal(cause: str, cfg: dict[str, Any], table) -> dict[str, Any]:
    import numpy as np

    given, logged = cfg.get("lr"), table.get("train/lr")
    lr = float(given) if isinstance(given, (int, float)) and given > 0 else None
    if lr is None and logged is not None and len(logged.finite()):
        lr = float(np.nanmax(logged.finite().value))
    steps = cfg.get("steps") or (int(max(s.step[-1] for s in table.series.values())) if table.series else None)
    if cause == "lr_too_low" and lr:
        return {"lr": lr * 10}
    if cause == "lr_too_high" and lr:
        return {"lr": lr / 10}
    if cause == "gradient_explosion":
        return {"clip_norm": 1.0, **({"lr": lr / 3} if lr else {})}
    if cause == "weight_decay":
        return {"weight_decay": 0.1}
    if cause == "insufficient_warmup" and steps:
        return {"warmup": max(10, int(0.05 * steps))}
    if cause == "underfitting" and steps:
        return {"steps": 2 * int(steps)}
    return {}


def _line_setting(script: str, name: str) -> tuple[int, str] | None:
    """(line number, text) of the first line in `script` that sets `name` as a keyword or assignment."""
    keys = "|".join(re.escape(k) for k in KEYWORDS.get(name, (name,)))
    pattern = re.compile(rf"\b({keys})\s*=\s*[-+0-9.eE]+")
    try:
        lines = Path(script).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines, 1):
        if pattern.search(line) and not line.lstrip().startswith("#"):
            return i, line.strip()
    return None


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def fixed_command(run: UserRun, changes: dict[str, Any], new_dir: Path) -> tuple[list[str] | None, list[str]]:
    """The command with every change made through its flags, and the changes it has no flag for.
    The old run folder in the command (e.g. `--out runs/r1`) becomes `new_dir`."""
    if not run.argv:
        return None, list(changes)
    argv = list(run.argv)
    if run.template and "run_dir" in run.values:
        from ntjax.usercmd.launch import fill_template
        argv = fill_template(run.template, {**run.values, "run_dir": str(new_dir)})
    else:
        old = {str(run.path), str(run.path.absolute())}
        argv = [str(new_dir) if a in old else a for a in argv]
    missing = []
    script_text = Path(run.script).read_text(errors="replace") if run.script else ""
    for name, value in changes.items():
        new = set_flag(argv, name, value)
        if new is None:  # the script takes the flag but the command left it at its default
            flag = next((f for f in FLAG_NAMES.get(name, ()) if f'"{f}"' in script_text or f"'{f}'" in script_text),
                        None)
            new = argv + [flag, _fmt(value)] if flag else None
        if new is None:
            missing.append(name)
        else:
            argv = new
    return argv, missing


def fix_dir(path: Path) -> Path:
    out, k = path.parent / f"{path.name}_fix", 2
    while out.exists():
        out, k = path.parent / f"{path.name}_fix{k}", k + 1
    return out


def adapt(h, run: UserRun, cfg: dict[str, Any], table, source: str):
    """`h` with its fix and next command made valid for the user's script; `h.overrides` -> the changes."""
    changes = proposal(h.cause, cfg, table)
    if not changes:  # advice with no hyperparameter change: read the curves, never `ntjax train`
        if h.next_step.get("command") in ("train", "sweep"):
            h.next_step = {"command": "curves", "path": source, "args": {}}
            h.next = f"ntjax curves {source}"
        h.overrides = {}
        return h
    what = ", ".join(f"{k} {_fmt(cfg.get(k)) if cfg.get(k) is not None else '?'} -> {_fmt(v)}"
                     for k, v in changes.items())
    new_dir = fix_dir(run.path)
    argv, missing = fixed_command(run, changes, new_dir)
    edits = []
    if argv is not None:
        for name in changes:
            if name not in missing:
                found = find_flag(argv, name)
                edits.append(f"`{found[1]} {_fmt(changes[name])}`" if found else name)
    for name in missing:
        where = _line_setting(run.script, name) if run.script else None
        edits.append(f"{run.script}:{where[0]} (`{where[1]}`): set {name}={_fmt(changes[name])}" if where else
                     f"set {name}={_fmt(changes[name])} where your script builds its optimizer"
                     + (" (no --flag for it)" if argv is not None else ""))
    h.fix = f"{what}: " + "; ".join(edits)
    if argv is not None:
        import os
        cd = f"cd {shlex.quote(run.cwd)} && " if run.cwd and os.path.abspath(run.cwd) != os.getcwd() else ""
        h.next = f"{cd}ntjax run --out {new_dir.absolute() if cd else new_dir} --yes -- {shlex.join(argv)}"
        if missing:
            h.next = f"(after editing {run.script or 'the script'}) " + h.next
    else:
        h.next = (f"ntjax run --out {new_dir} --yes -- python YOUR_SCRIPT.py  (start it under `ntjax run` so "
                  "`ntjax debug --fix` can re-run it)")
    if "lr" in changes and run.template and "{lr}" in run.template:
        lo, hi = sorted((changes["lr"] / 3, changes["lr"] * 3))
        h.next += f"  | or sweep: ntjax sweep --command '{run.template}' --param lr=log:{lo:.2g}:{hi:.2g}"
    h.next_step = {"command": "run", "args": {"out": str(new_dir), "yes": True}, "argv": argv,
                   "cwd": run.cwd, "edit_first": bool(missing) or argv is None}
    h.overrides = {**changes, "_argv": argv, "_missing": missing, "_dir": str(new_dir)}
    return h


def apply_user_fix(run: UserRun, h, before_table, grace: float = 120.0) -> dict[str, Any]:
    """Re-run the user's command with the fix and compare with the original run at equal steps."""
    from ntjax.diagnostics.runtable import value_near
    from ntjax.readers import ReadError, read_run
    from ntjax.usercmd.launch import launch_and_report, write_run_file

    o = h.overrides
    if not o:
        raise NtjaxError(f"the top cause ({h.cause}) has no automatic fix; next: {h.next}")
    if o.get("_argv") is None:
        raise NtjaxError(f"--fix re-runs the command that made the run, and {run.path} was not started with "
                         f"`ntjax run` (no run.json); apply the fix by hand ({h.fix}) and run: {h.next}")
    if o["_missing"]:
        raise NtjaxError(f"--fix changes flags only, and the command has none for {', '.join(o['_missing'])}: "
                         f"{h.fix}; then run: {h.next}")
    argv, out = o["_argv"], Path(o["_dir"])
    changes = {k: v for k, v in o.items() if not k.startswith("_")}
    write_run_file(out, argv, template=run.template, values={**run.values, **changes, "run_dir": str(out)})
    outcome = launch_and_report(argv, out, grace, "warn", cwd=run.cwd)
    if outcome.metrics_source is None:
        raise NtjaxError(f"the re-run logged nothing: {outcome.message.splitlines()[0] if outcome.message else ''}")
    try:
        after = read_run(out)
    except ReadError as e:
        raise NtjaxError(str(e)) from None
    last_before = max(int(s.step[-1]) for s in before_table.series.values() if len(s))
    last_after = max(int(s.step[-1]) for s in after.series.values() if len(s))
    step = min(last_before, last_after)
    compare = {}
    for name in ("train/loss", "eval/loss"):
        b, a = value_near(before_table, name, step), value_near(after, name, step)
        if b is not None and a is not None:
            compare[name] = {"before": b, "after": a, "change": a - b}
    main = compare.get("eval/loss") or compare.get("train/loss")
    return {"cause": h.cause, "applied": changes, "command": shlex.join(argv), "steps": last_after, "out": str(out),
            "step": step, "compare": compare, "improved": bool(main and main["after"] < main["before"]),
            "diverged": outcome.stopped == "instability" or any(e["kind"] == "nan" for e in outcome.events),
            "exit_code": outcome.exit_code}


def user_config(table) -> dict[str, Any]:
    from ntjax.diagnostics.hypotheses import config_evidence
    return config_evidence(table.meta.get("config"))


def describe(run: UserRun) -> dict[str, Any]:
    return {"framework": run.framework, "command": shlex.join(run.argv) if run.argv else None,
            "template": run.template}


def to_json(o: Any) -> str:
    return json.dumps(o, default=str)
