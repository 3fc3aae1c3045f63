"""The LR range test inside the user's own training loop, driven by `ntjax lr-find --command`.

When `NTJAX_LR_RAMP` holds `{"lr_min": .., "lr_max": .., "steps": ..}` (optionally `"stop_factor"`), the
bridges' monitors set the optimizer's LR each step along the exponential ramp of `ntjax.diagnostics.lr_range` and end
the run once the EMA-smoothed loss exceeds `stop_factor` x its minimum, the loss is not finite, or the ramp
is over. The monitors log `train/lr` and `train/loss` as usual; `ntjax lr-find --command` reads them back
and applies the same range-test math. Without the variable every function here is a no-op.

Two hooks per bridge: `torch_before(monitor)` / `torch_after(monitor, loss)` in `TorchMonitor.log`, and
`keras_before(callback)` / `keras_after(callback)` in the Keras callback's batch hooks.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

ENV = "NTJAX_LR_RAMP"


class Ramp:
    """Where the ramp is: the LR of the next step, and whether the loss has blown up."""

    def __init__(self, lr_min: float, lr_max: float, steps: int, stop_factor: float = 4.0,
                 beta: float | None = None):
        from ntjax.diagnostics.lr_range import default_beta, exponential_lrs

        self.lrs = exponential_lrs(float(lr_min), float(lr_max), int(steps))
        self.stop_factor = float(stop_factor)
        self.beta = default_beta(int(steps)) if beta is None else float(beta)
        self.i = 0  # steps whose LR has been set
        self._avg, self._n, self._best = 0.0, 0, math.inf
        self.stop_reason: str | None = None

    def lr(self) -> float:
        return float(self.lrs[min(self.i, len(self.lrs) - 1)])

    def observe(self, loss: float | None) -> bool:
        """Record this step's loss; True when the test is over (the run should end now)."""
        self.i += 1
        if loss is not None:
            if not math.isfinite(loss):
                self.stop_reason = "nonfinite"
                return True
            self._n += 1
            self._avg = self.beta * self._avg + (1 - self.beta) * loss
            smoothed = self._avg / (1 - self.beta ** self._n)  # bias-corrected, as ntjax.diagnostics.lr_range.smooth
            self._best = min(self._best, smoothed)
            if smoothed > self.stop_factor * self._best:
                self.stop_reason = "diverged"
                return True
        if self.i >= len(self.lrs):
            self.stop_reason = "max_lr"
            return True
        return False


_state: dict[str, Any] = {}


def active() -> Ramp | None:
    """The ramp this process runs (from NTJAX_LR_RAMP), or None."""
    if "ramp" not in _state:
        text = os.environ.get(ENV)
        ramp = None
        if text:
            spec = json.loads(text)
            ramp = Ramp(spec["lr_min"], spec["lr_max"], spec["steps"], spec.get("stop_factor", 4.0),
                        spec.get("beta"))
        _state["ramp"] = ramp
    return _state["ramp"]


def _finish(log_dir: Any, ramp: Ramp) -> None:
    print(f"ntjax lr-find: LR range test over after {ramp.i} steps ({ramp.stop_reason}); ending the run",
          file=sys.stderr, flush=True)


# --- PyTorch ----------------------------------------------------------------------------------------

def torch_before(monitor: Any) -> None:
    """Set every param group's LR to the ramp's (groups keep their ratios to the largest one)."""
    ramp = active()
    if ramp is None or monitor.optimizer is None:  # no optimizer object: nothing the ramp can set
        return
    groups = monitor.optimizer.param_groups
    if "scales" not in _state:
        base = [float(g["lr"]) for g in groups]
        _state["scales"] = [b / max(base) for b in base] if max(base) > 0 else [1.0] * len(base)
    for group, scale in zip(groups, _state["scales"]):
        group["lr"] = ramp.lr() * scale


def torch_after(monitor: Any, loss: float | None) -> None:
    """After the step is logged: end the run (flushing the logs) once the test is over."""
    ramp = active()
    if ramp is None or not ramp.observe(loss):
        return
    _finish(monitor.log_dir, ramp)
    monitor.close()
    raise SystemExit(0)


# --- Keras ------------------------------------------------------------------------------------------

def keras_before(callback: Any) -> None:
    ramp = active()
    if ramp is None:
        return
    lr = callback.model.optimizer.learning_rate
    if not hasattr(lr, "assign"):  # a LearningRateSchedule object cannot be overridden step by step
        raise SystemExit("ntjax lr-find: the Keras optimizer's learning rate is a schedule; compile with a "
                         "constant learning rate for the range test")
    lr.assign(ramp.lr())


def keras_after(callback: Any) -> None:
    """After the batch is logged: stop `fit` once the test is over (Keras checks after each batch)."""
    ramp = active()
    if ramp is None or callback._loss is None:
        return
    if ramp.observe(float(callback._loss.numpy())):
        _finish(callback.log_dir, ramp)
        callback.model.stop_training = True
