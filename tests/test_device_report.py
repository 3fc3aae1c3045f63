"""`ntjax train` says which device it ran on, the memory it held and its MFU; `sweep --workers N` gives each
worker its share of one accelerator's memory."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ntjax.core.device_info import logged_mfu, summary_line
from ntjax.sweep.runner import worker_env


def test_sweep_workers_each_get_a_memory_fraction_unless_the_user_chose():
    assert worker_env(2, {"PATH": "/bin"})["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    assert worker_env(4, {})["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in worker_env(1, {})
    mine = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert worker_env(3, mine) == mine
    assert worker_env(3, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2"})["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.2"


def test_mfu_line_against_the_device_peak(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": i, "train/mfu": 0.1 if i < 5 else 0.4}) + "\n" for i in range(60)))
    assert logged_mfu(log) == pytest.approx(0.4)  # the last 50 steps, past the warm-up
    gpu = {"platform": "gpu", "kind": "NVIDIA H100 80GB HBM3", "count": 1, "memory_in_use_mb": 1000.0,
           "memory_peak_mb": 60000.0, "memory_limit_mb": 76000.0, "host_peak_rss_mb": 3000.0,
           "peak_flops_per_device": 989e12, "mfu": 0.4}
    line = summary_line(gpu)
    assert "NVIDIA H100 80GB HBM3 ×1 (gpu)" in line and "60,000 MiB peak of 76,000 MiB" in line
    assert "MFU: 40.0 % of 989 TFLOP/s" in line


@pytest.mark.slow
def test_train_reports_device_memory_and_mfu(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ntjax.cli", "train", "--preset", "tiny", "--steps", "2", "--out",
                           str(tmp_path / "run"), "--yes", "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    device = json.loads(proc.stdout)["device"]
    assert device["platform"] == "cpu" and device["count"] >= 1 and device["host_peak_rss_mb"] > 0
    assert device["mfu"] is None and device["peak_flops_per_device"] is None
    assert "device: " in proc.stderr and "MFU: n/a (no known peak FLOP/s for this device)" in proc.stderr
