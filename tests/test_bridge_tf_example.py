"""`examples/keras_bridge.py` runs as a script and `ntjax curves` reads the folder it writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow", reason="the example needs tensorflow (pip install 'ntjax[tensorflow]')")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_keras_example_writes_a_run_that_curves_reads(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, str(ROOT / "examples" / "keras_bridge.py"), "--out", str(out), "--steps", "8",
                    "--epochs", "2", "--sample-every", "4"], check=True, capture_output=True, env=env)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "train/loss" in r] == list(range(8))
    assert [r["step"] for r in lines if "eval/loss" in r] == [4, 8]
    train = {r["step"]: r for r in lines if "train/loss" in r}
    assert "update_ratio/byte_mlp/hidden1/kernel" in train[4] and "grad_norm/byte_mlp/embed/embeddings" in train[4]
    curves = subprocess.run([sys.executable, "-m", "ntjax.cli", "curves", str(out), "--json", "--no-plot"],
                            check=True, capture_output=True, text=True, env=env)
    report = json.loads(curves.stdout)
    assert {"train/loss", "train/grad_norm", "eval/loss", "eval/accuracy"} <= set(report["metrics"])
