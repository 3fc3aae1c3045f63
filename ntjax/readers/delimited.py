"""CSV/TSV logs: generic wide CSV (ntjax's `metrics.csv` too), PyTorch Lightning `metrics.csv` (sparse
rows), Keras `CSVLogger` (epoch-indexed), W&B chart exports and TensorBoard's per-tag CSV export.

Parsing: the csv module splits rows, then each column converts to float in one numpy call; an empty
cell is "not logged", a `nan`/`inf` cell is a logged non-finite value. A repeated header row starts a
new block with its own columns (ntjax's CSV writer widens its header that way).
"""
from __future__ import annotations

import csv
import io
import os
import re

import numpy as np

from ntjax.readers.columns import STEP_KEYS, TIME_KEYS, Chunks, _one_float, add_chunk, build_table, pick_key
from ntjax.readers.jsonl import _capped
from ntjax.runtable import RunTable

_WANDB_EXPORT_SUFFIX = re.compile(r"__(MIN|MAX|step)$")
_TB_EXPORT_NAME = re.compile(r"^run[-_].*?[-_]tag[-_](?P<tag>.+)\.csv$", re.IGNORECASE)


def sniff_delimiter(first_line: str) -> str | None:
    """The delimiter of a header line (tab, comma or semicolon), or None when it has none."""
    counts = {d: first_line.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def looks_delimited(text: str) -> bool:
    """A header of at least two names, mostly non-numeric, and a second line with as many fields."""
    lines = [ln for ln in text.splitlines()[:3] if ln.strip()]
    if len(lines) < 2:
        return False
    delim = sniff_delimiter(lines[0])
    if delim is None:
        return False
    header = next(csv.reader([lines[0]], delimiter=delim))
    second = next(csv.reader([lines[1]], delimiter=delim))
    names = [h for h in header if h.strip() and _one_float(h) is None]
    return len(header) >= 2 and len(names) >= len(header) / 2 and len(second) == len(header)


def _column(cells: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """String cells -> (values, present): empty cells are absent; `nan`/`inf` are logged values."""
    text = np.array(cells, dtype=str)
    present = text != ""
    try:
        return np.where(present, text, "nan").astype(np.float64), present
    except ValueError:
        converted = [_one_float(c) if c else None for c in cells]
        present = np.array([c is not None for c in converted], bool)
        return np.array([np.nan if c is None else c for c in converted], np.float64), present


def _classify(header: list[str], name: str) -> str:
    """Which CSV dialect a header says this is."""
    low = [h.strip().lower() for h in header]
    if any(_WANDB_EXPORT_SUFFIX.search(h) for h in header) or any(" - " in h for h in header):
        return "wandb"
    if low and low[0] == "epoch" and pick_key(low, STEP_KEYS[:-1]) is None:
        return "keras-csv"
    if "epoch" in low and "step" in low and pick_key(low, TIME_KEYS) is None:
        return "lightning-csv"
    return "csv"


def _metric_name(column: str, fmt: str, file_name: str) -> str | None:
    """The metric a column holds (None: not a metric). W&B exports prefix the run name and add
    __MIN/__MAX envelopes; a TensorBoard export's one `Value` column is named by the file's tag."""
    if fmt == "wandb":
        if _WANDB_EXPORT_SUFFIX.search(column):
            return None
        return column.split(" - ", 1)[1] if " - " in column else column
    tb = _TB_EXPORT_NAME.match(file_name)
    if column.strip().lower() == "value" and tb:
        return tb.group("tag")
    return column


def read_delimited(source: str, text: str) -> RunTable:
    """A CSV/TSV log as one RunTable; rows with the wrong number of fields are reported and skipped."""
    delim = sniff_delimiter(next((ln for ln in text[:65536].splitlines() if ln.strip()), "")) or ","
    try:
        rows = list(csv.reader(io.StringIO(text.replace("\x00", "")), delimiter=delim))
    except csv.Error:  # e.g. a field over the csv module's size limit: split naively instead
        rows = [line.split(delim) for line in text.splitlines()]
    first = next((i for i, r in enumerate(rows) if r), 0)
    header = [h.strip() for h in rows[first]] if rows else []
    fmt = _classify(header, os.path.basename(source))
    chunks: Chunks = {}
    bad: list[str] = []
    # A later row repeating the first header name (ntjax widens its header that way) starts a new block.
    head_name = rows[first][0] if header else None
    starts = [i for i, r in enumerate(rows) if r and r[0] == head_name and _one_float(head_name) is None]
    for b, start in enumerate(starts):
        end = starts[b + 1] if b + 1 < len(starts) else len(rows)
        _read_block(rows, start, end, fmt, os.path.basename(source), chunks, bad)
    meta = {"delimiter": delim}
    return build_table(source, fmt, chunks, _capped(bad, "bad rows"), meta)


def _read_block(rows: list[list[str]], start: int, end: int, fmt: str, file_name: str,
                chunks: Chunks, bad: list[str]) -> None:
    """One header row and the data rows under it."""
    header = [h.strip() for h in rows[start]]
    width = len(header)
    good = []
    for i in range(start + 1, end):
        row = rows[i]
        if len(row) == width:
            good.append(row)
        elif any(c.strip() for c in row):
            bad.append(f"row {i + 1}: {len(row)} fields, expected {width}, skipped")
    if not good:
        return
    columns = list(zip(*good))
    step_name = header[0] if fmt == "keras-csv" else pick_key(header, STEP_KEYS)
    time_name = pick_key(header, TIME_KEYS)
    if step_name is not None:
        steps, has_step = _column(columns[header.index(step_name)])
        steps = np.where(has_step, steps, np.nan)
    else:
        steps = np.arange(start, start + len(good), dtype=np.float64)
    time = None
    if time_name is not None:
        time, has_time = _column(columns[header.index(time_name)])
        time = np.where(has_time, time, np.nan)
    for j, column in enumerate(header):
        name = _metric_name(column, fmt, file_name)
        if column in (step_name, time_name) or not name:
            continue
        values, present = _column(columns[j])
        if present.any():
            add_chunk(chunks, name, steps[present], values[present], None if time is None else time[present])
