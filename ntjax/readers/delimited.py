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
import warnings
from operator import itemgetter

import numpy as np

from ntjax.diagnostics.runtable import RunTable
from ntjax.readers import columnar
from ntjax.readers.columns import STEP_KEYS, TIME_KEYS, Chunks, add_chunk, build_table, one_float, pick_key
from ntjax.readers.jsonl import _capped

MAX_SNIFF_LINES = 20  # lines looked at to tell CSV from text
_WANDB_EXPORT_SUFFIX = re.compile(r"__(MIN|MAX|step)$")
_TB_EXPORT_NAME = re.compile(r"^run[-_].*?[-_]tag[-_](?P<tag>.+)\.csv$", re.IGNORECASE)


def sniff_delimiter(first_line: str) -> str | None:
    """The delimiter of a header line (tab, comma or semicolon), or None when it has none."""
    counts = {d: first_line.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def looks_delimited(text: str) -> bool:
    """A header of at least two names, mostly non-numeric, then rows of as many fields that are mostly
    numbers or empty (so `step 1: loss 2.3, lr 1e-3` text lines do not pass for CSV)."""
    lines = [ln for ln in text.splitlines()[:MAX_SNIFF_LINES] if ln.strip()]
    if len(lines) < 2:
        return False
    delim = sniff_delimiter(lines[0])
    if delim is None:
        return False
    header, *rows = csv.reader(lines, delimiter=delim)
    names = [h for h in header if h.strip() and one_float(h) is None]
    if len(header) < 2 or len(names) < len(header) / 2:
        return False
    width, same_width, data_rows = len(header), [], 0
    for row in rows:
        if row and row[0] == header[0]:  # a repeated (widened) header row starts a new block
            width = len(row)
            continue
        data_rows += 1
        if len(row) == width:
            same_width.append(row)
    cells = [c for r in same_width for c in r]
    numeric = sum(1 for c in cells if not c.strip() or one_float(c) is not None)
    return len(same_width) >= 0.8 * data_rows and numeric >= 0.5 * len(cells)


def _column(cells: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """String cells -> (values, present): empty cells are absent; `nan`/`inf` are logged values."""
    try:
        values = np.array(cells, dtype=np.float64)  # every cell numeric: one C loop
        return values, np.ones(values.shape, bool)
    except ValueError:
        pass
    text = np.array(cells, dtype=str)
    present = np.char.str_len(np.char.strip(text)) > 0
    try:
        return np.where(present, text, "nan").astype(np.float64), present
    except ValueError:
        converted = [one_float(c) if c.strip() else None for c in cells]
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
    """A CSV/TSV log as one RunTable; rows with the wrong number of fields are reported and skipped.

    A dense file (the large case: every row full width, numbers or empty cells) is parsed in one call
    (polars, or numpy's `loadtxt` when small); anything else (sparse Lightning rows, quoted cells, repeated headers,
    torn rows) goes through the csv module.
    """
    text = text.replace("\x00", "").lstrip("\r\n\t ")
    header_line, _, body = text.partition("\n")
    delim = sniff_delimiter(header_line) or ","
    header = [h.strip() for h in next(csv.reader([header_line], delimiter=delim), [])]
    file_name = os.path.basename(source)
    fmt = _classify(header, file_name)
    chunks: Chunks = {}
    bad: list[str] = []
    dense = _dense(body, delim, len(header)) if header and f"\n{header[0]}{delim}" not in body else None
    if dense is not None:
        _add_columns(header, dense, 0, fmt, file_name, chunks)
    else:
        _read_rows(text, delim, fmt, file_name, chunks, bad)
    return build_table(source, fmt, chunks, _capped(bad, "bad rows"), {"delimiter": delim})


def _dense(body: str, delim: str, width: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The data rows as `width` (values, present) columns when every row has `width` numeric or empty
    cells, else None. Large bodies go to polars (`columnar.dense_csv_columns`), small ones to numpy's C
    `loadtxt` (every cell a number)."""
    columns = columnar.dense_csv_columns(body, delim, width)
    if columns is not None:
        return columns
    if len(body) >= columnar.MIN_FAST_BYTES:
        return None  # polars said no: not dense, the csv module path reports why
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matrix = np.loadtxt(io.StringIO(body), delimiter=delim, dtype=np.float64, ndmin=2, comments=None)
    except (ValueError, IndexError):
        return None
    if matrix.shape[1:] != (width,) or not matrix.shape[0]:
        return None
    return [(c, np.ones(c.shape, bool)) for c in matrix.T]


def _read_rows(text: str, delim: str, fmt: str, file_name: str, chunks: Chunks, bad: list[str]) -> None:
    """The general path: csv module rows, split into blocks at repeated header rows."""
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    except csv.Error:  # e.g. a field over the csv module's size limit: split naively instead
        rows = [line.split(delim) for line in text.splitlines()]
    if not rows or not rows[0]:
        return
    # A later row repeating the first header name (ntjax widens its header that way) starts a new block.
    head_name = rows[0][0]
    starts = [i for i, r in enumerate(rows) if r and r[0] == head_name]
    for b, start in enumerate(starts):
        end = starts[b + 1] if b + 1 < len(starts) else len(rows)
        header = [h.strip() for h in rows[start]]
        width = len(header)
        block = rows[start + 1:end]
        if set(map(len, block)) - {width}:
            for i, row in enumerate(block):
                if len(row) != width and any(c.strip() for c in row):
                    bad.append(f"row {start + i + 2}: {len(row)} fields, expected {width}, skipped")
            block = [row for row in block if len(row) == width]
        if block:
            columns = [_column(list(map(itemgetter(j), block))) for j in range(width)]
            _add_columns(header, columns, start, fmt, file_name, chunks)


def _add_columns(header: list[str], columns: list[tuple[np.ndarray, np.ndarray]], row0: int, fmt: str,
                 file_name: str, chunks: Chunks) -> None:
    """Route converted columns to chunks: the step column (the first column for Keras), time, metrics."""
    step_name = header[0] if fmt == "keras-csv" else pick_key(header, STEP_KEYS)
    time_name = pick_key(header, TIME_KEYS)
    n = columns[0][0].shape[0]
    if step_name is not None:
        steps, has_step = columns[header.index(step_name)]
        steps = np.where(has_step, steps, np.nan)
    else:
        steps = np.arange(row0, row0 + n, dtype=np.float64)
    time = None
    if time_name is not None:
        time, has_time = columns[header.index(time_name)]
        time = np.where(has_time, time, np.nan)
    for column, (values, present) in zip(header, columns):
        name = _metric_name(column, fmt, file_name)
        if column in (step_name, time_name) or not name or not present.any():
            continue
        add_chunk(chunks, name, steps[present], values[present], None if time is None else time[present])
