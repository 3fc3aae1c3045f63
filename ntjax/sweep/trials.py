"""What the sweep's study, runner and command-template trials share: a trial's folder, the worst value
of a metric, the one-line description of a finished trial, and the exception that closes a trial that
lost the race for the last slot of the budget."""
from __future__ import annotations

import math
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState


class Skipped(Exception):
    """This worker lost the race for the last slot of the budget: its trial is closed without running."""


def trial_dir(out_dir: Path, number: int) -> Path:
    return out_dir / f"trial_{number:04d}"


def worst(direction: str) -> float:
    return math.inf if direction == "minimize" else -math.inf


def describe(t: FrozenTrial, metric: str) -> str:
    """One line for a finished trial: number, state, value, params, and why it stopped if it did."""
    params = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    value = f"{metric} {t.value:.4f}" if t.value is not None else ""
    why = t.user_attrs.get("diverged") or t.user_attrs.get("fail_reason") or ""
    if t.state == TrialState.FAIL and not why:
        why = "worker lost (no heartbeat): retried on restart"
    return f"trial {t.number:4d} {t.state.name:8s} {value:22s} {params}" + (f"  [{why}]" if why else "")
