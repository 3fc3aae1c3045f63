"""Evaluate checkpoints of ntjax runs: metrics on the run's held-out split or a given text, comparison
across a run's checkpoints and against a baseline (regressions flagged), and the forgetting check of a
fine-tune (per-token loss change on the original data between the base and the tuned model).

Evaluation reuses the trainer's own eval step, batches and `evaluate`, so on the data a run evaluated
on, `eval/loss` here equals what the run logged at that step.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntjax.core.config import TrainConfig
from ntjax.core.runfolder import LoadedRun, read_config
from ntjax.errors import NtjaxError

REGRESSION_TOLERANCE = 0.01  # relative: a checkpoint 1% worse than the best before it is a regression
MIN_TOKEN_COUNT = 20  # a byte must be a target this often before its mean loss change is reported
FORGETTING_BATCHES = 32  # at least this many eval batches for the forgetting check: per-token stats need tokens


def locate_checkpoint(path: str | Path) -> tuple[Path, int | None]:
    """(run folder, step) for a run folder (step None: latest) or one checkpoint `RUN/checkpoints/<step>`."""
    p = Path(path)
    if (p / "checkpoints").is_dir():
        return p, None
    if p.parent.name == "checkpoints" and p.name.isdigit():
        if not p.is_dir():
            raise NtjaxError(f"no checkpoint {p}")
        return p.parent.parent, int(p.name)
    if not p.exists():
        raise NtjaxError(f"{p} does not exist")
    raise NtjaxError(f"{p} is neither an ntjax run folder (with checkpoints/) nor a checkpoint RUN/checkpoints/STEP")


def load_checkpoint(path: str | Path, step: int | None = None, best: bool = False) -> LoadedRun:
    """Load a run folder's latest (or best, or `step`) checkpoint, or the checkpoint `path` names."""
    from ntjax.core.runfolder import load_run

    run_dir, named = locate_checkpoint(path)
    if named is not None and step is not None and named != step:
        raise NtjaxError(f"{path} is the checkpoint of step {named}, not {step}")
    return load_run(run_dir, named if named is not None else step, which="best" if best else "latest")


def checkpoint_steps(run_dir: Path) -> list[int]:
    from ntjax.core.checkpoint import Checkpoints

    ckpts = Checkpoints(Path(run_dir) / "checkpoints", async_save=False, read_only=True)
    try:
        return ckpts.steps()
    finally:
        ckpts.close()


def iter_checkpoints(run_dir: Path, steps: list[int]) -> Iterator[LoadedRun]:
    """Every listed checkpoint of a run, building the model once (restoring is cheap, building is not)."""
    from ntjax.core.checkpoint import Checkpoints
    from ntjax.trainer import build_state

    cfg = read_config(run_dir)
    _, graphdef, state, _ = build_state(cfg)
    abstract = jax.tree.map(np.zeros_like, state)
    ckpts = Checkpoints(Path(run_dir) / "checkpoints", async_save=False, read_only=True)
    try:
        for step in steps:
            restored, meta = ckpts.restore(step, abstract)
            yield LoadedRun(cfg=cfg, graphdef=graphdef, state=restored, step=step, meta=meta)
    finally:
        ckpts.close()


# --- data ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class EvalData:
    """Fixed eval batches ([B, T+1] tokens) and what they are."""

    batches: list[np.ndarray]
    description: str
    loss_fn: Callable
    spec: Any = None  # the user's spec module, when the run has one (for its custom eval metrics)


def text_batches(cfg: TrainConfig, text: str | None, n_batches: int | None = None) -> list[np.ndarray]:
    """The held-out tail of `text` (None: the embedded corpus) cut into the run's fixed eval windows."""
    from ntjax.core.data import make_data

    data = make_data(cfg.model.seq_len, cfg.seed, cfg.eval_fraction, text)
    return data.eval_batches(n_batches or cfg.eval_batches, cfg.micro_batch_size or cfg.batch_size)


