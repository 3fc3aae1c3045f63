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
# The common record holds one `simple_value` scalar (tensorboardX, torch's SummaryWriter, Keras 2), in
# protobuf's field order: wall_time (field 1, fixed64), step (2, varint), summary (5) > value (1) > tag (1),
# simple_value (2, float32). Such records are sliced out of the file with numpy, all at once; any other
# shape (step 0, tensors, histograms, metadata, long tags) goes through the protobuf parser.
_VARINT_MAX = 10


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


def frame_records(data: bytes, problems: list[str], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of a TFRecord file's payloads; a torn or corrupt frame ends the file with
    one problem line."""
    starts, lengths = [], []
    pos, n = 0, len(data)
    unpack = struct.unpack_from
    while pos < n:
        if n - pos < 12:
            problems.append(f"{name}: {n - pos} stray bytes at the end (a torn record), skipped")
            break
        (length,) = unpack("<Q", data, pos)
        if pos + 12 + length + 4 > n:
            problems.append(f"{name}: record at byte {pos} runs past the end (truncated), rest skipped")
            break
        starts.append(pos + 12)
        lengths.append(length)
        pos += 16 + length
    return np.asarray(starts, np.int64), np.asarray(lengths, np.int64)


def slice_scalars(buf: np.ndarray, off: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, dict]:
    """The one-`simple_value` records among the payloads at `off`, decoded without the protobuf parser:
    (which records they are, {tag: (record indices, steps, values, wall times)})."""
    if not off.size:
        return np.zeros(0, bool), {}
    last = buf.size - 1

    def at(pos: np.ndarray) -> np.ndarray:
        return buf[np.minimum(pos, last)]

    ok = (length >= 20) & (at(off) == 0x09) & (at(off + 9) == 0x10)
    vb = at(off[:, None] + 10 + np.arange(_VARINT_MAX)).astype(np.uint64)
    ends = vb < 0x80
    ok &= ends.any(axis=1)
    nbytes = np.argmax(ends, axis=1) + 1
    used = np.arange(_VARINT_MAX) < nbytes[:, None]
    step = (((vb & 0x7F) << (7 * np.arange(_VARINT_MAX, dtype=np.uint64))) * used).sum(axis=1).view(np.int64)
    p = off + 10 + nbytes
    summary, value, tag_len = at(p + 1).astype(np.int64), at(p + 3).astype(np.int64), at(p + 5).astype(np.int64)
    ok &= (at(p) == 0x2A) & (at(p + 2) == 0x0A) & (at(p + 4) == 0x0A) & (summary < 0x80) & (value == tag_len + 7)
    ok &= (summary == value + 2) & (at(p + 6 + tag_len) == 0x15) & (length == p + 11 + tag_len - off)
    rows = np.flatnonzero(ok)
    if not rows.size:
        return ok, {}
    p, tag_len = p[rows], tag_len[rows]
    wall = at(off[rows, None] + 1 + np.arange(8)).copy().view("<f8").ravel()
    val = at((p + 7 + tag_len)[:, None] + np.arange(4)).copy().view("<f4").ravel()
    width = int(tag_len.max())
    tags = at((p + 6)[:, None] + np.arange(width)) * (np.arange(width) < tag_len[:, None])
    names, which = np.unique(tags.astype(np.uint8).copy().view(f"S{width}").ravel(), return_inverse=True)
    out = {}
    for k, raw in enumerate(names):
        pick = which == k
        out[raw.decode("utf-8", "replace")] = (rows[pick], step[rows[pick]], val[pick], wall[pick])
    return ok, out


def read_event_files(source: str, files: list[str]) -> RunTable:
    """One run from its event files, read in name order (TensorBoard names them by start time), so a
    resumed run's later writes of a step win."""
    from tensorboardX.proto import event_pb2
    hist: dict[str, list[tuple]] = {}
    text: dict[str, str] = {}
    problems: list[str] = []
    chunks: Chunks = {}
    for path in sorted(files, key=os.path.basename):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        framing: list[str] = []
        off, length = frame_records(data, framing, name)
        fast, sliced = slice_scalars(np.frombuffer(data, np.uint8), off, length)
        cut = len(off)  # a record that does not decode ends the file: nothing after it is kept
        event = event_pb2.Event()
        raw: dict[str, tuple[list, list, list]] = {}
        for i in np.flatnonzero(~fast):
            try:
                event.ParseFromString(data[off[i]:off[i] + length[i]])
            except Exception:  # DecodeError: a corrupt record; without CRCs we cannot resync
                framing = [f"{name}: record at byte {off[i] - 12} does not decode (corrupt), rest skipped"]
                cut = int(i)
                break
            if event.HasField("summary"):
                for value in event.summary.value:
                    _add_value(value, event.step, event.wall_time, raw, hist, text)
        problems += framing
        # This file's points go in before the next file's, so a resumed run's later writes of a step win.
        for tag, (steps, values, times) in raw.items():
            add_chunk(chunks, tag, np.asarray(steps, np.float64), np.asarray(values, np.float64),
                      np.asarray(times, np.float64))
        for tag, (rows, steps, values, times) in sliced.items():
            keep = rows < cut
            add_chunk(chunks, tag, steps[keep], values[keep], times[keep])
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
