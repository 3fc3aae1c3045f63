"""JSON lines (ntjax `metrics.jsonl`, W&B `wandb-history.jsonl`, any step-keyed dicts) and whole JSON
documents (a list of row dicts, a dict of columns, a W&B summary).

A clean file is parsed column-wise by polars (`columnar.jsonl_columns`). Anything else takes the row
path: it joins a block of lines into one JSON array and decodes it in one C call; only a block that
fails (a torn last line, junk) is re-read line by line to find and report the bad lines.
"""
from __future__ import annotations

import gc
import json

import numpy as np

from ntjax.diagnostics.runtable import RunTable
from ntjax.readers import columnar
from ntjax.readers.columns import STEP_KEYS, Chunks, add_chunk, build_table, pick_key, to_floats
from ntjax.readers.rows import rows_to_chunks

BLOCK_LINES = 20_000  # lines decoded per json.loads call: large enough to amortise, small to re-read
MAX_LISTED = 5  # bad lines listed one by one before the rest are counted


def parse_lines(data: bytes) -> tuple[list[dict], list[str]]:
    """Every JSON object line of `data`, and one problem line per unreadable line (listed up to a cap)."""
    lines = data.split(b"\n")
    rows: list[dict] = []
    bad: list[str] = []
    gc_was_on = gc.isenabled()
    gc.disable()  # a million fresh dicts trigger pointless collections (they hold no cycles)
    try:
        for start in range(0, len(lines), BLOCK_LINES):
            block = lines[start:start + BLOCK_LINES]
            if b"" in block or any(not line.strip() for line in block[:1] + block[-1:]):
                numbered = [(start + i + 1, line) for i, line in enumerate(block) if line.strip()]
            else:
                numbered = None
            try:
                body = b",".join(block if numbered is None else [line for _, line in numbered])
                parsed = json.loads(b"[" + body + b"]")
                if len(parsed) == len(block if numbered is None else numbered) and set(map(type, parsed)) == {dict}:
                    rows.extend(parsed)
                    continue
            except (ValueError, RecursionError):
                pass
            for number, line in numbered or enumerate(block, start + 1):
                if not line.strip():
                    continue
                row, why = _parse_line(line, last=number == len(lines))
                if row is not None:
                    rows.append(row)
                else:
                    bad.append(f"line {number}: {why}, skipped")
    finally:
        if gc_was_on:
            gc.enable()
    return rows, _capped(bad, "bad lines")


def _parse_line(line: bytes, last: bool) -> tuple[dict | None, str]:
    """One line as a dict, or None and why not."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        stripped = line.strip()
        if last and stripped.startswith(b"{"):
            return None, "truncated JSON (the file ends mid-line)"
        if stripped.startswith(b"{"):
            return None, "malformed JSON"
        return None, "not JSON"
    if not isinstance(row, dict):
        return None, f"a JSON {type(row).__name__}, not an object"
    return row, ""


def _capped(problems: list[str], what: str) -> list[str]:
    """The first few problems, then one line counting the rest."""
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more {what}"]


def is_ntjax(rows: list[dict]) -> bool:
    """Rows look like ntjax's `metrics.jsonl`: `step` and `time` keys and `train/`/`eval/` names."""
    head = rows[:50]
    return bool(head) and all("step" in r and "time" in r for r in head) and any(
        k.startswith(("train/", "eval/")) for r in head for k in r)


def read_jsonl(source: str, data: bytes, fmt: str | None = None) -> RunTable:
    """A JSONL file of step-keyed dicts; `fmt` defaults to ntjax-jsonl or jsonl by content."""
    fast = columnar.jsonl_columns(data)
    if fast is not None:
        columns, n = fast
        fmt = fmt or ("ntjax-jsonl" if columnar.is_ntjax_columns(columns) else "jsonl")
        chunks: Chunks = {}
        step_key = columnar.columns_to_chunks(columns, n, chunks)
        return build_table(source, fmt, chunks, [], _step_meta(step_key, n, {}))
    rows, problems = parse_lines(data)
    fmt = fmt or ("ntjax-jsonl" if is_ntjax(rows) else "jsonl")
    return rows_table(source, fmt, rows, problems)


def rows_table(source: str, fmt: str, rows: list[dict], problems: list[str], meta: dict | None = None) -> RunTable:
    """A RunTable from parsed rows (shared by JSONL, JSON lists and W&B history)."""
    chunks: Chunks = {}
    step_key = rows_to_chunks(rows, chunks)
    return build_table(source, fmt, chunks, problems, _step_meta(step_key, len(rows), meta))


def _step_meta(step_key: str | None, n_rows: int, meta: dict | None) -> dict:
    """`meta` plus where the steps came from: the step key, or row order when there is none."""
    meta = dict(meta or {})
    if step_key is None and n_rows:
        meta["step_from"] = "row order (no step key found)"
    elif step_key is not None:
        meta["step_key"] = step_key
    return meta


def read_json_document(source: str, doc: object, fmt: str = "jsonl", meta: dict | None = None) -> RunTable:
    """A parsed JSON document: a list of row dicts, a dict of equal-length columns, or one summary row."""
    if isinstance(doc, list):
        rows = [r for r in doc if isinstance(r, dict)]
        skipped = len(doc) - len(rows)
        problems = [f"{skipped} list items are not objects, skipped"] if skipped else []
        return rows_table(source, fmt, rows, problems, meta)
    if isinstance(doc, dict):
        columns = {k: v for k, v in doc.items() if isinstance(v, list)}
        lengths = {len(v) for v in columns.values()}
        if len(columns) >= 2 and len(lengths) == 1 and lengths != {0}:
            return _columns_table(source, fmt, columns)
        return rows_table(source, fmt, [doc], [], meta)
    return rows_table(source, fmt, [], [f"a JSON {type(doc).__name__} holds no metrics"], meta)


def _columns_table(source: str, fmt: str, columns: dict[str, list]) -> RunTable:
    """`{"step": [...], "loss": [...]}`: one shared step column."""
    step_key = pick_key(columns, STEP_KEYS)
    n = len(next(iter(columns.values())))
    steps = to_floats(columns[step_key])[0] if step_key else np.arange(n, dtype=np.float64)
    chunks: Chunks = {}
    for key, cells in columns.items():
        if key == step_key:
            continue
        values, present = to_floats(cells)
        add_chunk(chunks, key, steps[present], values[present])
    return build_table(source, fmt, chunks)