def eval_data(cfg: TrainConfig, data: str | None = None, n_batches: int | None = None) -> EvalData:
    """The run's own eval split (exactly what the trainer evaluated on), or the held-out tail of `data`."""
    from ntjax.core.spec import load_spec
    from ntjax.core.task import build_task

    task = build_task(cfg)
    spec = load_spec(cfg.spec) if cfg.spec else None
    if data is None and n_batches is None:
        source = f"spec {cfg.spec} eval_batches" if cfg.spec else (
            f"the run's held-out split: last {cfg.eval_fraction:.0%} of {cfg.data or 'the embedded corpus'}")
        return EvalData([np.asarray(b) for b in task.eval_batches], source, task.loss_fn, spec)
    if cfg.spec:
        raise NtjaxError("--data/--batches work with the default GPT task; a spec run evaluates on its spec's "
                         "eval_batches()")
    source = f"held-out last {cfg.eval_fraction:.0%} of {data or cfg.data or 'the embedded corpus'}"
    return EvalData(text_batches(cfg, data or cfg.data, n_batches), source, task.loss_fn)


# --- metrics ---------------------------------------------------------------------------------------------

def evaluate_checkpoint(run: LoadedRun, data: EvalData, eval_step: Callable | None = None) -> dict[str, float]:
    """eval/loss, eval/ppl, eval/accuracy (the trainer's `evaluate`) plus the spec's `eval_metrics`."""
    from ntjax.core.step import make_eval_step
    from ntjax.trainer import evaluate

    eval_step = eval_step or make_eval_step(run.graphdef, data.loss_fn)
    metrics = evaluate(eval_step, run.state, data.batches)
    custom = getattr(data.spec, "eval_metrics", None)
    if custom is not None:
        metrics.update(spec_metrics(custom, run, data.batches))
    return metrics


def spec_metrics(fn: Callable, run: LoadedRun, batches: list) -> dict[str, float]:
    """A spec's `eval_metrics(model, batch) -> {name: scalar}`, averaged over the batches as `eval/<name>`."""
    from flax import nnx

    model = nnx.merge(run.graphdef, run.state.params, run.state.frozen)
    totals: dict[str, list[float]] = {}
    for batch in batches:
        for name, value in fn(model, batch).items():
            totals.setdefault(name if name.startswith("eval/") else f"eval/{name}", []).append(float(value))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def logged_evals(run_dir: Path) -> dict[int, dict[str, float]]:
    """The eval metrics a run logged, by step (last write of a step wins, as in a resumed run)."""
    path = Path(run_dir) / "metrics.jsonl"
    out: dict[int, dict[str, float]] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
                step = int(rec["step"])
            except (ValueError, KeyError, TypeError):
                continue
            evals = {k: float(v) for k, v in rec.items() if k.startswith("eval/")}
            if evals:
                out.setdefault(step, {}).update(evals)
    return out


def regressions(rows: list[dict], metric: str = "eval/loss", tolerance: float = REGRESSION_TOLERANCE) -> list[dict]:
    """Checkpoints whose `metric` (lower is better) is worse than the best earlier one by more than
    `tolerance` (relative). Each: step, value, best_step, best_value, relative change."""
    flagged, best = [], None
    for row in sorted(rows, key=lambda r: r["step"]):
        value = row["metrics"][metric]
        if best is not None and (not math.isfinite(value) or value > best[1] * (1 + tolerance)):
            flagged.append({"step": row["step"], "value": value, "best_step": best[0], "best_value": best[1],
                            "relative_change": (value - best[1]) / abs(best[1]) if math.isfinite(value) else math.inf})
        if math.isfinite(value) and (best is None or value < best[1]):
            best = (row["step"], value)
    return flagged


def compare_to_baseline(candidate: dict[str, float], baseline: dict[str, float],
                        tolerance: float = REGRESSION_TOLERANCE) -> dict[str, Any]:
    """Candidate minus baseline for each shared metric; a regression when eval loss is worse by > tolerance."""
    delta = {k: candidate[k] - baseline[k] for k in candidate if k in baseline}
    loss, base = candidate["eval/loss"], baseline["eval/loss"]
    rel = (loss - base) / abs(base) if base else math.inf
    return {"delta": delta, "relative_change": rel, "regression": bool(not math.isfinite(loss) or rel > tolerance)}


