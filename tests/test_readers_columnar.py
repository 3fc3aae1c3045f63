"""The columnar fast paths (polars) read exactly what the tolerant row paths read, and step aside for
anything they cannot read exactly (nulls, torn lines, nested values, ragged or non-numeric CSV rows)."""
import numpy as np
import pytest

from ntjax.readers import columnar, read_run
from ntjax.readers.columns import Chunks
from ntjax.readers.delimited import _read_rows, read_delimited
from ntjax.readers.jsonl import parse_lines, read_jsonl, rows_table

ROWS = 3000  # above columnar.MIN_FAST_BYTES once written out
CSV_ROWS = 3 * ROWS  # CSV rows are shorter
NAN = '"nan"'


def _lines(make_row, n: int = ROWS) -> bytes:
    return "".join(make_row(i) + "\n" for i in range(n)).encode()


def _assert_same(a, b):
    assert a.format == b.format and a.problems == b.problems and a.meta == b.meta
    assert sorted(a.series) == sorted(b.series)
    for name, s in a.series.items():
        t = b.series[name]
        assert s.original == t.original
        np.testing.assert_array_equal(s.step, t.step)
        np.testing.assert_array_equal(s.value, t.value)
        np.testing.assert_array_equal(s.time, t.time)


JSONL_CASES = {
    "ntjax": lambda i: (f'{{"step": {i}, "time": {1.7e9 + i:.3f}, "train/loss": {3 - i * 1e-4!r}, "train/lr": 0.0003}}'
                        + (f'\n{{"step": {i}, "time": {1.7e9 + i:.3f}, "eval/loss": {3.1 - i * 1e-4!r}}}'
                           if i % 100 == 0 else "")),
    # a key first seen after polars' schema sample, an int column that turns float, bools, a string column
    "late_key_and_types": lambda i: (f'{{"step": {i}, "loss": {i if i < 500 else i + 0.5}, "ok": {str(i % 2 == 0).lower()}, '
                                     f'"phase": "warm"' + (f', "late": {i * 2}' if i > 2500 else "") + "}"),
    # ntjax's non-finite values are strings; one appears late, so the first schema guess fails
    "nan_strings": lambda i: f'{{"step": {i}, "time": {i}.5, "train/loss": {NAN if i == 2900 else 2.5}}}',
    # rows without a step take the step before; W&B-style bookkeeping keys are skipped
    "carried_steps": lambda i: (f'{{"_step": {i}, "_runtime": {i}, "loss": 1.5}}' if i % 3 else f'{{"acc": {i}}}'),
    "no_step_key": lambda i: f'{{"loss": {i / 7!r}, "wall_time": {i}}}',
}


@pytest.mark.parametrize("case", sorted(JSONL_CASES))
def test_jsonl_fast_path_equals_row_path(case):
    data = _lines(JSONL_CASES[case])
    assert columnar.jsonl_columns(data) is not None, "the fast path should take this file"
    rows, problems = parse_lines(data)
    fast = read_jsonl("x.jsonl", data)
    slow = rows_table("x.jsonl", fast.format, rows, problems)
    _assert_same(fast, slow)
    if case == "ntjax":
        assert fast.format == "ntjax-jsonl" and fast.series["eval/loss"].step.size == ROWS // 100


@pytest.mark.parametrize("tail", [
    b'{"step": 9999, "loss": null}\n',  # a logged NaN as null: columns cannot tell it from a missing key
    b'{"step": 9999, "lo',  # torn last line
    b'{"step": 9999, "img": {"w": 3}}\n',  # nested value
    b'{"step": 9999, "loss": NaN}\n',  # Python's json literal
    b'{"step": 9999, "loss": 1, "loss": 2}\n',  # a repeated key: the last one wins in the row path
    b'{"step": 9999, "note": "a \\":" }\n',  # a key-like text inside a string
    b"\x00" * 64,  # a NUL tail
])
def test_jsonl_unclean_input_takes_the_row_path(tail):
    data = _lines(JSONL_CASES["ntjax"]) + tail
    assert columnar.jsonl_columns(data) is None
    table = read_jsonl("x.jsonl", data)
    assert table.series["train/loss"].step.size == ROWS


def _csv(rows: list[str], header: str = "step,loss,val_loss") -> str:
    return header + "\n" + "\n".join(rows) + "\n"


CSV_CASES = {
    "dense": [f"{i},{3 - i * 1e-4!r},{2.5 + i * 1e-5!r}" for i in range(CSV_ROWS)],
    "sparse_and_non_finite": [f"{i},{'nan' if i == 7 else 'inf' if i == 8 else 1.5},{'' if i % 10 else 2.5}"
                              for i in range(CSV_ROWS)],
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_dense_csv_fast_path_equals_csv_module_path(case):
    text = _csv(CSV_CASES[case])
    body = text.partition("\n")[2]
    assert columnar.dense_csv_columns(body, ",", 3) is not None
    fast = read_delimited("m.csv", text)
    chunks: Chunks = {}
    bad: list[str] = []
    _read_rows(text, ",", "csv", "m.csv", chunks, bad)
    from ntjax.readers.columns import build_table
    _assert_same(fast, build_table("m.csv", "csv", chunks, bad, {"delimiter": ","}))


@pytest.mark.parametrize("bad_row", ["5,1.0", "5,1.0,2.0,3.0", "", "5,1.0%,2", '5,"1.0",2', "5,x,2"])
def test_csv_rows_the_fast_path_cannot_vouch_for_take_the_csv_module_path(bad_row, tmp_path):
    rows = list(CSV_CASES["dense"])
    rows.insert(100, bad_row)
    text = _csv(rows)
    assert columnar.dense_csv_columns(text.partition("\n")[2], ",", 3) is None
    path = tmp_path / "m.csv"
    path.write_text(text)
    table = read_run(path)
    assert table.series["train/loss"].step.size >= CSV_ROWS - 1
    if bad_row.count(",") != 2 and bad_row:
        assert any("row 102" in p for p in table.problems)
