"""The tidy in-memory run table: what every log reader produces and every analysis consumes.

A run is a set of named series. Each series holds one metric as parallel arrays of step, value and wall
time (NaN where unknown), sorted by step with repeated steps resolved (a resumed run keeps the latest
write of a step). Names are normalised (`loss` -> `train/loss`, `val_loss` -> `eval/loss`), the name in
the source is kept in `original`.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

import numpy as np

# Normalised names of the common metrics: a regex over the lower-cased, separator-folded raw name -> name.
# Order matters: the first match wins.
_ALIASES: tuple[tuple[str, str], ...] = (
    (r"^(val|valid|validation|eval|test|dev)[ _/.-]*(loss|nll|lm_loss|ce)$", "eval/loss"),
    (r"^(val|valid|validation|eval|test|dev)[ _/.-]*(ppl|perplexity)$", "eval/ppl"),
    (r"^(val|valid|validation|eval|test|dev)[ _/.-]*(acc|accuracy|token_accuracy)$", "eval/accuracy"),
    (r"^(loss|train[ _/.-]*loss|training[ _/.-]*loss|train[ _/.-]*lm_loss|trl|lm_loss)$", "train/loss"),
    # Lightning's per-step copy of a metric logged with on_step and on_epoch.
    (r"^(train[ _/.-]*)?loss[ _/.-]*step$", "train/loss"),
    (r"^(tel|vl|val)$", "eval/loss"),
    (r"^(ppl|perplexity|train[ _/.-]*(ppl|perplexity))$", "train/ppl"),
    (r"^(acc|accuracy|train[ _/.-]*(acc|accuracy))$", "train/accuracy"),
    (r"^(lr|learning[ _/.-]*rate|train[ _/.-]*(lr|learning_rate)|lr[ _/.-]*\w*group0|lr-\w+)$", "train/lr"),
    (r"^(grad[ _/.-]*norm|gnorm|norm|train[ _/.-]*grad[ _/.-]*norm|total[ _/.-]*norm|grad_norm_total)$",
     "train/grad_norm"),
    (r"^(throughput|samples[ _/.-]*per[ _/.-]*s(ec(ond)?)?|train[ _/.-]*samples[ _/.-]*per[ _/.-]*second)$",
     "train/throughput"),
    (r"^(tok[ _/.-]*s|tokens[ _/.-]*per[ _/.-]*s(ec(ond)?)?|tok/sec|tokens/s)$", "train/tokens_per_s"),
)
_COMPILED = tuple((re.compile(p), name) for p, name in _ALIASES)
_EVAL_PREFIX = re.compile(r"^(val|valid|validation|eval|test|dev)[ _/.-]+")
_TRAIN_PREFIX = re.compile(r"^(train|training)[ _/.-]+")
# A trailing note such as `Test loss (avg on test)` or `IoU (avg on test)`: it names the split.
_PAREN_NOTE = re.compile(r"\s*\(([^()]*)\)\s*$")
_EVAL_WORD = re.compile(r"\b(val|valid|validation|eval|evaluation|test|dev)\b")


def normalise_name(raw: str) -> str:
    """Map a metric name as logged to its normalised name (`val_loss` -> `eval/loss`).

    Names already in `split/metric` form (ntjax's own, and per-layer ones like `grad_norm/h.0.attn`) are
    kept; unknown names get a split prefix only when the raw name carries one.
    """
    key = raw.strip()
    note = _PAREN_NOTE.search(key)
    if note and note.start() > 0:
        key = key[:note.start()]
        if _EVAL_WORD.search(note.group(1).lower()) and not _EVAL_PREFIX.match(key.lower()):
            key = "eval " + key
    low = key.lower().replace(" ", "_")
    for pattern, name in _COMPILED:
        if pattern.match(low):
            return name
    if "/" in key:
        return key
    if _EVAL_PREFIX.match(low):
        return "eval/" + _EVAL_PREFIX.sub("", low)
    if _TRAIN_PREFIX.match(low):
        return "train/" + _TRAIN_PREFIX.sub("", low)
    return key


def split_of(name: str) -> str:
    """The split a normalised name belongs to: `train`, `eval` or `other`."""
    head = name.split("/", 1)[0]
    return head if head in ("train", "eval") else "other"


@dataclasses.dataclass(frozen=True)
class Series:
    """One metric over steps: parallel arrays sorted by step, one value per step."""

    name: str
    original: str
    step: np.ndarray  # int64
    value: np.ndarray  # float64, NaN/Inf kept as logged
    time: np.ndarray  # float64 unix seconds, NaN where unknown

    @property
    def split(self) -> str:
        return split_of(self.name)

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def finite(self) -> Series:
        """The points whose value is finite."""
        keep = np.isfinite(self.value)
        return dataclasses.replace(self, step=self.step[keep], value=self.value[keep], time=self.time[keep])


def make_series(name: str, step: Iterable, value: Iterable, time: Iterable | None = None,
                original: str | None = None) -> Series:
    """Build a Series from raw columns: sorts by step and keeps the last write of a repeated step."""
    step_a = np.asarray(step, dtype=np.float64)
    value_a = np.asarray(value, dtype=np.float64)
    time_a = np.full(step_a.shape, np.nan) if time is None else np.asarray(time, dtype=np.float64)
    keep = np.isfinite(step_a)
    if not keep.all():
        step_a, value_a, time_a = step_a[keep], value_a[keep], time_a[keep]
    step_a = step_a.astype(np.int64)
    if step_a.size and bool(np.all(step_a[1:] > step_a[:-1])):  # the usual log: already in order, no repeats
        return Series(name=name, original=original or name, step=step_a, value=value_a, time=time_a)
    # Last write wins for a repeated step (resumed runs re-log steps): stable sort, then take the
    # last index of each step.
    order = np.argsort(step_a, kind="stable")
    step_s = step_a[order]
    last = np.r_[step_s[1:] != step_s[:-1], True] if step_s.size else np.zeros(0, bool)
    idx = order[last]
    return Series(name=name, original=original or name, step=step_a[idx], value=value_a[idx], time=time_a[idx])


@dataclasses.dataclass
class RunTable:
    """Every series of one run, plus where it came from and what could not be read."""

    source: str
    format: str
    series: dict[str, Series] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)  # one line each: what was skipped
    meta: dict = dataclasses.field(default_factory=dict)  # e.g. the run's config.json evidence

    def get(self, name: str) -> Series | None:
        return self.series.get(name)

    def names(self) -> list[str]:
        return sorted(self.series)

    def add(self, series: Series) -> None:
        """Add a series; a second series with the same normalised name is merged (last write wins)."""
        old = self.series.get(series.name)
        if old is not None and len(old):
            series = make_series(series.name, np.r_[old.step, series.step], np.r_[old.value, series.value],
                                 np.r_[old.time, series.time], original=old.original)
        self.series[series.name] = series


def from_columns(source: str, fmt: str, step: np.ndarray, columns: Mapping[str, np.ndarray],
                 time: np.ndarray | None = None,
                 present: Mapping[str, np.ndarray] | None = None) -> RunTable:
    """A RunTable from dense columns sharing one step axis.

    A cell is kept where `present[name]` is true; without a mask, NaN cells count as absent (so a reader
    that can tell a logged NaN from an empty cell must pass the mask, or the NaN detector never sees it).
    """
    table = RunTable(source=source, format=fmt)
    for raw, values in columns.items():
        values = np.asarray(values, dtype=np.float64)
        keep = ~np.isnan(values) if present is None or raw not in present else np.asarray(present[raw], bool)
        t = None if time is None else np.asarray(time, np.float64)[keep]
        table.add(make_series(normalise_name(raw), np.asarray(step)[keep], values[keep], t, original=raw))
    return table


def value_near(table: RunTable, name: str, step: int) -> float | None:
    """The metric near `step`: median of the logged points in the last 5% of steps up to it."""
    s = table.get(name)
    if s is None:
        return None
    s = s.finite()
    keep = (s.step <= step) & (s.step >= step - max(1, int(0.05 * step)))
    if not keep.any():
        keep = s.step <= step
    return float(np.median(s.value[keep][-5:])) if keep.any() else None
