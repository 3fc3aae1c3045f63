"""The training loop: the thin host layer around the jitted step.

It dispatches step N+1 before reading step N's metrics (so logging never stalls the device), runs the
probe variant of the step every `probe_every` steps, evaluates and checkpoints on schedule, prints early
warnings the moment they happen, resumes from the latest checkpoint, and writes the run folder.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import jax
import numpy as np

from ntjax.core import config as config_lib
from ntjax.core import runfolder
from ntjax.core.checkpoint import Checkpoints, restore_newest_good
from ntjax.core.config import TrainConfig
from ntjax.core.faults import disk_full
from ntjax.core.flops import device_peak_flops, flops_per_token
from ntjax.core.host_metrics import device_memory_mb, host_rss_mb, speed_metrics
from ntjax.core.logger import MetricLogger, check_writable, truncate_after
from ntjax.core.runlock import RunLock
from ntjax.core.sharding import abstract, for_run, place, place_batch, start_distributed
from ntjax.core.state import build_state, evaluate
from ntjax.core.step import TrainState, gradient_parts, make_eval_step, make_train_step
from ntjax.diagnostics.instability import decide
from ntjax.diagnostics.nan_locate import localise_nonfinite
from ntjax.diagnostics.tree_stats import named_leaves
from ntjax.diagnostics.watch import Event, NoiseScale, Watch
from ntjax.errors import DiskFull, NtjaxError
from ntjax.viz.progress import LineProgress, ProgressBar


@dataclasses.dataclass
class _Pending:
    """A dispatched step whose metrics have not been read yet."""

    step: int
    metrics: dict
    state_before: TrainState
    index: int  # data batch index


@dataclasses.dataclass
class TrainResult:
    out_dir: Path
    final_step: int
    final_train_loss: float
    best_eval_loss: float
    best_eval_step: int | None
    diverged: bool
    eval_history: list[tuple[int, float]]
    events: list[dict[str, Any]]
    tokens_per_s: float
    wall_s: float
    resumed_from: int | None


def _fetch(metrics: dict[str, jax.Array]) -> dict[str, float]:
    host = jax.device_get(metrics)
    return {k: float(v) for k, v in host.items()}


def _check_resume(out_dir: Path, cfg: TrainConfig) -> None:
    saved = runfolder.read_config(out_dir)
    if saved.model != cfg.model or saved.spec != cfg.spec:
        raise NtjaxError(f"{out_dir} holds a run of a different model ({saved.preset}); resume it with the same "
                         "model, or choose another --out")


class Trainer:
    """One run: set up from a config and a run folder, then `run()`."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, on_eval: Callable | None = None,
                 progress: bool = True, callback: Callable | None = None, console: Any = None,
                 lines: tuple[float, IO[str]] | None = None):
        self.out = Path(out_dir)
        checkpoint_dir = self.out / runfolder.CHECKPOINTS_DIR  # shared: every process writes its own shards
        if cfg.mesh and start_distributed() and jax.process_index() > 0:
            self.out = self.out / f"process_{jax.process_index()}"  # one writer per log; process 0 has the run's
        check_writable(self.out)
        self.lock = RunLock(self.out).acquire()  # one writer per run folder: a second one is refused here
        self.keep_lock = False  # `train()` keeps it past `run()` to write the report
        self.lines_every, self.lines_stream = lines if lines else (0.0, None)
        try:
            self._setup(cfg, checkpoint_dir, on_eval, progress, callback, console)
        except BaseException:
            self.lock.release()
            raise

    def _setup(self, cfg: TrainConfig, checkpoint_dir: Path, on_eval: Callable | None, progress: bool,
               callback: Callable | None, console: Any) -> None:
        self.cfg = config_lib.resolve(cfg)
        self.on_eval, self.progress, self.console = on_eval, progress, console
        resuming = Checkpoints.has_any(checkpoint_dir)
        base = runfolder.load_base_params(self.cfg) if self.cfg.init_from and not resuming else None
        self.task, self.graphdef, self.state, self.make_tx = build_state(self.cfg, base_params=base)
        self.sharding = None
        if self.cfg.mesh:  # data parallel / FSDP: lay the state out over the devices
            self.sharding = for_run(self.cfg.mesh, self.cfg.batch_size, self.cfg.micro_batch_size, self.state)
            self.state = place(self.state, self.sharding.state)
        self.eval_batches = [self._on_mesh(b) for b in self.task.eval_batches]
        self.ckpts = Checkpoints(checkpoint_dir, keep=self.cfg.keep_ckpts)
        self.meta = {"data_offset": 0, "lr_factor": 1.0, "rollbacks": 0, "seed": self.cfg.seed}
        self.resumed_from = self._maybe_resume()
        self.logger = MetricLogger(self.out, self.cfg.log, config=config_lib.to_dict(self.cfg), callback=callback,
                                   run_name=self.out.name)
        self._compile(self.meta["lr_factor"])
        self.watch = Watch()
        parts = gradient_parts(self.cfg.accum_steps, self.sharding)  # micro-batches or data shards
        self.noise = NoiseScale(self.cfg.batch_size // parts, self.cfg.batch_size) if parts > 1 else None
        self.eval_history: list[tuple[int, float]] = []
        self._skips: list[int] = []
        dev = jax.local_devices()[0]
        peak = device_peak_flops(dev.device_kind, dev.platform)
        self._flops_per_s_peak = peak * jax.device_count() if peak else None
        m = self.cfg.model
        self._flops_per_token = flops_per_token(m.n_params(embedding=False), m.n_layers, m.seq_len, m.d_model)
        self._nan_located = False
        n = int(sum(x.size for x in jax.tree.leaves(self.state.params)))
        runfolder.write_config(self.out, self.cfg, {
            "model": {"class": type(self.task.model).__name__, "n_params": n,
                      "n_params_non_embedding": self.cfg.model.n_params(embedding=False),
                      "config": dataclasses.asdict(self.cfg.model)},
            "optimizer": runfolder.optimizer_evidence(self.cfg), "data": self.task.data_info,
            "accum_steps": self.cfg.accum_steps})

    def _maybe_resume(self) -> int | None:
        step = self.ckpts.latest_step()
        if step is None:  # a run killed before its first checkpoint starts over: drop its old lines
            truncate_after(self.out / runfolder.METRICS_FILE, 0)
            return None
        _check_resume(self.out, self.cfg)
        step, state, meta, skipped = restore_newest_good(self.ckpts, abstract(self.state))
        for message in skipped:
            self._warn(message)
        for moved in self.ckpts.quarantine():  # this run will save those steps again
            self._warn(f"moved the unreadable checkpoint to {moved}")
        self.state, self.meta = state, {**self.meta, **meta}
        truncate_after(self.out / runfolder.METRICS_FILE, step)
        return step

    def _compile(self, lr_factor: float) -> None:
        tx, self.schedule = self.make_tx(lr_factor)
        kw = dict(loss_fn=self.task.loss_fn, accum_steps=self.cfg.accum_steps, sharding=self.sharding)
        self.train_step = make_train_step(self.graphdef, tx, self.schedule, **kw)
        self.probe_step = make_train_step(self.graphdef, tx, self.schedule, probes=True,
                                          histograms="tensorboard" in self.cfg.log, **kw)
        self.eval_step = make_eval_step(self.graphdef, self.task.loss_fn)

    def _on_mesh(self, batch: Any) -> Any:
        return batch if self.sharding is None else place_batch(batch, self.sharding)

    def _warn(self, message: str) -> None:
        if getattr(self, "_lines", None) is not None:
            self._lines.warn(message)
        if self.console is not None:
            self.console.print(f"[bold yellow]warning:[/] {message}")
        else:
            print(f"warning: {message}", file=sys.stderr)

    def _record(self, step: int, device_metrics: dict) -> dict[str, float]:
        """Fetch one step's metrics (the next step is already queued, so this does not stall the device),
        add host-side ones, log them and run the early-warning checks."""
        hist = device_metrics.pop("hist", None)
        m = _fetch(device_metrics)
        if hist is not None:  # probe steps with TensorBoard on: gradient histograms
            for name, grad in named_leaves(jax.device_get(hist)).items():
                self.logger.histogram(step, f"grad_hist/{name}", np.asarray(grad))
        now = time.time()
        seconds, self._clock = now - self._clock, now
        if self._records:  # the first step after (re)start includes compilation
            self._train_seconds += seconds
        self._records += 1
        m.update(speed_metrics(seconds, self.cfg.batch_size, self.task.tokens_per_step, self._flops_per_token,
                               self._flops_per_s_peak))
        m["train/host_rss_mb"] = host_rss_mb()
        dev = device_memory_mb()
        if dev is not None:
            m["train/device_mem_mb"] = dev
        if self.noise is not None and "gns/small_sq" in m:
            m["train/gns_b_simple"] = self.noise.update(m.pop("gns/small_sq"), m.pop("gns/big_sq"))
        m["train/nonfinite"] = float(m["train/nonfinite"])
        self.logger.log(step, m)
        self._last_logged = step
        for event in self.watch.update(step, m):
            self._warn(event.message)
        return m

    def _evaluate(self, step: int) -> dict[str, float]:
        ev = evaluate(self.eval_step, self.state, self.eval_batches)
        self.logger.log(step, ev)
        self.eval_history.append((step, ev["eval/loss"]))
        if self.on_eval is not None:
            self.on_eval(step, ev)
        return ev

    def run(self) -> TrainResult:
        cfg, start = self.cfg, int(self.state.step)
        t0 = time.time()
        last: dict[str, float] = {}
        self._clock = time.time()
        self._records, self._train_seconds = 0, 0.0
        diverged = False
        if cfg.on_instability == "rollback" and self.ckpts.latest_step() is None:
            self.ckpts.save(start, self.state, self.meta)  # something to roll back to
        bar = ProgressBar(self.progress, cfg.steps, start, self.console)
        self._lines = lines = LineProgress(self.lines_every, cfg.steps, start, self.lines_stream)
        pending: _Pending | None = None
        queued: _Pending | None = None
        self._last_logged = start
        try:
            i = start
            while i < cfg.steps:
                index = i + self.meta["data_offset"]
                before = self.state
                fn = self.probe_step if i % cfg.probe_every == 0 else self.train_step
                self.state, metrics = fn(self.state, self._on_mesh(self.task.train_batch(index)))
                queued = _Pending(i + 1, metrics, before, index)
                step = i + 1
                boundary = step % cfg.eval_every == 0 or step % cfg.ckpt_every == 0 or step == cfg.steps
                # Read step N only after step N+1 is queued; at an eval/checkpoint boundary read both.
                for item in ([pending] if pending else []) + ([queued] if boundary else []):
                    last = self._record(item.step, item.metrics)
                    bar.update(last)
                    lines.update(item.step, last)
                    action = self._judge(item, last)
                    if action != "continue":
                        break
                else:
                    action = "continue"
                pending = None if boundary else queued
                if action == "stop":
                    diverged = True
                    break
                if action == "rollback":
                    pending = None
                    i = self._rollback(item.step)
                    if i < 0:
                        diverged = True
                        break
                    continue
                if boundary:
                    ev = self._evaluate(step) if step % cfg.eval_every == 0 or step == cfg.steps else None
                    if ev is not None:
                        lines.eval(step, ev)
                    if step % cfg.ckpt_every == 0 or step == cfg.steps:
                        self.ckpts.save(step, self.state, self.meta, ev)
                        if ev is None:
                            lines.checkpoint()
                    self._clock = time.time()  # eval and saving are not training time
                i += 1
        except KeyboardInterrupt:
            bar.close()
            self._save_on_interrupt([self.state] + [p.state_before for p in (pending, queued) if p is not None])
            raise
        finally:
            bar.close()
            lines.close()
            self.ckpts.close()
            self.logger.close()
            if not self.keep_lock:
                self.lock.release()
        return self._result(last, diverged, time.time() - t0, start)

    def _save_on_interrupt(self, candidates: list[TrainState]) -> None:
        """Ctrl-C: save the state of the last logged step (so a resume logs every step once), waiting at
        most INTERRUPT_SAVE_S; a second Ctrl-C abandons the save (the previous checkpoint stays usable)."""
        from ntjax.core.interrupt import save_within

        step = self._last_logged
        state = next((s for s in candidates if int(s.step) == step), None)
        latest = self.ckpts.latest_step()
        if state is None or step <= (latest or 0):
            where = f"checkpoint {latest}" if latest else "the start"
            self._warn(f"interrupted at step {step}: nothing new to save; a re-run resumes from {where}")
            return
        saved = save_within(lambda: (self.ckpts.save(step, state, self.meta), self.ckpts.wait()))
        if saved:
            self._warn(f"interrupted: saved a checkpoint at step {step}; re-run the same command to resume")
        else:
            self._warn(f"interrupted: the checkpoint of step {step} did not finish in time; a re-run resumes "
                       f"from {f'checkpoint {latest}' if latest else 'the start'}")

    def _judge(self, item: _Pending, m: dict[str, float]) -> str:
        """What to do after a step: continue, stop, or roll back (per `on_instability`)."""
        nonfinite = bool(m["train/nonfinite"])
        if nonfinite and not self._nan_located:
            self._nan_located = True
            where = localise_nonfinite(self.probe_step, item.state_before,
                                       self._on_mesh(self.task.train_batch(item.index)))
            self._event(item.step, "nan_origin", f"first non-finite value at step {item.step}: {where}")
        if m.get("train/skipped"):
            self._skips.append(item.step)
            self._event(item.step, "skip", f"spike guard skipped the update of step {item.step} "
                                           f"(loss {m['train/loss']:.4g}, grad norm {m['train/grad_norm']:.4g})")
        return decide(self.cfg.on_instability, item.step, nonfinite, self._skips)

    def _rollback(self, bad_step: int) -> int:
        """Restore the last good checkpoint, lower the LR, skip the data window that went wrong.
        Returns the step index to continue from, or -1 when the retry cap is reached."""
        if self.meta["rollbacks"] >= self.cfg.max_rollbacks:
            self._event(bad_step, "rollback_cap", f"{self.meta['rollbacks']} rollbacks already: giving up")
            return -1
        self.ckpts.wait()
        good, state, meta, skipped = restore_newest_good(self.ckpts, abstract(self.state))
        for message in skipped:
            self._warn(message)
        self.ckpts.quarantine()
        skip = bad_step - good
        self.meta = {**meta, "rollbacks": self.meta["rollbacks"] + 1,
                     "lr_factor": self.meta["lr_factor"] * self.cfg.rollback_lr_factor,
                     "data_offset": self.meta["data_offset"] + skip}
        self.state = state
        self._compile(self.meta["lr_factor"])
        self.logger.rewind(good)
        self.eval_history = [e for e in self.eval_history if e[0] <= good]
        self._skips.clear()
        self._event(bad_step, "rollback", f"rolled back from step {bad_step} to checkpoint {good}; LR x"
                                          f"{self.meta['lr_factor']:g}; skipping {skip} batches of data")
        self._clock = time.time()
        return good

    def _event(self, step: int, kind: str, message: str) -> None:
        """Record an instability event: warn now, keep it for the report, append it to events.jsonl."""
        self._warn(message)
        self.watch.events.append(Event(step, kind, message))
        with open(self.out / runfolder.EVENTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": round(time.time(), 3), "kind": kind, "message": message}) + "\n")

    def _result(self, last: dict, diverged: bool, wall: float, start: int) -> TrainResult:
        best = min(self.eval_history, key=lambda e: e[1], default=(None, math.nan))
        steps_done = int(self.state.step) - start
        # Steady-state speed: the first step after (re)start includes compilation and is left out.
        tokens_per_s = max(steps_done - 1, 0) * (self.task.tokens_per_step or 0) / max(self._train_seconds, 1e-9)
        return TrainResult(out_dir=self.out, final_step=int(self.state.step),
                           final_train_loss=last.get("train/loss", math.nan), best_eval_loss=best[1],
                           best_eval_step=best[0], diverged=diverged, eval_history=self.eval_history,
                           events=[dataclasses.asdict(e) for e in self.watch.events],
                           tokens_per_s=tokens_per_s, wall_s=wall, resumed_from=self.resumed_from)


def train(cfg: TrainConfig, out_dir: str | Path, *, on_eval: Callable | None = None, progress: bool = True,
          callback: Callable | None = None, console: Any = None, report: bool = True,
          lines: tuple[float, IO[str]] | None = None) -> TrainResult:
    """Train `cfg` into `out_dir` (resuming from its latest checkpoint), then write plots and report.md.

    `on_eval(step, metrics)` is called after each evaluation (a sweep raises from it to prune a trial).
    `progress` shows the rich bar; `lines=(every_s, stream)` writes plain `progress:` lines to `stream`
    every `every_s` seconds and at each eval and checkpoint (for output nobody watches on a terminal).
    """
    try:
        return _train(cfg, out_dir, on_eval=on_eval, progress=progress, callback=callback, console=console,
                      report=report, lines=lines)
    except Exception as e:
        full = disk_full(e, where=Path(out_dir).absolute())
        if full:  # one line naming the folder, not orbax's wall of nested tracebacks
            raise DiskFull(full) from None
        raise


def _train(cfg: TrainConfig, out_dir: str | Path, *, on_eval: Callable | None, progress: bool,
           callback: Callable | None, console: Any, report: bool,
           lines: tuple[float, IO[str]] | None = None) -> TrainResult:
    trainer = Trainer(cfg, out_dir, on_eval=on_eval, progress=progress, callback=callback, console=console,
                      lines=lines)
    trainer.keep_lock = True  # the report is written under the same lock
    try:
        if trainer.resumed_from is not None and trainer.resumed_from >= trainer.cfg.steps:
            # Already finished: report what it did, never overwrite its report with an empty re-run.
            trainer.ckpts.close()
            trainer.logger.close()
            result = finished_result(trainer)
            trainer._warn(f"{trainer.out} already finished its {trainer.cfg.steps} steps: nothing to train "
                          "(pass a larger --steps to continue it)")
            existing = Path(trainer.out) / runfolder.REPORT_FILE
            if existing.exists():
                os.utime(existing)  # resuming rewrote metrics.jsonl unchanged: the report is still current
            elif report:
                write_run_report(result)
            return result
        result = trainer.run()
        if report:
            write_run_report(result)
        return result
    finally:
        trainer.lock.release()


def finished_result(trainer: Trainer) -> TrainResult:
    """The result of a run that had already finished, read back from its own metrics.jsonl."""
    from ntjax.readers import read_run

    table = read_run(trainer.out / runfolder.METRICS_FILE)

    def values(name: str) -> tuple[np.ndarray, np.ndarray]:
        s = table.get(name)
        return (s.step, s.value) if s is not None and len(s) else (np.zeros(0), np.zeros(0))

    _, train_loss = values("train/loss")
    eval_steps, eval_loss = values("eval/loss")
    history = [(int(s), float(v)) for s, v in zip(eval_steps, eval_loss)]
    best = min(history, key=lambda e: e[1], default=(None, math.nan))
    _, speed = values("train/tokens_per_s")
    time_s = table.get("train/loss")
    wall = float(time_s.time[-1] - time_s.time[0]) if time_s is not None and len(time_s) > 1 else 0.0
    events = [dataclasses.asdict(e) for e in trainer.watch.events]
    return TrainResult(out_dir=trainer.out, final_step=int(trainer.state.step),
                       final_train_loss=float(train_loss[-1]) if len(train_loss) else math.nan,
                       best_eval_loss=best[1], best_eval_step=best[0], diverged=False, eval_history=history,
                       events=events, tokens_per_s=float(np.median(speed[1:] if len(speed) > 1 else speed))
                       if len(speed) else 0.0, wall_s=wall if math.isfinite(wall) else 0.0,
                       resumed_from=trainer.resumed_from)


def write_run_report(result: TrainResult) -> Path:
    """Read the finished run back through the readers, analyse it once, and hand both to the renderers."""
    from ntjax.diagnostics.detectors import analyse
    from ntjax.readers import read_run
    from ntjax.viz.report import write_report

    out = Path(result.out_dir)
    table = read_run(out / runfolder.METRICS_FILE)
    return write_report(result, runfolder.read_config_dict(out) or {}, table, analyse(table))
