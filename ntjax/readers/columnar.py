"""Columnar fast paths: a clean JSONL file or a dense CSV body parsed by polars (Rust, multi-threaded)
straight into float columns, with no Python object per row or per cell.

Each function returns None unless the input is one the fast path reads exactly as the tolerant row
readers would (`jsonl.parse_lines` + `rows.rows_to_chunks`, `delimited._read_rows`); the caller then
takes the row path, which reads what is readable and reports the rest. So torn lines, junk, NUL tails,
literal nulls and ragged rows all still get their problem lines, and a clean million-row log is read at
columnar speed.
"""
from __future__ import annotations

import io

import numpy as np

from ntjax.readers.columns import STEP_KEYS, TIME_KEYS, Chunks, add_chunk, pick_key, to_floats

Column = tuple[np.ndarray, np.ndarray]  # (float64 values, present mask)
MIN_FAST_BYTES = 1 << 16  # below this the row path is as fast and importing polars is not worth it


def _polars():
    """polars, imported on first use (it costs ~0.2 s; most commands never read a large log), or None where
    it is not installed (the slim bridge install): the row readers then do all the work."""
    try:
        import polars
    except ImportError:
        return None
    return polars


def _numeric(series) -> Column | None:
    """A polars column as (values, present); None for nested columns (lists, structs)."""
    pl = _polars()
    if pl is None:
        return None
    present = series.is_not_null().to_numpy()
    dtype = series.dtype
    if dtype.is_numeric() or dtype == pl.Boolean:
        return series.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=False), present
    if dtype == pl.String:  # "nan"/"inf" strings (ntjax's non-finite values) and numeric text
        cells = series.to_list()
        values, ok = to_floats(["" if c is None else c for c in cells])
        return values, ok & present
    if dtype == pl.Null:
        return np.full(len(series), np.nan), present
    return None


def jsonl_columns(data: bytes) -> tuple[dict[str, Column], int] | None:
    """Every key of a clean JSONL file as a float column over its rows (a missing key is absent), and the
    row count; None when the file needs the tolerant row path.

    Clean means: polars parses every line as an object; no literal `null` (a logged NaN, which a column
    cannot tell from a missing key); no nested values; and the number of `":` in the file equals the
    number of cells read, which proves no key was dropped by schema inference, duplicated or hidden in a
    string (anything unusual fails the count and takes the row path).
    """
    if len(data) < MIN_FAST_BYTES or b"null" in data:
        return None
    pl = _polars()
    if pl is None:
        return None
    frame = None
    for infer in (100, None):  # a type change after the first 100 rows needs the whole file scanned
        try:
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=infer)
            break
        except Exception:  # polars' ComputeError and friends: not clean, or a late type change
            continue
    if frame is None:
        return None
    columns: dict[str, Column] = {}
    cells = 0
    for name in frame.columns:
        column = _numeric(frame[name])
        if column is None:
            return None
        columns[name] = column
        cells += len(frame[name]) - frame[name].null_count()
    if cells != data.count(b'":'):
        return None
    return columns, frame.height


def is_ntjax_columns(columns: dict[str, Column], head: int = 50) -> bool:
    """The columnar twin of `jsonl.is_ntjax`: the first rows carry `step` and `time`, and some key is a
    `train/` or `eval/` metric."""
    if "step" not in columns or "time" not in columns:
        return False
    n = min(head, len(columns["step"][1]))
    if n == 0 or not (columns["step"][1][:n].all() and columns["time"][1][:n].all()):
        return False
    return any(k.startswith(("train/", "eval/")) and columns[k][1][:n].any() for k in columns)


def columns_to_chunks(columns: dict[str, Column], n: int, chunks: Chunks) -> str | None:
    """The columnar twin of `rows.rows_to_chunks`: same step and time keys, the step carried forward to
    rows without one (rows before any step dropped), `_`-prefixed bookkeeping keys skipped. Returns the
    step key (None: the row index is the step)."""
    step_key = pick_key(columns, STEP_KEYS)
    time_key = pick_key(columns, TIME_KEYS)
    if step_key is None:
        steps = np.arange(n, dtype=np.float64)
    else:
        values, present = columns[step_key]
        steps = np.where(present, values, np.nan)
        known = np.isfinite(steps)
        if not known.all():
            last = np.maximum.accumulate(np.where(known, np.arange(n), -1))
            steps = np.where(last >= 0, steps[np.maximum(last, 0)], np.nan)
    time = None
    if time_key is not None:
        t, has_time = columns[time_key]
        time = np.where(has_time, t, np.nan)
    for key, (values, present) in columns.items():
        if key in (step_key, time_key) or key.startswith("_") or not present.any():
            continue
        add_chunk(chunks, key, steps[present], values[present], None if time is None else time[present])
    return step_key


def dense_csv_columns(body: str, delim: str, width: int) -> list[Column] | None:
    """The data rows of a CSV (the text after the header) as `width` float columns, an empty cell absent;
    None unless every row has exactly `width` fields of numbers or empty cells."""
    raw = body.rstrip("\r\n").encode("utf-8")
    if len(raw) < MIN_FAST_BYTES or width < 1 or len(delim) != 1:
        return None
    pl = _polars()
    if pl is None:
        return None
    names = [f"c{i}" for i in range(width)]
    try:
        frame = pl.read_csv(io.BytesIO(raw), has_header=False, separator=delim, new_columns=names,
                            schema={name: pl.Float64 for name in names}, comment_prefix=None, quote_char=None)
    except Exception:  # a non-numeric cell, a row with too many fields, a quote: the csv module path
        return None
    # polars fills short rows and blank lines with nulls; the csv path reports or skips them. Equal
    # delimiter counts prove every line has exactly `width` fields (no line may have more: that raised).
    lines = raw.count(b"\n") + 1
    if frame.height != lines or raw.count(delim.encode()) != lines * (width - 1):
        return None
    return [(frame[c].fill_null(np.nan).to_numpy().astype(np.float64, copy=False), frame[c].is_not_null().to_numpy())
            for c in names]

