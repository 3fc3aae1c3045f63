"""Generated training curves with known findings and onsets, written in six log formats.

Shapes follow the usual forms (power-law decay to a floor, warmup then cosine, exponential approach for
classifiers) with multiplicative per-batch noise; one pattern is planted at a known step. They measure
finding recall and precision where the truth is exact, which real runs cannot give:

- healthy: power laws still slowly falling at the end (no plateau), cosine/warmup LM shapes, classifiers
- spike: a jump of 1.6-3x the trend that decays back over tens of steps
- oscillation: the loss swings +-15-35% around its trend with a period of 8-30 steps
- plateau: the LR schedule collapses to ~0 and the loss goes flat
- divergence, nan, overfitting (eval turns up while train keeps falling)
- trivial_solution: the loss settles at a trivial baseline (ln K, the MSE of predicting the mean, the
  unigram entropy of a byte LM)
- resume_regression: at a resume the LR jumps back to its peak and train and eval loss get worse

    python benchmarks/diagnosis/curves.py     # (re)writes curves/ and labels.json
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "curves"
FORMATS = ("jsonl", "tfevents", "hf", "lightning", "keras", "text")


# ---- shapes -----------------------------------------------------------------------------------------

def power_law(t: np.ndarray, floor: float, scale: float, alpha: float, t0: float = 10.0) -> np.ndarray:
    return floor + scale * (t + t0) ** -alpha


def lm_warmup_cosine(t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A byte LM: from ln 256 down a power law, with the extra drop of the cosine anneal; and its LR."""
    warm = max(5, n // 20)
    frac = np.clip((t - warm) / (n - warm), 0, 1)
    lr = np.where(t < warm, 3e-3 * (t + 1) / warm, 3e-4 + 2.7e-3 * 0.5 * (1 + np.cos(np.pi * frac)))
    loss = 1.3 + 4.25 * (1 + t / 15.0) ** -0.5
    return loss * (1 - 0.06 * (1 - np.cos(np.pi * frac)) / 2), lr


def classifier(t: np.ndarray, n: int, start: float, floor: float) -> np.ndarray:
    return floor + (start - floor) * np.exp(-t / (0.2 * n))


def noisy(clean: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return clean * np.exp(sigma * rng.standard_normal(clean.shape))


def _sig(a: np.ndarray, digits: int = 6) -> np.ndarray:
    """Values to `digits` significant digits, as a logger printing them would keep (smaller files)."""
    return np.array([float(f"{x:.{digits}g}") for x in np.asarray(a, dtype=float)])


# ---- one curve ----------------------------------------------------------------------------------------

def make(kind: str, variant: int, seed: int) -> dict[str, Any]:
    """Columns (step, train, lr, eval_step, eval), expected findings, cause and context for one item."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 601))
    t = np.arange(n, dtype=np.float64)
    every = int(rng.choice([10, 20, 25]))
    e_step = np.r_[np.arange(0, n, every), n - 1].astype(np.float64)
    sigma = float(rng.uniform(0.01, 0.04))
    lr = np.full(n, 1e-3)
    task, extra, findings, cause, acceptable = "language_modeling", {}, [], None, []
    shape = variant % 3
    if kind == "trivial_solution":
        shape = -1
    if shape == 0:  # a power law, still falling at the end
        clean = power_law(t, float(rng.uniform(1.5, 2.5)), float(rng.uniform(6, 10)), float(rng.uniform(0.3, 0.5)))
    elif shape == 1:
        clean, lr = lm_warmup_cosine(t, n)
    else:
        task, extra = "classification", {"num_classes": 10}
        clean = classifier(t, n, math.log(10), float(rng.uniform(0.1, 0.4)))
    eval_clean = np.interp(e_step, t, clean) * 1.03
    train = noisy(clean, rng, sigma)
    ev = noisy(eval_clean, rng, 0.004)
    onset = int(rng.integers(int(0.35 * n), int(0.65 * n)))
    symptom = "is this run healthy?"

    if kind == "healthy":
        pass
    elif kind == "spike":
        height = float(rng.uniform(1.6, 3.0))
        tau = float(rng.uniform(8, 25))  # recovery time constant: tens of steps to get back
        bump = 1 + (height - 1) * np.exp(-np.clip(t - onset, 0, None) / tau) * (t >= onset)
        train = train * bump
        ev = ev * (1 + (height - 1) * 0.5 * np.exp(-np.clip(e_step - onset, 0, None) / tau) * (e_step >= onset))
        findings.append(("spike", "train/loss", onset))
        cause, acceptable = "lr_too_high", ["insufficient_warmup", "gradient_explosion", "attention_logit_growth",
                                            "data_pipeline", "batch_size"]
        symptom = "there is a big loss spike in the middle of training"
    elif kind == "oscillation":
        amp = float(rng.uniform(0.15, 0.35))
        period = float(rng.uniform(8, 30))
        swing = 1 + amp * np.sin(2 * np.pi * (t - onset) / period)
        train = np.where(t >= onset, train * swing, train)
        lr = np.where(t >= onset, lr * 5, lr)  # the LR was raised at the onset
        findings.append(("oscillation", "train/loss", onset))
        cause, acceptable = "lr_too_high", ["batch_size", "insufficient_warmup"]
        symptom = "the loss goes up and down a lot"
    elif kind == "plateau":
        level = clean[onset]
        lr = np.where(t >= onset, lr[onset] * 1e-4, lr)  # the schedule decayed to ~0 far too early
        train = np.where(t >= onset, noisy(np.full(n, level), rng, sigma), train)
        ev = np.where(e_step >= onset, level * 1.03 * np.exp(0.003 * rng.standard_normal(e_step.size)), ev)
        findings.append(("plateau", "train/loss", onset))
        cause, acceptable = "lr_schedule", ["lr_too_low"]
        symptom = "loss stopped improving halfway through"
    elif kind == "divergence":
        tau = 0.03 * n
        grow = np.exp(np.clip((t - onset) / tau, 0, 30))
        train = train * grow
        ev = ev * np.exp(np.clip((e_step - onset) / tau, 0, 30))
        lr = np.full(n, 3e-2)
        findings.append(("divergence", "train/loss", onset))
        cause, acceptable = "lr_too_high", ["gradient_explosion"]
        symptom = "the loss blows up"
    elif kind == "nan":
        train = np.where(t >= onset, np.nan, train)
        ev = np.where(e_step >= onset, np.nan, ev)
        findings.append(("nan", "train/loss", onset))
        if (e_step >= onset).any():
            findings.append(("nan", "eval/loss", int(e_step[e_step >= onset][0])))
        cause, acceptable = "numerical_precision", ["lr_too_high", "gradient_explosion"]
        symptom = "loss became NaN"
    elif kind == "overfitting":
        e_on = float(e_step[np.searchsorted(e_step, onset)])
        base = float(np.interp(e_on, t, clean)) * 1.03
        rise = 1 + float(rng.uniform(0.15, 0.4)) * np.clip((e_step - e_on) / (n - e_on), 0, None) ** 1.1
        ev = np.where(e_step >= e_on, base * rise * np.exp(0.004 * rng.standard_normal(e_step.size)), ev)
        train = noisy(clean * np.where(t >= e_on, 1 - 0.3 * (t - e_on) / n, 1), rng, sigma)
        findings.append(("overfitting", "eval/loss", int(e_on)))
        cause = "overfitting"
        symptom = "validation loss goes up while training loss goes down"
    elif kind == "trivial_solution":
        which = variant % 3
        if which == 0:  # classifier stuck at chance ln K
            k = int(rng.choice([2, 10, 100]))
            level, task, extra = math.log(k), "classification", {"num_classes": k}
            start = level * 1.6
            what = f"ln {k} = {level:.3f} (chance for {k} classes)"
        elif which == 1:  # regression on standardised targets: predicts the mean, MSE = var = 1
            level, task, extra = 1.0, "regression", {"target_variance": 1.0}
            start = 2.5
            what = "1.000, the MSE of predicting the mean of unit-variance targets"
        else:  # byte LM stuck at the unigram entropy of its text (3.26 nats for CPython's pydoc topics)
            level, task, extra = 3.26, "language_modeling", {"vocab_size": 256, "unigram_entropy": 3.26}
            start = math.log(256)
            what = "3.26, the byte unigram entropy of the training text"
        settle = float(rng.uniform(0.04, 0.12)) * n
        clean = level + (start - level) * np.exp(-t / (settle / 4))
        train = noisy(clean, rng, sigma)
        ev = noisy(np.interp(e_step, t, clean) * 1.002, rng, 0.002)
        onset = int(np.argmax(np.abs(clean - level) < 0.02 * level))
        findings.append(("trivial_solution", "train/loss", onset))
        cause, acceptable = "data_pipeline", ["label_noise", "lr_too_low", "underfitting", "initialization"]
        symptom = f"loss stuck at {level:.2f}"
        extra["note"] = what
    elif kind == "resume_regression":
        jump = float(rng.uniform(1.15, 1.35))
        lr_peak = float(lr.max())
        lr = np.where(t >= onset, lr_peak, lr) if shape == 1 else np.where(t >= onset, lr * 10, lr)
        after = np.clip(t - onset, 0, None)
        factor = np.where(t >= onset, 1 + (jump - 1) * np.exp(-after / (0.5 * n)), 1.0)
        train = train * factor
        ev = ev * np.where(e_step >= onset, 1 + (jump - 1) * np.exp(-np.clip(e_step - onset, 0, None) / (0.5 * n)), 1.0)
        findings.append(("resume_regression", "train/loss", onset))
        cause, acceptable = "lr_schedule", ["lr_too_high"]
        symptom = "loss got worse after I resumed from a checkpoint"
    else:
        raise ValueError(kind)
    train, lr, ev = (_sig(a) for a in (train, lr, ev))
    return {"step": t, "train": train, "lr": lr, "eval_step": e_step, "eval": ev, "task": task, "extra": extra,
            "findings": [{"kind": k, "metric": m, "start_step": int(s)} for k, m, s in findings],
            "cause": cause, "acceptable": acceptable, "symptom": symptom, "n": n}


# ---- writers ----------------------------------------------------------------------------------------

def _f(x: float) -> float | str:
    return x if math.isfinite(x) else "nan"


def write(fmt: str, c: dict[str, Any], dest: Path) -> str:
    """Write the columns in one format under `dest`; returns the path to read (relative to ROOT)."""
    dest.mkdir(parents=True, exist_ok=True)
    steps, e_steps = c["step"].astype(int), c["eval_step"].astype(int)
    ev = dict(zip(e_steps.tolist(), c["eval"].tolist()))
    if fmt == "jsonl":
        with open(dest / "metrics.jsonl", "w") as f:
            for s, loss, lr in zip(steps.tolist(), c["train"].tolist(), c["lr"].tolist()):
                row = {"step": s, "time": 1.7e9 + s, "train/loss": _f(loss), "train/lr": lr}
                f.write(json.dumps(row) + "\n")
                if s in ev:
                    f.write(json.dumps({"step": s, "time": 1.7e9 + s, "eval/loss": _f(ev[s])}) + "\n")
        (dest / "config.json").write_text(json.dumps({"task": c["task"], **c["extra"]}, indent=1))
        return str(dest.relative_to(ROOT))
    if fmt == "tfevents":
        from tensorboardX import SummaryWriter
        # tensorboardX prints a line for every NaN it is given: the NaN curves are meant to have them
        with contextlib.redirect_stdout(io.StringIO()), SummaryWriter(logdir=str(dest)) as w:
            for s, loss, lr in zip(steps.tolist(), c["train"].tolist(), c["lr"].tolist()):
                w.add_scalar("train/loss", loss, global_step=s, walltime=1.7e9 + s)
                w.add_scalar("train/learning_rate", lr, global_step=s, walltime=1.7e9 + s)
                if s in ev:
                    w.add_scalar("eval/loss", ev[s], global_step=s, walltime=1.7e9 + s)
        return str(dest.relative_to(ROOT))
    if fmt == "hf":
        history = []
        for s, loss, lr in zip(steps.tolist(), c["train"].tolist(), c["lr"].tolist()):
            if s == 0:
                continue  # the Trainer logs from step 1
            history.append({"epoch": round(s / len(steps), 4), "learning_rate": lr, "loss": loss, "step": s})
            if s in ev:
                history.append({"epoch": round(s / len(steps), 4), "eval_loss": ev[s], "step": s})
        state = {"global_step": int(steps[-1]), "log_history": history, "max_steps": int(steps[-1])}
        (dest / "trainer_state.json").write_text(json.dumps(state, indent=1))  # NaN tokens, as the Trainer
        return str((dest / "trainer_state.json").relative_to(ROOT))
    if fmt == "lightning":
        with open(dest / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "step", "train_loss", "val_loss"])
            for s, loss in zip(steps.tolist(), c["train"].tolist()):
                w.writerow([s // 100, s, repr(loss), ""])
                if s in ev:
                    w.writerow([s // 100, s, "", repr(ev[s])])
        return str((dest / "metrics.csv").relative_to(ROOT))
    if fmt == "keras":  # one epoch per step (steps_per_epoch=1); val_loss every epoch, between evals interpolated
        val = np.interp(steps, e_steps, c["eval"])
        with open(dest / "training.log", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "loss", "lr", "val_loss"])
            for s, loss, lr, v in zip(steps.tolist(), c["train"].tolist(), c["lr"].tolist(), val.tolist()):
                w.writerow([s, repr(loss), repr(lr), repr(v)])
        return str((dest / "training.log").relative_to(ROOT))
    if fmt == "text":  # nanoGPT train.py console
        lines = ["Overriding config with config/train.py:", "number of parameters: 10.65M"]
        for s, loss in zip(steps.tolist(), c["train"].tolist()):
            if s in ev:
                lines.append(f"step {s}: train loss {loss:.4f}, val loss {ev[s]:.4f}")
            lines.append(f"iter {s}: loss {loss:.4f}, time 31.20ms, mfu 4.10%")
        (dest / "train.log").write_text("\n".join(lines) + "\n")
        return str((dest / "train.log").relative_to(ROOT))
    raise ValueError(fmt)


# ---- the catalogue ----------------------------------------------------------------------------------

PLAN = {"healthy": 9, "spike": 6, "oscillation": 6, "plateau": 5, "divergence": 4, "nan": 4, "overfitting": 5,
        "trivial_solution": 6, "resume_regression": 5}


# Round 4: fresh draws of every pattern (new seeds; formats rotate from another start),
# split like any new item.
PLAN_R4 = {"healthy": 8, "spike": 3, "oscillation": 3, "plateau": 3, "divergence": 3, "nan": 2, "overfitting": 3,
           "trivial_solution": 3, "resume_regression": 3}


# Round 6: fresh draws again (new seeds), the last batch of held-out items this session.
PLAN_R6 = {"healthy": 6, "spike": 2, "oscillation": 2, "plateau": 2, "divergence": 2, "nan": 2, "overfitting": 2,
           "trivial_solution": 3, "resume_regression": 2}


def _plan() -> list[tuple[str, str, int, int]]:
    """(id, kind, variant, seed) for every generated item; formats rotate over the items."""
    out, k = [], 0
    for kind, count in PLAN.items():
        for v in range(count):
            fmt = FORMATS[k % len(FORMATS)]
            out.append((f"syn_{kind}_{v}_{fmt}", kind, v, 1000 + k))
            k += 1
    for kind, count in PLAN_R4.items():
        for v in range(count):
            fmt = FORMATS[(k + 3) % len(FORMATS)]
            out.append((f"syn_{kind}_{v}_{fmt}_r4", kind, v, 2000 + k))
            k += 1
    for kind, count in PLAN_R6.items():
        for v in range(count):
            fmt = FORMATS[(k + 1) % len(FORMATS)]
            out.append((f"syn_{kind}_{v}_{fmt}_r6", kind, v, 3000 + k))
            k += 1
    return out


def _format_and_batch(item_id: str) -> tuple[str, str]:
    """An item id's log format and batch: `syn_<kind>_<v>_<fmt>[_r4|_r6]`."""
    parts = item_id.split("_")
    return (parts[-2], parts[-1]) if parts[-1] in ("r4", "r6") else (parts[-1], "r1-3")


def _path(item_id: str, fmt: str) -> str:
    return {"jsonl": f"curves/{item_id}", "tfevents": f"curves/{item_id}", "hf": f"curves/{item_id}/trainer_state.json",
            "lightning": f"curves/{item_id}/metrics.csv", "keras": f"curves/{item_id}/training.log",
            "text": f"curves/{item_id}/train.log"}[fmt]


def items() -> list[dict[str, Any]]:
    out = []
    for item_id, kind, variant, seed in _plan():
        c = make(kind, variant, seed)
        fmt, batch = _format_and_batch(item_id)
        out.append({"batch": batch,
                    "id": item_id, "path": _path(item_id, fmt), "family": "synthetic",
                    "framework": {"jsonl": "ntjax", "tfevents": "tensorboard", "hf": "huggingface",
                                  "lightning": "lightning", "keras": "keras", "text": "nanogpt"}[fmt],
                    "optimizer": None, "task": c["task"], "symptom": c["symptom"], "cause": c["cause"],
                    "acceptable": c["acceptable"], "findings": c["findings"], "findings_complete": True,
                    "healthy": c["cause"] is None, "source": "generated: benchmarks/diagnosis/curves.py",
                    "reason": f"generated {kind} curve (variant {variant}, seed {seed}, {c['n']} steps, {fmt})"
                              + (f"; {c['extra']['note']}" if "note" in c["extra"] else "")})
    return out


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for item_id, kind, variant, seed in _plan():
        write(_format_and_batch(item_id)[0], make(kind, variant, seed), OUT / item_id)
    sys.path.insert(0, str(ROOT))
    import labelset
    labelset.write(labelset.assemble(labelset.sources()))
    print(f"wrote {len(_plan())} curves under {OUT} and {labelset.LABELS}")


if __name__ == "__main__":
    main()
