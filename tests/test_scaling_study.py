"""`ntjax scale run`: the study design, and a tiny real study trained end to end."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from ntjax.core.config import preset
from ntjax.scaling import study
from ntjax.scaling.points import read_points


def test_isoflop_design_holds_compute_per_group():
    runs = study.design_isoflop(preset("tiny"), [3e9, 1e10], sizes=3)
    assert len(runs) == 6
    for group in {r.group for r in runs}:
        flops = np.array([r.flops for r in runs if r.group == group])
        sizes = {r.n_params for r in runs if r.group == group}
        assert len(sizes) == 3 and np.ptp(np.log10(flops)) < 0.05  # equal up to rounding of the steps
    for r in runs:
        assert r.n_params == r.cfg.model.n_params(embedding=False)
        assert r.n_tokens == r.cfg.steps * r.cfg.batch_size * r.cfg.model.seq_len
        assert r.cfg.lr is not None and r.cfg.warmup is not None  # smart defaults resolved


def test_total_count_and_dry_run_cli():
    total = study.design_axis(preset("tiny"), "width", [32], count="total")[0]
    assert total.n_params == total.cfg.model.n_params(embedding=True)
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "scale", "run", "--preset", "tiny", "--dry-run", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["n_count"] == "non-embedding" and len(data["runs"]) == 9


@pytest.mark.slow
def test_tiny_width_study_end_to_end(tmp_path):
    base = dataclasses.replace(preset("tiny"), steps=40)
    runs = study.design_axis(base, "width", [16, 32, 64])
    rows = study.execute(runs, tmp_path)
    csv_path = study.write_csv(rows, tmp_path / "scaling.csv")
    points = read_points(csv_path)
    assert list(points.n_params) == [r.n_params for r in runs]
    losses = [r["loss"] for r in rows]
    assert all(np.isfinite(losses)) and losses[0] > losses[-1]  # the wider model learns more in 40 steps
    again = study.execute(runs, tmp_path, train_fn=lambda *a, **k: pytest.fail("finished runs are reused"))
    assert again == rows
