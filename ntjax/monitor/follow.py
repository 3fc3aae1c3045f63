"""Follow a growing training log without re-reading it: `metrics.jsonl` and CSV files are read from the
byte offset where the last poll stopped (a torn last line waits for its newline); any other format the
curve readers support is re-read whole, but only when one of its files changed.

A file replaced or truncated under us (a resumed ntjax run rewrites `metrics.jsonl` atomically) is read
again from the start.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from ntjax.core import runfolder as rf
from ntjax.diagnostics.runtable import RunTable, make_series, normalise_name
from ntjax.readers.columns import STEP_KEYS, TIME_KEYS, pick_key
from ntjax.readers.jsonl import parse_lines


def _number(value) -> float | None:
    """A logged value as a float ("nan"/"inf" strings included); None for what is not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class _Columns:
    """Per-metric growing lists of (step, value, time)."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[list, list, list]] = {}

    def add(self, step: float, wall: float, values: dict[str, float]) -> None:
        for name, value in values.items():
            s, v, t = self.data.setdefault(name, ([], [], []))
            s.append(step)
            v.append(value)
            t.append(wall)

    def table(self, source: str, fmt: str) -> RunTable:
        table = RunTable(source=source, format=fmt)
        for raw, (s, v, t) in self.data.items():
            table.add(make_series(normalise_name(raw), np.asarray(s), np.asarray(v), np.asarray(t), original=raw))
        return table


class Follower:
    """`poll()` reads what was appended since the last poll; `table()` is everything read so far."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.kind, self.file = self._choose()
        self.bytes_read = 0  # bytes read from disk over the follower's life (the test of "no re-reading")
        self._reset()

    def _choose(self) -> tuple[str, Path]:
        p = self.path
        if p.is_dir():
            for name, kind in ((rf.METRICS_FILE, "jsonl"), ("metrics.csv", "csv")):
                if (p / name).exists():
                    return kind, p / name
            from ntjax.readers.detect import find_runs
            return ("reread", p) if find_runs(str(p)) else ("jsonl", p / rf.METRICS_FILE)  # not written yet
        if p.suffix == ".jsonl":
            return "jsonl", p
        if p.suffix == ".csv":
            return "csv", p
        return "reread", p

    def _reset(self) -> None:
        self._columns = _Columns()
        self._offset, self._inode, self._partial = 0, None, b""
        self._header: list[str] | None = None
        self._row = 0
        self._reread_table: RunTable | None = None
        self._reread_mtime = -1.0

    @property
    def format(self) -> str:
        return {"jsonl": "ntjax-jsonl", "csv": "csv"}.get(self.kind) or (
            self._reread_table.format if self._reread_table else "unknown")

    def poll(self) -> int:
        """Read what is new; returns the number of new records (rows/lines, or 1 for a changed re-read)."""
        if self.kind == "reread":
            return self._poll_reread()
        try:
            st = os.stat(self.file)
        except FileNotFoundError:
            return 0
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self._offset):
            self._reset()
        self._inode = st.st_ino
        if st.st_size <= self._offset:
            return 0
        with open(self.file, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(st.st_size - self._offset)
        self._offset += len(chunk)
        self.bytes_read += len(chunk)
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        if self.kind == "jsonl":
            return self._jsonl(data[:cut])
        return self._csv(data[:cut].decode("utf-8", errors="replace").splitlines())

    def _jsonl(self, data: bytes) -> int:
        """New complete lines, parsed by the readers' own JSONL parser with the same step and time keys."""
        rows, _ = parse_lines(data)
        n = 0
        for rec in rows:
            step_key = pick_key(rec, STEP_KEYS)
            step = _number(rec.get(step_key)) if step_key else None
            if step is None:
                continue
            time_key = pick_key(rec, TIME_KEYS)
            wall = _number(rec.get(time_key)) if time_key else None
            values = {k: x for k, v in rec.items() if k not in (step_key, time_key) and (x := _number(v)) is not None}
            self._columns.add(step, math.nan if wall is None else wall, values)
            n += 1
        return n

    def _csv(self, lines: list[str]) -> int:
        n = 0
        for row in csv.reader(io.StringIO("\n".join(lines))):
            if not row:
                continue
            if self._header is None or all(_number(c) is None for c in row if c.strip()):
                self._header = [c.strip() for c in row]  # the first row, or a repeated (widened) header
                continue
            cells = dict(zip(self._header, row))
            step_key = pick_key(cells, STEP_KEYS)
            time_key = pick_key(cells, TIME_KEYS)
            step = _number(cells.get(step_key)) if step_key else float(self._row)
            self._row += 1
            if step is None:
                continue
            wall = _number(cells.get(time_key)) if time_key else None
            values = {k: x for k, v in cells.items() if k not in (step_key, time_key) and v != ""
                      and (x := _number(v)) is not None}
            self._columns.add(step, math.nan if wall is None else wall, values)
            n += 1
        return n

    def _poll_reread(self) -> int:
        from ntjax.readers import ReadError, read_run
        from ntjax.readers.detect import find_runs

        files = ([f for r in find_runs(str(self.path)) for f in (r.files or (r.path,))] if self.path.is_dir()
                 else [str(self.path)])
        files = [f for f in files if os.path.isfile(f)]
        mtime = max((os.path.getmtime(f) for f in files), default=-1.0)
        if mtime <= self._reread_mtime:
            return 0
        self._reread_mtime = mtime
        try:
            self._reread_table = read_run(self.path)
        except ReadError:
            if self._reread_table is None:
                raise
            return 0  # a half-written file: keep what was read last time

        self.bytes_read += sum(os.path.getsize(f) for f in files)
        return 1

    def table(self) -> RunTable:
        if self.kind == "reread":
            return self._reread_table or RunTable(source=str(self.path), format="unknown")
        return self._columns.table(str(self.file), self.format)
