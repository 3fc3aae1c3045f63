"""TensorBoard event files: TFRecord framing read directly, events decoded with the protobufs that
tensorboardX ships (no TensorFlow, no tensorboard server code).

TFRecord: u64 length, u32 masked CRC of the length, the payload, u32 masked CRC of the payload. CRCs
are not checked (CRC32C has no C implementation in the pinned stack, and a pure-Python one would cost
more than the parse); a length that runs past the end or a payload that does not decode ends the file
with one problem line. Scalars come from `simple_value` and from one-element float tensors (the TF2 /
HF Trainer style); text summaries go to `meta["text"]` and histograms to `meta["histograms"]`
(per-step min, max, mean, std, count), which `ntjax debug` uses for gradient evidence.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from ntjax.diagnostics.runtable import RunTable
from ntjax.readers.columns import Chunks, add_chunk, build_table

_FLOAT_DTYPES = {1: "<f4", 2: "<f8", 19: "<f2", 3: "<i4", 9: "<i8"}  # DataType enum -> numpy dtype
MAX_TEXT_CHARS = 20_000  # text summaries (HF logs its whole TrainingArguments) are kept for evidence


def is_event_file(head: bytes) -> bool:
    """The first record of `head` decodes as an Event carrying TensorBoard's `file_version`."""
    if len(head) < 12:
        return False
    (length,) = struct.unpack_from("<Q", head, 0)
    if not 0 < length <= len(head) - 12:
        return False
    from tensorboardX.proto import event_pb2
    event = event_pb2.Event()
    try:
        event.ParseFromString(head[12:12 + length])
    except Exception:  # protobuf's DecodeError and friends: this is not an event file
        return False
    return event.file_version.startswith("brain.Event")


def _tensor_scalar(tensor) -> float | None:
    """A one-element numeric tensor's value (HF Trainer and TF2 write scalars this way)."""
    dtype = _FLOAT_DTYPES.get(tensor.dtype)
    if dtype is None:
        return None
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=dtype)
    else:
        values = np.asarray(list(tensor.float_val) or list(tensor.double_val) or list(tensor.half_val)
                            or list(tensor.int_val) or list(tensor.int64_val), np.float64)
    return float(values[0]) if values.size == 1 else None


def _histogram_stats(histo) -> tuple[float, float, float, float, float]:
    """(min, max, mean, std, count) of a HistogramProto."""
    n = histo.num
    mean = histo.sum / n if n else float("nan")
    var = max(histo.sum_squares / n - mean * mean, 0.0) if n else float("nan")
    return histo.min, histo.max, mean, var ** 0.5, n


def iter_records(data: bytes, problems: list[str], name: str):
    """The payloads of a TFRecord file; a torn or corrupt record ends it with one problem line."""
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < 12:
            problems.append(f"{name}: {n - pos} stray bytes at the end (a torn record), skipped")
            return
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + 12 + length + 4 > n:
            problems.append(f"{name}: record at byte {pos} runs past the end (truncated), rest skipped")
            return
        yield pos, data[pos + 12:pos + 12 + length]
        pos += 16 + length


def read_event_files(source: str, files: list[str]) -> RunTable:
    """One run from its event files, read in name order (TensorBoard names them by start time), so a
    resumed run's later writes of a step win."""
    from tensorboardX.proto import event_pb2
    raw: dict[str, tuple[list, list, list]] = {}
    hist: dict[str, list[tuple]] = {}
    text: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted(files, key=os.path.basename):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        event = event_pb2.Event()
        for pos, payload in iter_records(data, problems, name):
            try:
                event.ParseFromString(payload)
            except Exception:  # DecodeError: a corrupt record; without CRCs we cannot resync
                problems.append(f"{name}: record at byte {pos} does not decode (corrupt), rest skipped")
                break
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                _add_value(value, event.step, event.wall_time, raw, hist, text)
    chunks: Chunks = {}
    for tag, (steps, values, times) in raw.items():
        add_chunk(chunks, tag, np.asarray(steps, np.float64), np.asarray(values, np.float64),
                  np.asarray(times, np.float64))
    meta: dict = {"files": [os.path.basename(p) for p in sorted(files, key=os.path.basename)]}
    if text:
        meta["text"] = text
    if hist:
        meta["histograms"] = {tag: _hist_arrays(rows) for tag, rows in hist.items()}
    return build_table(source, "tensorboard", chunks, problems, meta)


def _add_value(value, step: int, wall_time: float, raw: dict, hist: dict, text: dict) -> None:
    """Route one summary value to scalars, histograms or text."""
    kind = value.WhichOneof("value")
    scalar = None
    if kind == "simple_value":
        scalar = value.simple_value
    elif kind == "histo":
        hist.setdefault(value.tag, []).append((step, *_histogram_stats(value.histo)))
    elif kind == "tensor":
        plugin = value.metadata.plugin_data.plugin_name
        if value.tensor.string_val and plugin in ("text", ""):
            text[value.tag] = value.tensor.string_val[0].decode("utf-8", "replace")[:MAX_TEXT_CHARS]
        elif plugin in ("scalars", ""):
            scalar = _tensor_scalar(value.tensor)
    if scalar is not None:
        steps, values, times = raw.setdefault(value.tag, ([], [], []))
        steps.append(step)
        values.append(scalar)
        times.append(wall_time)


def _hist_arrays(rows: list[tuple]) -> dict[str, np.ndarray]:
    """Per-step histogram statistics as arrays keyed step/min/max/mean/std/count."""
    cols = np.asarray(rows, np.float64).T
    return dict(zip(("step", "min", "max", "mean", "std", "count"), cols))
