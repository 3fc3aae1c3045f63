"""A damaged metrics.jsonl is read, not rejected: a NUL tail (what a power cut leaves) or a junk block early
in the file costs only the lines it covers, and the rest are reported as skipped."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntjax.readers import read_run
from tests.robust_helpers import ntjax

N = 80


def _lines(n: int = N) -> list[bytes]:
    return [json.dumps({"step": i, "time": 1.7e9 + i, "train/loss": 4.0 / (1 + 0.05 * i), "train/lr": 1e-3}).encode()
            for i in range(1, n + 1)]


# (a block starting with W&B's magic bytes at offset 0 is a W&B file, not a damaged JSONL)
junk_bytes = st.binary(min_size=1, max_size=3000).map(lambda b: b.replace(b"{", b"?")).filter(
    lambda b: not b.startswith(b":W&B"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(0, N), junk=junk_bytes, nul_tail=st.integers(0, 5000), torn=st.booleans())
def test_junk_block_and_nul_tail_keep_every_whole_line(tmp_path, at, junk, nul_tail, torn):
    lines = _lines()
    body = b"\n".join(lines[:at] + [junk] + lines[at:]) + b"\n"
    if torn:  # the last line cut mid-way, then zeros where the rest should have been
        body += lines[0][:20]
    body += b"\x00" * nul_tail
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_bytes(body)
    table = read_run(run)
    s = table.get("train/loss")
    # The junk block may swallow the line it is glued to only if it has no newline of its own: never more.
    assert len(s) >= N - 1
    assert set(range(1, N + 1)) - set(s.step.tolist()) <= {at, at + 1}
    assert table.problems  # what was skipped is said


def test_curves_and_debug_read_a_run_with_a_junk_block_and_nul_tail(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = _lines()
    junk = bytes(range(256)).replace(b"{", b"?") * 12  # ~3 KB of binary early in the file
    (run / "metrics.jsonl").write_bytes(b"\n".join(lines[:3] + [junk] + lines[3:]) + b"\n" + b"\x00" * 4096)
    p = ntjax("curves", str(run), "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["metrics"]["train/loss"]["points"] == N and d["problems"]
    p = ntjax("debug", str(run))
    assert p.returncode == 0, p.stderr
    assert "skipped while reading" in p.stdout
