"""`examples/torch_bridge.py` runs as a script and `ntjax curves` reads the folder it writes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the example needs torch (pip install 'ntjax[torch]')")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torch_example_writes_a_run_that_curves_reads(tmp_path):
    out = tmp_path / "run"
    subprocess.run([sys.executable, str(ROOT / "examples" / "torch_bridge.py"), "--out", str(out), "--steps", "6",
                    "--eval-every", "3", "--sample-every", "3", "--width", "32"], check=True, capture_output=True)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "train/loss" in r] == list(range(6))
    assert [r["step"] for r in lines if "eval/loss" in r] == [3, 6]
    assert "attn_entropy/blocks.layers.0.self_attn" in lines[0]
    curves = subprocess.run([sys.executable, "-m", "ntjax.cli", "curves", str(out), "--json", "--no-plot"],
                            check=True, capture_output=True, text=True)
    report = json.loads(curves.stdout)
    assert {"train/loss", "train/grad_norm", "eval/loss", "train/lr"} <= set(report["metrics"])
    assert report["metrics"]["train/loss"]["points"] == 6
