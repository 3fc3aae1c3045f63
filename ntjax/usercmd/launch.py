"""Any training command as a monitored run: the launcher and log watcher behind `ntjax run` (and the
trials of `sweep --command`, `scale run --command`, `lr-find --command`, `debug --fix` on a user run).

The child gets the run folder in `NTJAX_RUN_DIR` (the bridges' monitors default their `log_dir` to it),
its stdout/stderr go to `RUN/console.log` (a text log the readers read), and the folder is polled for
metrics in any format the readers know. No metrics within the grace period: the job is stopped and the
lines to add are named (mandatory logging holds for foreign code too). New train points go through
`ntjax.diagnostics.watch.Watch` for the same early warnings as `ntjax train`; new eval points go to `on_eval`
(a sweep prunes from there). The child runs in its own process group so that stopping it stops
everything it started.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError

RUN_FILE = "run.json"
CONSOLE_FILE = "console.log"
EVENTS_FILE = "events.jsonl"
ENV_RUN_DIR = "NTJAX_RUN_DIR"
DEFAULT_GRACE_S = 120.0
POLL_S = 0.5
REREAD_S = 2.0  # formats other than metrics.jsonl are re-read whole, at most this often
STOP_WAIT_S = 5.0  # after SIGINT/SIGTERM, how long the child gets before the next, harder signal


class Stop(Exception):
    """Raised by an `on_eval` callback to stop the child (a pruned sweep trial); the message says why."""


@dataclasses.dataclass
class Outcome:
    """How a launched command ended."""

    exit_code: int  # the child's status (128+N when a signal N ended it)
    stopped: str | None  # None | "no_metrics" | "instability" | "callback" | "interrupted"
    message: str  # why it was stopped, or ""
    metrics_source: str | None
    events: list[dict[str, Any]]
    eval_history: list[tuple[int, dict[str, float]]]
    last_train: dict[str, float]
    last_step: int | None
    wall_s: float
    started_metrics: bool  # any metric appeared

    @property
    def failed_at_start(self) -> bool:
        """The command failed (or logged nothing) before producing a single metric."""
        return not self.started_metrics and (self.exit_code != 0 or self.stopped == "no_metrics")


def fill_template(template: str, values: dict[str, Any]) -> list[str]:
    """`python train.py --lr {lr} --out {run_dir}` with values -> argv. Unknown placeholders are refused
    (one line), so a typo never launches a run with a literal `{lr}`."""
    import string

    names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    missing = sorted(n for n in names if n not in values)
    if missing:
        raise NtjaxError(f"--command uses {', '.join('{' + m + '}' for m in missing)}, which is not a searched "
                         f"parameter nor one of {{run_dir}}, {{trial}}, {{seed}}")
    text = template.format(**{k: _fmt(v) for k, v in values.items()})
    return shlex.split(text)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def placeholders(template: str) -> set[str]:
    import string
    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as e:
        raise NtjaxError(f"--command is not a valid template ({e})") from None


def write_run_file(out: Path, argv: Sequence[str], template: str | None = None,
                   values: dict[str, Any] | None = None) -> Path:
    """`run.json`: the command, its template and values, where it ran: what `debug --fix` re-runs."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"framework": "command", "argv": list(argv), "command": shlex.join(argv), "template": template,
            "values": values or {}, "cwd": os.getcwd(), "started": time.time()}
    (out / RUN_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n")
    return out / RUN_FILE


def read_run_file(out: str | Path) -> dict[str, Any] | None:
    path = Path(out) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def update_run_file(out: Path, **changes: Any) -> None:
    data = read_run_file(out) or {}
    data.update(changes)
    (out / RUN_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n")


# --- reading the growing logs ---------------------------------------------------------------------

def find_metrics_source(run_dir: Path) -> str | None:
    """Where the run's metrics are: a log any reader knows under the run folder (ntjax/bridge
    `metrics.jsonl` first), else the console log when the text reader finds a loss in it."""
    from ntjax.readers.detect import find_runs

    console = str((run_dir / CONSOLE_FILE).absolute())
    runs = [r for r in find_runs(str(run_dir)) if os.path.abspath(r.path) != console]
    for run in sorted(runs, key=lambda r: (r.kind != "ntjax", -r.mtime())):
        try:
            _table(run.path if run.kind != "ntjax" else os.path.dirname(run.files[0]))
            return run.path if run.kind != "ntjax" else run.files[0]
        except Exception:  # not (yet) readable: a file still being created
            continue
    if os.path.isfile(console):
        try:
            table = _table(console)
        except Exception:
            return None
        if table.get("train/loss") is not None or table.get("eval/loss") is not None:
            return console
    return None


def _table(path: str):
    from ntjax.readers import read_run
    return read_run(path)


class LogTail:
    """New points of a run's metrics since the last poll, as {step: {metric: value}} for train and eval.

    `metrics.jsonl` is read incrementally (complete lines only); other formats are re-read whole."""

    def __init__(self, source: str):
        self.source = source
        self._offset = 0
        self._buffer = b""
        self._last_read = 0.0
        self._seen_train = -1
        self._seen_eval = -1

    def poll(self, force: bool = False) -> tuple[list[tuple[int, dict]], list[tuple[int, dict]]]:
        rows = self._jsonl_rows() if self.source.endswith(".jsonl") else self._table_rows(force)
        train, evals = [], []
        for step, m in sorted(rows, key=lambda r: r[0]):
            t = {k: v for k, v in m.items() if k.startswith("train/")}
            e = {k: v for k, v in m.items() if k.startswith("eval/")}
            if t and step > self._seen_train:
                train.append((step, t))
                self._seen_train = step
            if e and step > self._seen_eval:
                evals.append((step, e))
                self._seen_eval = step
        return train, evals

    def _jsonl_rows(self) -> list[tuple[int, dict]]:
        try:
            with open(self.source, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return []
        self._offset += len(chunk)
        data = self._buffer + chunk
        lines = data.split(b"\n")
        self._buffer = lines.pop()  # an incomplete last line waits for the next poll
        rows = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not isinstance(obj, dict) or "step" not in obj:
                continue
            from ntjax.diagnostics.runtable import normalise_name
            m = {normalise_name(k): _number(v) for k, v in obj.items() if k not in ("step", "time")}
            rows.append((int(obj["step"]), {k: v for k, v in m.items() if v is not None}))
        return rows

    def _table_rows(self, force: bool) -> list[tuple[int, dict]]:
        now = time.time()
        if not force and now - self._last_read < REREAD_S:
            return []
        self._last_read = now
        try:
            table = _table(self.source)
        except Exception:
            return []
        rows: dict[int, dict] = {}
        for name, s in table.series.items():
            for step, value in zip(s.step.tolist(), s.value.tolist()):
                rows.setdefault(int(step), {})[name] = float(value)
        return list(rows.items())


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(v)
    return None


# --- launching ---------------------------------------------------------------------------------

def missing_logging_message(argv: Sequence[str], run_dir: Path, grace: float) -> str:
    """What to add so the run writes metrics: the `ntjax detect` lines for the script, if one is named."""
    script = next((a for a in argv if a.endswith(".py") and os.path.isfile(a)), None)
    head = (f"no metrics appeared in {run_dir} within {grace:g} s, so the job was stopped (ntjax runs are "
            "always logged).")
    lines: list[str] = []
    if script:
        try:
            from ntjax.diagnostics.framework import detect
            d = detect(script)
            for b in d.bridges:
                lines += [f"    {line}" for line in b["lines"]]
        except Exception:  # a script detect cannot parse: the generic advice below still holds
            lines = []
    if lines:
        body = f"Add these lines to {script} (from `ntjax detect {script}`):\n" + "\n".join(lines)
    else:
        body = ("Log from the script: `from ntjax.bridges.torch import TorchMonitor` (PyTorch), "
                "`from ntjax.bridges.tensorflow import KerasCallback` (Keras), or write metrics.jsonl / "
                "TensorBoard / CSV logs into the folder in $NTJAX_RUN_DIR.")
    return (f"{head}\n{body}\nThe monitors write to $NTJAX_RUN_DIR ({run_dir}) when given "
            f"log_dir=os.environ['NTJAX_RUN_DIR']; raise --grace if the first step takes longer than {grace:g} s.")


def _tail_text(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be killed when the watcher dies (a killed sweep worker must not
    leave an unwatched training job running). Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class Launcher:
    """Run one command into a run folder with the watcher around it. `run()` returns an Outcome."""

    def __init__(self, argv: Sequence[str], run_dir: str | Path, *, grace: float = DEFAULT_GRACE_S,
                 on_instability: str = "warn", echo: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None, on_eval: Callable[[int, dict], None] | None = None,
                 on_train: Callable[[int, dict], None] | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None):
        if not argv:
            raise NtjaxError("no command given: put it after --, e.g. ntjax run -- python train.py")
        self.argv = list(argv)
        self.run_dir = Path(run_dir)
        self.grace, self.on_instability = grace, on_instability
        self.echo, self.warn = echo, warn or (lambda s: print(f"warning: {s}", file=sys.stderr, flush=True))
        self.on_eval, self.on_train = on_eval, on_train
        self.env = env or {}
        self.cwd = cwd  # None: this process's working folder
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.run_dir.absolute()  # the child may start in another folder (cwd)
        env = {**os.environ, **self.env, ENV_RUN_DIR: str(self.run_dir), "PYTHONUNBUFFERED": "1"}
        self._console = open(self.run_dir / CONSOLE_FILE, "ab")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True,  # its own process group: stop it whole
                                         preexec_fn=_die_with_parent, cwd=self.cwd)
        except OSError as e:
            self._console.close()
            raise NtjaxError(f"cannot start {self.argv[0]!r}: {e.strerror or e}") from None
        update_run_file(self.run_dir, pid=self.proc.pid)
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        """The child's output, line by line, into console.log (and echoed while it runs)."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self._console.write(line)
            self._console.flush()
            if self.echo is not None:
                self.echo(line.decode("utf-8", "replace").rstrip("\n"))

    def stop(self, first: int = signal.SIGTERM) -> None:
        """Stop the child's whole process group: `first`, then SIGTERM, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig in dict.fromkeys((first, signal.SIGTERM, signal.SIGKILL)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(STOP_WAIT_S)
                return
            except subprocess.TimeoutExpired:
                continue

    def run(self) -> Outcome:
        from ntjax.diagnostics.watch import Watch

        t0 = time.time()
        self._start()
        assert self.proc is not None
        watch, tail, source = Watch(), None, None
        events: list[dict] = []
        evals: list[tuple[int, dict]] = []
        last_train: dict[str, float] = {}
        last_step = None
        stopped, message = None, ""
        try:
            while True:
                done = self.proc.poll() is not None
                if tail is None:
                    source = find_metrics_source(self.run_dir)
                    if source is not None:
                        tail = LogTail(source)
                if tail is not None:
                    train, new_evals = tail.poll(force=done)
                    for step, m in train:
                        last_train, last_step = {**last_train, **m}, step
                        if self.on_train is not None:
                            self.on_train(step, m)
                        loss = m.get("train/loss")
                        if loss is None:
                            continue
                        # Logs without a grad norm: 0 keeps Watch's loss checks on and its grad check off.
                        for e in watch.update(step, {"train/loss": loss, "train/grad_norm":
                                                     m.get("train/grad_norm", 0.0)}):
                            events.append(self._event(e.step, e.kind, e.message))
                            if e.kind == "nan" and self.on_instability == "stop":
                                stopped = "instability"
                                message = f"{e.message}: stopped the job (--on-instability stop)"
                    for step, m in new_evals:
                        evals.append((step, m))
                        if self.on_eval is not None:
                            try:
                                self.on_eval(step, m)
                            except Stop as s:
                                stopped, message = "callback", str(s)
                    if stopped:
                        self.stop()
                        break
                elif time.time() - t0 > self.grace and not done:
                    stopped, message = "no_metrics", missing_logging_message(self.argv, self.run_dir, self.grace)
                    self.stop()
                    break
                if done:
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            stopped, message = "interrupted", "interrupted (Ctrl-C): the job was stopped"
            self.stop(signal.SIGINT)  # a Python script gets its KeyboardInterrupt and can clean up
            # What the job logged before Ctrl-C still counts: read the rest of the log once more.
            if tail is None and (source := find_metrics_source(self.run_dir)) is not None:
                tail = LogTail(source)
            if tail is not None:
                for step, m in tail.poll(force=True)[0]:
                    last_train, last_step = {**last_train, **m}, step
        finally:
            if self.proc.poll() is None:
                self.stop()
            self._pump.join(timeout=STOP_WAIT_S)
            self._console.close()
        code = self.proc.returncode
        code = 128 - code if code < 0 else code
        if source is None:
            source = find_metrics_source(self.run_dir)
        if source is None and stopped is None:
            stopped = "no_metrics"
            message = missing_logging_message(self.argv, self.run_dir, self.grace).replace(
                f"within {self.grace:g} s, so the job was stopped", f"before the command ended (exit {code})")
            if code != 0:
                message = (f"the command failed at start (exit {code}) before logging anything; last lines of "
                           f"{self.run_dir / CONSOLE_FILE}:\n{_tail_text(self.run_dir / CONSOLE_FILE)}")
        return Outcome(exit_code=code, stopped=stopped, message=message, metrics_source=source, events=events,
                       eval_history=evals, last_train=last_train, last_step=last_step, wall_s=time.time() - t0,
                       started_metrics=source is not None)

    def _event(self, step: int, kind: str, message: str) -> dict:
        self.warn(message)
        event = {"step": step, "time": round(time.time(), 3), "kind": kind, "message": message}
        with open(self.run_dir / EVENTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
        return event


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def launch_and_report(argv: list[str], out: Path, grace: float, on_instability: str, echo=None, *,
                      plots: bool = True, **kw):
    """Launch, watch, then write report.md (and plots/ unless `plots` is False) and record the outcome in
    run.json; returns the Outcome."""
    from ntjax.usercmd.report import write_user_report

    outcome = Launcher(argv, out, grace=grace, on_instability=on_instability, echo=echo, **kw).run()
    write_user_report(out, outcome, argv, plots_too=plots)
    update_run_file(out, exit_code=outcome.exit_code, stopped=outcome.stopped,
                    metrics_source=outcome.metrics_source, last_step=outcome.last_step)
    return outcome