# --- forgetting ------------------------------------------------------------------------------------------

def token_losses(run: LoadedRun, batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token next-token cross-entropy [N, T], whether the argmax was right [N, T], and targets [N, T].

    Plain cross-entropy (no z-loss): the quantity forgetting is measured in, nats per token.
    """
    from flax import nnx

    @jax.jit
    def losses(params, frozen, batch):
        out = nnx.merge(run.graphdef, params, frozen)(batch[:, :-1])
        logits = (out[0] if isinstance(out, tuple) else out).astype(jnp.float32)
        targets = batch[:, 1:]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return ce, jnp.argmax(logits, -1) == targets

    parts = [losses(run.state.params, run.state.frozen, jnp.asarray(b)) for b in batches]
    ce = np.concatenate([np.asarray(p[0]) for p in parts])
    hit = np.concatenate([np.asarray(p[1]) for p in parts])
    return ce, hit, np.concatenate([np.asarray(b)[:, 1:] for b in batches])


def forgetting_stats(base_ce: np.ndarray, tuned_ce: np.ndarray, base_hit: np.ndarray, tuned_hit: np.ndarray,
                     targets: np.ndarray) -> dict[str, Any]:
    """How much worse the tuned model predicts the same tokens: mean loss change with a 95% interval over
    windows, its per-token distribution, and the tokens that got most worse."""
    delta = tuned_ce - base_ce  # [windows, T]
    per_window = delta.mean(axis=1)
    se = float(per_window.std(ddof=1) / math.sqrt(len(per_window))) if len(per_window) > 1 else math.nan
    base_loss, tuned_loss = float(base_ce.mean()), float(tuned_ce.mean())
    flat = delta.ravel()
    q = np.quantile(flat, [0.1, 0.5, 0.9, 0.99])
    by_token = []
    flat_targets = targets.ravel()
    for tok in np.unique(flat_targets):
        sel = flat_targets == tok
        if sel.sum() >= MIN_TOKEN_COUNT:
            by_token.append({"token": int(tok), "text": repr(bytes([int(tok)]).decode("latin-1")),
                             "count": int(sel.sum()), "mean_delta": float(flat[sel].mean())})
    by_token = sorted((t for t in by_token if t["mean_delta"] > 0), key=lambda t: -t["mean_delta"])
    return {
        "tokens": int(flat.size), "windows": int(len(per_window)),
        "base_loss": base_loss, "tuned_loss": tuned_loss, "loss_delta": tuned_loss - base_loss,
        "loss_delta_ci95": [tuned_loss - base_loss - 1.96 * se, tuned_loss - base_loss + 1.96 * se],
        "relative_delta": (tuned_loss - base_loss) / base_loss if base_loss else math.nan,
        "base_ppl": math.exp(min(base_loss, 50)), "tuned_ppl": math.exp(min(tuned_loss, 50)),
        "base_accuracy": float(base_hit.mean()), "tuned_accuracy": float(tuned_hit.mean()),
        "per_token_delta": {"mean": float(flat.mean()), "std": float(flat.std()), "p10": float(q[0]),
                            "median": float(q[1]), "p90": float(q[2]), "p99": float(q[3])},
        "fraction_worse": float((flat > 0).mean()), "fraction_worse_by_1_nat": float((flat > 1.0).mean()),
        "fraction_better": float((flat < 0).mean()),
        "most_forgotten_tokens": by_token[:5],
    }


def forgetting_verdict(original: dict[str, Any], new: dict[str, Any] | None) -> str:
    """One line: how much was forgotten (relative loss rise: negligible < 1%, mild < 5%, moderate < 20%,
    else severe)."""
    rel = original["relative_delta"]
    grade = ("no forgetting (it improved)" if rel < 0 else "negligible forgetting" if rel < 0.01 else
             "mild forgetting" if rel < 0.05 else "moderate forgetting" if rel < 0.20 else "severe forgetting")
    text = (f"{grade}: loss on the original data went {original['base_loss']:.4f} -> "
            f"{original['tuned_loss']:.4f} nats/token ({rel:+.1%}); "
            f"{original['fraction_worse']:.0%} of tokens got worse")
    if new is not None:
        text += (f"; on the fine-tuning data it went {new['base_loss']:.4f} -> {new['tuned_loss']:.4f} "
                 f"({new['relative_delta']:+.1%})")
    return text


def forgetting(base: LoadedRun, tuned: LoadedRun, original: str | None = None,
               n_batches: int | None = None) -> dict[str, Any]:
    """The forgetting report: BASE vs TUNED on the original data's held-out windows (`original`, else the
    base run's own data) and, when the fine-tune trained on other data, on that data's held-out windows."""
    if base.cfg.model.seq_len != tuned.cfg.model.seq_len:
        raise NtjaxError(f"base and tuned models have different context lengths ({base.cfg.model.seq_len} vs "
                         f"{tuned.cfg.model.seq_len}); a forgetting check compares the same model family")
    if base.cfg.spec or tuned.cfg.spec:
        raise NtjaxError("the forgetting check works on the default GPT task (per-token losses of a byte LM)")
    text = original if original is not None else base.cfg.data
    n_batches = n_batches or max(base.cfg.eval_batches, FORGETTING_BATCHES)
    batches = text_batches(base.cfg, text, n_batches)
    b_ce, b_hit, targets = token_losses(base, batches)
    t_ce, t_hit, _ = token_losses(tuned, batches)
    out = {"base": {"step": base.step, "init_from": None},
           "tuned": {"step": tuned.step, "init_from": tuned.cfg.init_from, "lora_rank": tuned.cfg.lora_rank,
                     "lora_targets": list(tuned.cfg.lora_targets) if tuned.cfg.lora_rank else []},
           "original_data": text or "embedded corpus (CPython pydoc topics)",
           "original": forgetting_stats(b_ce, t_ce, b_hit, t_hit, targets), "new": None}
    if tuned.cfg.data != text:
        new_batches = text_batches(tuned.cfg, tuned.cfg.data, n_batches)
        nb_ce, nb_hit, n_targets = token_losses(base, new_batches)
        nt_ce, nt_hit, _ = token_losses(tuned, new_batches)
        out["new"] = forgetting_stats(nb_ce, nt_ce, nb_hit, nt_hit, n_targets)
        out["new_data"] = tuned.cfg.data or "embedded corpus (CPython pydoc topics)"
    out["verdict"] = forgetting_verdict(out["original"], out["new"])
    return out


# --- PyTorch state_dict checkpoints ----------------------------------------------------------------------

def import_constructor(spec: str) -> Callable:
    """`module:function` or `path/to/file.py:function` -> the function (the user's model constructor)."""
    import importlib
    import importlib.util

    module_name, _, fn_name = spec.rpartition(":")
    if not module_name or not fn_name:
        raise NtjaxError(f"--torch-model must look like module:function or file.py:function (got {spec!r})")
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location(f"ntjax_torch_model_{Path(module_name).stem}",
                                                            module_name)
            if loader is None or loader.loader is None:
                raise ImportError(f"{module_name} is not an importable Python file")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, OSError) as e:
        raise NtjaxError(f"cannot import {module_name}: {e}") from None
    if not callable(getattr(module, fn_name, None)):
        raise NtjaxError(f"{module_name} defines no function {fn_name}")
    return getattr(module, fn_name)


def evaluate_state_dict(path: str | Path, constructor: str, text: str, seq_len: int,
                        n_batches: int = 8, batch_size: int = 8, eval_fraction: float = 0.1) -> dict[str, float]:
    """Evaluate a PyTorch byte-level LM (tokens [B, T] -> logits [B, T, 256]) saved as a `state_dict` on the
    held-out tail of `text`: the same windows and metrics as an ntjax run. The torch code lives in
    `ntjax.bridges.torch_eval` (ntjax itself does not import torch); models that do not fit are refused."""
    build = import_constructor(constructor)
    from ntjax.bridges.torch_eval import evaluate_state_dict as evaluate_torch
    return evaluate_torch(path, build, constructor, text, seq_len, n_batches=n_batches, batch_size=batch_size,
                          eval_fraction=eval_fraction)
