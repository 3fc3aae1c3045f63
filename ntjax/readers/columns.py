"""Raw columns -> RunTable: value coercion, step/time key choice, and the per-name accumulator.

Every reader collects `(step, value, time)` chunks per raw metric name with only the cells that were
logged (a logged NaN is a cell; an empty CSV cell or a missing JSON key is not), then `build_table`
normalises the names and makes one sorted series per name (last write of a repeated step wins).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ntjax.diagnostics.runtable import RunTable, make_series, normalise_name

# Step keys in order of preference: an explicit step beats an epoch counter.
STEP_KEYS = ("step", "global_step", "trainer/global_step", "_step", "iter", "iteration", "it", "epoch")
# Wall-clock keys (unix seconds).
TIME_KEYS = ("time", "_timestamp", "timestamp", "wall_time", "walltime", "wall time")

Chunks = dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]


def pick_key(names: Iterable[str], candidates: Sequence[str]) -> str | None:
    """The first candidate present among `names` (case-insensitive), as spelled in `names`."""
    lower = {n.strip().lower(): n for n in names}
    return next((lower[c] for c in candidates if c in lower), None)


def one_float(v: object) -> float | None:
    """A cell as a float: numbers, bools, null (NaN), numeric strings incl. "nan"/"inf"; else None."""
    if v is None:
        return float("nan")
    if isinstance(v, (bool, int, float)):
        return float(v)
    if isinstance(v, (str, bytes)):
        try:
            return float(v.strip().rstrip("%" if isinstance(v, str) else b"%") or "x")
        except ValueError:
            return None
    return None


def to_floats(cells: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells -> (float64 values, present mask). Non-numeric cells are absent; null counts as NaN.

    Fast path: numpy's own conversion (it takes numbers, None and numeric strings); one bad cell
    falls back to converting cell by cell.
    """
    try:
        values = np.asarray(cells, dtype=np.float64)
        if values.shape == (len(cells),):
            return values, np.ones(values.shape, bool)
    except (ValueError, TypeError, OverflowError):
        pass
    converted = [one_float(c) for c in cells]
    present = np.fromiter((c is not None for c in converted), bool, len(converted))
    values = np.fromiter((np.nan if c is None else c for c in converted), np.float64, len(converted))
    return values, present


def add_chunk(chunks: Chunks, name: str, step: np.ndarray, value: np.ndarray,
              time: np.ndarray | None = None) -> None:
    """Append logged cells of metric `name` (already masked to present cells)."""
    step = np.asarray(step, np.float64)
    t = np.full(step.shape, np.nan) if time is None else np.asarray(time, np.float64)
    chunks.setdefault(name, []).append((step, np.asarray(value, np.float64), t))


def build_table(source: str, fmt: str, chunks: Chunks, problems: list[str] | None = None,
                meta: dict | None = None) -> RunTable:
    """One RunTable from the accumulated chunks: normalised names, originals kept, sorted, deduplicated.

    Two raw names that normalise alike (`val_loss` and `test_loss` both mean eval/loss) are not mixed
    into one curve: the one with more points takes the normalised name, the others keep their own.
    """
    table = RunTable(source=source, format=fmt, problems=list(problems or []), meta=dict(meta or {}))
    merged = {raw: parts[0] if len(parts) == 1 else tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
              for raw, parts in chunks.items()}
    by_name: dict[str, list[str]] = {}
    for raw, (step, _, _) in merged.items():
        if step.size:
            by_name.setdefault(normalise_name(raw), []).append(raw)
    for name, raws in by_name.items():
        raws.sort(key=lambda r: -merged[r][0].size)
        for rank, raw in enumerate(raws):
            table.add(make_series(name if rank == 0 else raw, *merged[raw], original=raw))
    return table
