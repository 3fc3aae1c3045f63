"""The instability policy as a pure function: what happened at a step in, the action out.

`--on-instability stop` stops at the first non-finite loss; `rollback` also rolls back when the spike
guard has skipped `ROLLBACK_SKIPS` updates within `ROLLBACK_WINDOW` steps (one skip is noise, a burst
means the run is leaving its stable region); `skip` only lets the guard skip updates.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Action = Literal["continue", "stop", "rollback"]

ROLLBACK_SKIPS, ROLLBACK_WINDOW = 3, 20


def decide(policy: str, step: int, nonfinite: bool, skipped_steps: Sequence[int]) -> Action:
    """The action after `step` under `policy`, given whether its loss was non-finite and the steps whose
    updates the spike guard has skipped so far (including this one if it was skipped)."""
    if nonfinite and policy in ("stop", "rollback"):
        return "stop" if policy == "stop" else "rollback"
    recent = [s for s in skipped_steps if step - ROLLBACK_WINDOW < s <= step]
    if policy == "rollback" and len(recent) >= ROLLBACK_SKIPS:
        return "rollback"
    return "continue"
