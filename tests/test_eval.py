"""`ntjax eval` on a real tiny run: it reproduces the logged eval loss, and its comparisons flag a worse
checkpoint (a perturbed one saved into the run, and an early one against the final one as baseline)."""
import dataclasses
import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from ntjax.cli import main
from ntjax.core import config as C
from ntjax.core.checkpoint import Checkpoints
from ntjax.core.runfolder import load_checkpoint
from ntjax.evaluation import logged_evals, regressions
from ntjax.trainer import train

NTJAX = [sys.executable, "-m", "ntjax.cli"]


def eval_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["eval", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cfg = dataclasses.replace(C.PRESETS["tiny"], steps=60, ckpt_every=15, eval_every=15)
    out = tmp_path_factory.mktemp("eval") / "run"
    train(cfg, out, progress=False, report=False)
    return out


@pytest.mark.slow
def test_eval_reproduces_the_logged_eval_loss(run_dir, capsys):
    logged = logged_evals(run_dir)
    latest = eval_json(capsys, run_dir)
    assert latest["step"] == 60
    assert latest["metrics"]["eval/loss"] == pytest.approx(logged[60]["eval/loss"], abs=1e-5)
    assert latest["metrics"]["eval/ppl"] == pytest.approx(np.exp(logged[60]["eval/loss"]), rel=1e-6)
    assert latest["matches_logged"] is True
    one = eval_json(capsys, run_dir / "checkpoints" / "45")
    assert one["step"] == 45 and one["metrics"]["eval/loss"] == pytest.approx(logged[45]["eval/loss"], abs=1e-5)
    again = eval_json(capsys, run_dir, "--step", "45")
    assert again["metrics"] == one["metrics"]  # deterministic: same checkpoint, same data, same numbers
    report = (run_dir / "eval_report.md").read_text()
    assert "matching the logged value" in report and f"{logged[45]['eval/loss']:.4f}" in report


@pytest.mark.slow
def test_compare_flags_a_perturbed_checkpoint(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    good = load_checkpoint(run)
    noisy = jax.tree.map(lambda p: p + 0.5 * np.random.default_rng(0).standard_normal(p.shape).astype(p.dtype),
                         good.state.params)
    ckpts = Checkpoints(run / "checkpoints", keep=10, async_save=False)
    ckpts.save(75, good.state._replace(params=noisy), good.meta)
    ckpts.close()
    out = eval_json(capsys, run, "--compare")
    assert out["step"] == 75
    steps = [r["step"] for r in out["comparison"]["rows"]]
    assert steps == sorted(steps) and steps[-1] == 75 and len(steps) >= 3
    flagged = {r["step"]: r for r in out["regressions"]}
    assert set(flagged) == {75}, out["regressions"]
    assert flagged[75]["relative_change"] > 0.05
    assert out["regressed"] and out["verdict"].startswith("REGRESSION")
    for row in out["comparison"]["rows"]:  # the unperturbed checkpoints still match what the run logged
        if row["step"] != 75:
            assert row["metrics"]["eval/loss"] == pytest.approx(row["logged_loss"], abs=1e-5)
    assert (run / "plots" / "eval_compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**regression**" in (run / "eval_report.md").read_text()


@pytest.mark.slow
def test_an_early_checkpoint_regresses_against_the_final_one_as_baseline(run_dir, tmp_path, capsys):
    out = eval_json(capsys, run_dir / "checkpoints" / "30", "--baseline", run_dir, "--out", tmp_path)
    b = out["baseline"]
    assert b["step"] == 60 and b["regression"] is True
    assert b["delta"]["eval/loss"] == pytest.approx(out["metrics"]["eval/loss"] - b["metrics"]["eval/loss"])
    assert out["verdict"].startswith("REGRESSION") and (tmp_path / "eval_report.md").exists()
    # the other way round is no regression
    fine = eval_json(capsys, run_dir, "--baseline", run_dir / "checkpoints" / "30", "--out", tmp_path)
    assert fine["baseline"]["regression"] is False and fine["verdict"].startswith("OK")


def test_regressions_rule():
    rows = [{"step": s, "metrics": {"eval/loss": v}} for s, v in [(10, 3.0), (20, 2.5), (30, 2.52), (40, 2.8)]]
    assert [r["step"] for r in regressions(rows)] == [40]  # 30 is within 1% of the best before it
    assert [r["step"] for r in regressions(rows, tolerance=0.001)] == [30, 40]
    rows.append({"step": 50, "metrics": {"eval/loss": float("nan")}})
    assert regressions(rows)[-1]["step"] == 50


def test_bad_checkpoint_path_is_one_clear_line(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    for arg in (tmp_path / "missing", tmp_path / "not_a_run"):
        proc = subprocess.run([*NTJAX, "eval", str(arg), "--json"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and "ntjax eval: error:" in proc.stderr
