"""Pure analysis: per-step pytree statistics, curve detectors, findings, hypotheses, early warnings, the
instability policy, NaN localisation, LR-range math, experiment plans and framework detection. No I/O,
no rendering."""
