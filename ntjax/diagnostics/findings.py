"""What a detector reports: one `Finding` per pattern seen in a curve, and the run's one-line verdict.

The dict form of a Finding is the `findings` item of `ntjax curves --json` (see CONTRACTS.md); `marks`
carries where a plot should draw it (spike steps, a best-eval step) and is not part of the JSON.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

SEVERITIES = ("info", "warning", "critical")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One pattern in one metric, located in steps, with the numbers that show it and what to do."""

    kind: str
    metric: str
    start_step: int | None
    end_step: int | None
    severity: str
    confidence: float
    evidence: str
    recommendation: str = ""
    marks: tuple[int, ...] = ()  # extra steps to draw (each spike, the best eval); not in the JSON

    def to_dict(self) -> dict:
        """The contract's JSON object for this finding."""
        return {"kind": self.kind, "metric": self.metric,
                "start_step": None if self.start_step is None else int(self.start_step),
                "end_step": None if self.end_step is None else int(self.end_step),
                "severity": self.severity, "confidence": round(float(self.confidence), 3),
                "evidence": self.evidence, "recommendation": self.recommendation}


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical."""
    return SEVERITIES.index(severity)


def ranked(findings: Sequence[Finding]) -> list[Finding]:
    """Most severe first, then most confident, then earliest."""
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), -f.confidence,
                                           f.start_step if f.start_step is not None else 0))


def is_healthy(findings: Sequence[Finding]) -> bool:
    """A run is healthy when nothing rose above `info`."""
    return all(f.severity == "info" for f in findings)


def fmt(x: float) -> str:
    """A loss-like number in 4 significant digits, readable in a sentence."""
    if x != x:
        return "nan"
    if abs(x) >= 1e5 or (0 < abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}"
