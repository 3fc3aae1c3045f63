"""Damaged input: what is readable is read, the rest is one line in `problems`, and nothing but
ReadError ever escapes (including under random truncation, byte flips and inserted junk)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntjax.readers import ReadError, read_run

LOGS = Path(__file__).parent / "fixtures" / "logs"
FUZZ_BYTES = 24_000  # each fixture's head is mutated: enough structure, quick to read


def test_missing_empty_binary_and_unknown(tmp_path):
    cases = {"missing.jsonl": None, "empty.jsonl": b"", "blank.csv": b"\n \n\t\n",
             "junk.bin": np.random.default_rng(0).bytes(4096), "prose.txt": b"Just some notes.\nNo numbers here.\n"}
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(ReadError) as err:
            read_run(tmp_path / name)
        message = str(err.value)
        assert name in message and "\n" not in message and "unexpected" not in message
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    with pytest.raises(ReadError, match="no training logs"):
        read_run(empty_dir)


def test_jsonl_non_finite_tokens_truncation_and_junk(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 0, "loss": 3.0}\n'
                     b'{"step": 1, "loss": NaN}\n'
                     b'{"step": 2, "loss": "nan", "lr": Infinity}\n'
                     b'{"step": 3, "loss": "-inf", "lr": "inf"}\n'
                     b'\x00\xffgarbage line\n'
                     b'{"step": 4, "loss": null}\n'
                     b'\n'
                     b'{"step": 5, "loss": 2.0, "note": "text is not a metric"}\n'
                     b'{"step": 6, "lo')
    table = read_run(path)
    loss = table.series["train/loss"]
    assert list(loss.step) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(loss.value, [3.0, np.nan, np.nan, -np.inf, np.nan, 2.0])
    assert list(table.series["train/lr"].value) == [np.inf, np.inf]
    assert table.problems == ["line 5: not JSON, skipped", "line 9: truncated JSON (the file ends mid-line), skipped"]
    assert "note" not in table.series


def test_jsonl_resumed_and_non_monotone(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [f'{{"step": {s}, "loss": {v}}}' for s, v in [(0, 5), (10, 4), (20, 3), (10, 3.9), (20, 2.9), (30, 2.5)]]
    lines.insert(2, '{"epoch": 1, "loss": 9}')  # a row without a step takes the step before it
    path.write_text("\n".join(lines) + "\n")
    loss = read_run(path).series["train/loss"]
    assert list(loss.step) == [0, 10, 20, 30] and list(loss.value) == [5, 3.9, 2.9, 2.5]


def test_csv_torn_row_and_nan_cells(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss,val_loss\n0,3.0,\n1,nan,3.5\n2,inf,\n3,2.0,3.1\n4,1.9")
    table = read_run(path)
    np.testing.assert_array_equal(table.series["train/loss"].value, [3.0, np.nan, np.inf, 2.0])
    assert list(table.series["eval/loss"].step) == [1, 3]
    assert table.problems == ["row 6: 2 fields, expected 3, skipped"]


def test_text_torn_last_line(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("s:0 trl:3.5\ns:1 trl:3.4\ns:2 trl:3.")
    table = read_run(path)
    assert list(table.series["train/loss"].step) == [0, 1]
    assert table.problems == ["line 3: the file ends mid-line, its last value (trl) dropped"]


def test_torn_tensorboard_wandb_and_trainer_state(tmp_path):
    event = next((LOGS / "tfevents/unet_wd_1e_4").iterdir())
    (tmp_path / event.name).write_bytes(event.read_bytes()[:9000])
    table = read_run(tmp_path / event.name)
    assert 0 < len(table.series["train/loss"]) < 50
    assert "truncated" in table.problems[0] or "stray bytes" in table.problems[0]

    state = (LOGS / "hf_trainer_state/whisper-small-braj_trainer_state.json").read_bytes()
    (tmp_path / "trainer_state.json").write_bytes(state[:4000])
    table = read_run(tmp_path / "trainer_state.json")
    assert table.format == "hf-trainer-state" and len(table.series["eval/loss"]) >= 5
    assert "torn or damaged" in table.problems[0]


def test_torn_wandb_file(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(dir=str(tmp_path), mode="offline", project="ntjax-test")
    for s in range(300):
        run.log({"loss": 5.0 - s / 100}, step=s)
    run.finish()
    from test_readers_roundtrip import _wait_until_written
    path = next((tmp_path / "wandb").glob("offline-run-*/*.wandb"))
    _wait_until_written(path)
    data = path.read_bytes()
    torn = tmp_path / "torn.wandb"
    torn.write_bytes(data[: len(data) * 2 // 3])
    table = read_run(torn)
    loss = table.series["train/loss"]
    assert table.format == "wandb" and 50 < len(loss) < 300 and loss.value[0] == 5.0
    assert table.problems and any(w in table.problems[-1] for w in ("truncated", "stray", "torn"))
    # a cut exactly between two records leaves valid framing: only the missing exit record tells (1 in ~80
    # byte positions used to read as a complete run)
    ends = [e for e in _wandb_chunk_ends(data) if len(data) // 2 < e < len(data)]
    for end in ends[::max(1, len(ends) // 25)]:
        torn.write_bytes(data[:end])
        assert any("truncated" in p for p in read_run(torn).problems), end
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    torn.write_bytes(bytes(flipped))
    table = read_run(torn)
    assert "bad checksum" in " ".join(table.problems) and len(table.series["train/loss"]) > 100


def _wandb_chunk_ends(data: bytes) -> list[int]:
    """Byte offsets where each chunk of a `.wandb` log ends (32 KiB blocks of crc|length|type|data)."""
    import struct
    pos, ends = 7, []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        length, kind = struct.unpack_from("<HB", data, pos + 4) if left >= 7 else (0, 0)
        if left < 7 or (kind == 0 and length == 0):
            pos += left
            continue
        pos += 7 + length
        ends.append(pos)
    return ends


def _fixture_files():
    return sorted(p for p in LOGS.rglob("*") if p.is_file() and p.suffix != ".md")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(_fixture_files()) - 1), kind=st.sampled_from(["truncate", "flip", "junk"]),
       where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))
def test_fuzzed_real_logs_raise_nothing_but_read_error(tmp_path, which, kind, where, junk):
    source = _fixture_files()[which]
    data = bytearray(source.read_bytes()[:FUZZ_BYTES])
    at = int(where * (len(data) - 1))
    if kind == "truncate":
        data = data[:at]
    elif kind == "flip":
        data[at] ^= 0xFF
    else:
        data[at:at] = junk
    folder = tmp_path / f"case{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    target = folder / source.name  # keep the name: some formats are told by it as well
    target.write_bytes(bytes(data))
    for path in (target, folder):
        try:
            table = read_run(path)
        except ReadError as e:
            assert "unexpected" not in str(e), str(e)  # a reader bug, not bad input
            continue
        assert table.series and all(len(s.step) == len(s.value) == len(s.time) for s in table.series.values())


def test_wandb_log_ending_inside_a_split_record_says_so():
    """A record split over chunks (FIRST, MIDDLE..., LAST) whose last piece never arrived: nothing to
    yield for it, and one problem line, not silence."""
    import struct
    import zlib

    from ntjax.readers.wandb_run import iter_wandb_records

    def chunk(kind: int, payload: bytes) -> bytes:
        crc = zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
        return struct.pack("<IHB", crc, len(payload), kind) + payload

    header = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
    whole = header + chunk(1, b"complete") + chunk(2, b"first half")
    problems: list[str] = []
    assert list(iter_wandb_records(whole, problems, "x.wandb")) == [b"complete"]
    assert len(problems) == 1 and "torn" in problems[0]
    problems.clear()
    done = whole + chunk(4, b" and the rest")
    assert list(iter_wandb_records(done, problems, "x.wandb")) == [b"complete", b"first half and the rest"]
    assert problems == []
