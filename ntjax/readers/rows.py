"""Step-keyed dicts (JSONL lines, HF `log_history`, W&B history) -> per-metric chunks, column-wise.

Rows are grouped by their key tuple and each column is pulled out with `map(itemgetter)` and converted
by numpy in one call, so no Python code runs per cell.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter

import numpy as np

from ntjax.readers.columns import STEP_KEYS, TIME_KEYS, Chunks, add_chunk, pick_key, to_floats


def _is_internal(key: str) -> bool:
    """W&B bookkeeping keys (`_step`, `_runtime`, `_wandb`...) are not metrics."""
    return key.startswith("_")


def rows_to_chunks(rows: Sequence[dict], chunks: Chunks, *, step_key: str | None = None,
                   time_key: str | None = None, keep: Callable[[str], bool] | None = None) -> str | None:
    """Add every numeric cell of `rows` to `chunks`; returns the step key used (None: row order).

    The step key is the first of STEP_KEYS any row carries, unless given. Rows lacking it take the
    step of the row before (W&B-style summary rows do this); with no step key at all, the row index
    is the step.
    """
    groups = _groups(rows)
    all_keys = dict.fromkeys(k for g in groups for k in g)
    step_key = step_key or pick_key(all_keys, STEP_KEYS)
    time_key = time_key or pick_key(all_keys, TIME_KEYS)
    steps = _row_steps(rows, groups, step_key)
    cells: dict[str, list[tuple[np.ndarray, ...]]] = {}  # key -> (row index, step, value, time) parts
    for keys, idx in groups.items():
        sub = rows if idx is None else [rows[i] for i in idx]
        index = np.arange(len(rows)) if idx is None else np.asarray(idx)
        time = np.full(index.shape, np.nan)
        if time_key in keys:
            t, present = to_floats(list(map(itemgetter(time_key), sub)))
            time = np.where(present, t, np.nan)
        for key in keys:
            if key in (step_key, time_key) or _is_internal(key) or (keep is not None and not keep(key)):
                continue
            values, present = to_floats(list(map(itemgetter(key), sub)))
            if present.any():
                cells.setdefault(key, []).append((index[present], steps[index][present], values[present],
                                                  time[present]))
    for key, parts in cells.items():  # back in row order, so a re-logged step's later write wins
        index, step, value, time = (np.concatenate(p) for p in zip(*parts))
        order = np.argsort(index, kind="stable")
        add_chunk(chunks, key, step[order], value[order], time[order])
    return step_key


def _groups(rows: Sequence[dict]) -> Mapping[tuple, list[int] | None]:
    """Row indices by key tuple; None stands for "every row" (the common case, without an index list)."""
    distinct = set(map(tuple, rows))
    if len(distinct) <= 1:
        return dict.fromkeys(distinct)
    groups: dict[tuple, list[int]] = {}
    for i, keys in enumerate(map(tuple, rows)):
        groups.setdefault(keys, []).append(i)
    return dict(groups)


def _row_steps(rows: Sequence[dict], groups: Mapping[tuple, list[int] | None], step_key: str | None) -> np.ndarray:
    """One step per row: the row's own, else carried forward from the row before, else the row index."""
    n = len(rows)
    if step_key is None:
        return np.arange(n, dtype=np.float64)
    steps = np.full(n, np.nan)
    for keys, idx in groups.items():
        if step_key in keys:
            sub = rows if idx is None else [rows[i] for i in idx]
            values, present = to_floats(list(map(itemgetter(step_key), sub)))
            steps[slice(None) if idx is None else np.asarray(idx)] = np.where(present, values, np.nan)
    known = np.isfinite(steps)
    if not known.all():  # carry the last known step forward; rows before any step are dropped
        last = np.maximum.accumulate(np.where(known, np.arange(n), -1))
        steps = np.where(last >= 0, steps[np.maximum(last, 0)], np.nan)
    return steps
