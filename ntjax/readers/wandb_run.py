"""Weights & Biases run data: the offline run's `.wandb` transaction log, `wandb-history.jsonl`,
`wandb-summary.json` (to meta), `config.yaml` (to meta) and, failing all else, the console `output.log`.

The `.wandb` file (wandb 0.31 no longer ships a Python reader for it): a 7-byte header `:W&B`, magic
0xBEE1, version 0; then LevelDB-log framing in 32 KiB blocks, each chunk `crc32 (u32) | length (u16) |
type (u8) | data`, FULL=1 or FIRST/MIDDLE/LAST=2/3/4 pieces of one record; the CRC is zlib's CRC-32 of
the type byte then the data. Each record is a `wandb_internal_pb2.Record`; history items hold
JSON-encoded values (bare `NaN`/`Infinity` included).
"""
from __future__ import annotations

import json
import os
import struct
import zlib

from ntjax.diagnostics.runtable import RunTable
from ntjax.readers.columns import TIME_KEYS
from ntjax.readers.jsonl import _capped, parse_lines, rows_table

MAGIC = b":W&B"
_HEADER_LEN, _BLOCK, _CHUNK_HEADER = 7, 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def is_wandb_file(head: bytes) -> bool:
    return head.startswith(MAGIC)


def iter_wandb_records(data: bytes, problems: list[str], name: str):
    """The record payloads of a `.wandb` file. A chunk with a bad CRC skips to the next block, as a
    LevelDB log reader does; a torn tail ends the file with one problem line."""
    pos, pending, n = _HEADER_LEN, b"", len(data)
    while pos < n:
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:  # block trailer padding
            pos += left
            continue
        if n - pos < _CHUNK_HEADER:
            problems.append(f"{name}: {n - pos} stray bytes at the end (a torn record), skipped")
            return
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk = data[pos + _CHUNK_HEADER:pos + _CHUNK_HEADER + length]
        if kind == 0 and length == 0:  # zero padding to the block end
            pos += left
            continue
        if len(chunk) < length:
            problems.append(f"{name}: record at byte {pos} is truncated, skipped")
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc or kind not in (1, 2, 3, 4):
            problems.append(f"{name}: corrupt record at byte {pos} (bad checksum), skipped to the next block")
            pos += left
            pending = b""
            continue
        pos += _CHUNK_HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        else:
            yield pending + chunk
            pending = b""
    if pending:  # the file ends inside a record split over chunks: its first pieces arrived, its last not
        problems.append(f"{name}: the last record is torn (its final piece is missing at byte {n}), skipped")


def _item_key(item) -> str:
    return item.key or ".".join(item.nested_key)


def _json_or_none(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def read_wandb_file(source: str, path: str, meta: dict | None = None) -> RunTable:
    """History rows from a `.wandb` file; its config and summary go to meta."""
    from wandb.proto import wandb_internal_pb2 as pb
    with open(path, "rb") as f:
        data = f.read()
    problems: list[str] = []
    rows: list[dict] = []
    meta = dict(meta or {})
    config, summary = meta.setdefault("config", {}), meta.setdefault("summary", {})
    record = pb.Record()
    name = os.path.basename(path)
    exited = False
    for payload in iter_wandb_records(data, problems, name):
        try:
            record.ParseFromString(payload)
        except Exception:  # DecodeError: a payload that passed its CRC but is not a Record
            problems.append(f"{name}: a record does not decode, skipped")
            continue
        kind = record.WhichOneof("record_type")
        exited = exited or kind == "exit"
        if kind == "history":
            row = {_item_key(i): _json_or_none(i.value_json) for i in record.history.item}
            if "_step" not in row and record.history.HasField("step"):
                row["_step"] = record.history.step.num
            rows.append(row)
        elif kind == "summary":
            summary.update({_item_key(i): _json_or_none(i.value_json) for i in record.summary.update})
        elif kind in ("config", "run"):
            updates = record.config.update if kind == "config" else record.run.config.update
            config.update({_item_key(i): _json_or_none(i.value_json) for i in updates if _item_key(i) != "_wandb"})
            if kind == "run":
                meta["run"] = {"id": record.run.run_id, "project": record.run.project,
                               "name": record.run.display_name}
    if rows and not exited and not problems:  # cut at a record boundary: only the missing exit record tells
        problems.append(f"{name}: ends without the run's exit record: truncated, or the run crashed or is "
                        f"still running")
    return rows_table(source, "wandb", rows, _capped(problems, "bad records"), meta)


def read_history_jsonl(source: str, data: bytes, meta: dict | None = None) -> RunTable:
    """`wandb-history.jsonl`: one history row per line, `_step` the step, `_timestamp` the time."""
    rows, problems = parse_lines(data)
    return rows_table(source, "wandb", rows, problems, meta)


def is_summary(doc: object, file_name: str) -> bool:
    """A W&B summary: a dict with `_wandb`/`_runtime` bookkeeping, or the file name says so."""
    return isinstance(doc, dict) and (file_name == "wandb-summary.json" or "_wandb" in doc
                                      or ("_runtime" in doc and any(k in doc for k in TIME_KEYS)))
