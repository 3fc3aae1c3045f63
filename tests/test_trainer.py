"""End to end: a tiny run trains, refuses to run unlogged, and resumes exactly after a kill."""
import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ntjax.core import config as C
from ntjax.core.logger import MetricLogger
from ntjax.errors import NtjaxError
from ntjax.trainer import train

NTJAX = [sys.executable, "-m", "ntjax.cli"]


def losses(run_dir: Path, name: str = "train/loss") -> dict[int, float]:
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if name in rec:
            assert rec["step"] not in out, f"step {rec['step']} logged twice"
            out[rec["step"]] = float(rec[name])
    return out


@pytest.mark.slow
def test_tiny_run_learns_and_writes_the_run_folder(tmp_path):
    cfg = dataclasses.replace(C.PRESETS["tiny"], steps=120, log=("jsonl", "csv", "tensorboard"))
    result = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("metrics.jsonl", "metrics.csv", "config.json", "report.md", "plots/loss.png"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    train_loss = losses(run)
    assert sorted(train_loss) == list(range(1, 121))
    first, last = np.mean([train_loss[s] for s in range(1, 6)]), np.mean([train_loss[s] for s in range(111, 121)])
    assert first == pytest.approx(math.log(256), rel=0.05)  # a fresh model is uniform over 256 bytes
    assert last < first - 2.0
    evidence = json.loads((run / "config.json").read_text())
    # Below the unigram entropy: the model uses context, not just byte frequencies.
    assert result.best_eval_loss < evidence["data"]["unigram_entropy"]
    assert evidence["optimizer"]["param_groups"][0]["weight_decay"] == cfg.weight_decay
    assert evidence["model"]["n_params"] == cfg.model.n_params()
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("train/loss", "train/lr", "train/grad_norm", "train/nonfinite", "attn_entropy/blocks.0"):
        assert key in rec
    assert any(k.startswith("grad_norm/blocks.0.") for k in rec)
    evals = losses(run, "eval/loss")
    assert sorted(evals) == [15, 30, 45, 60, 75, 90, 105, 120]
    assert "best eval loss" in (run / "report.md").read_text()


def test_logging_is_mandatory(tmp_path):
    with pytest.raises(NtjaxError, match="without logging is refused"):
        MetricLogger(tmp_path, "none")
    p = subprocess.run(NTJAX + ["train", "--preset", "tiny", "--log", "none", "--yes", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "refused" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unwritable_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = subprocess.run(NTJAX + ["train", "--preset", "tiny", "--yes", "--out", str(blocker / "run")],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "cannot write to the run folder" in p.stderr


@pytest.mark.slow
def test_killed_run_resumes_and_matches_the_uninterrupted_curve(tmp_path):
    args = ["train", "--preset", "tiny", "--steps", "60", "--ckpt-every", "20", "--eval-every", "20",
            "--yes", "--no-progress"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(NTJAX + args + ["--out", str(full)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    proc = subprocess.Popen(NTJAX + args + ["--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.time() + 600  # polls: a loaded machine may take minutes to compile and reach step 20
    while not (killed / "checkpoints" / "20").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoints" / "20").exists()
    done_before = max(losses(killed))
    assert done_before < 60, "the kill came too late to test resuming"
    p = subprocess.run(NTJAX + args + ["--out", str(killed), "--json"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["resumed_from"] >= 20
    a, b = losses(full), losses(killed)
    assert sorted(b) == list(range(1, 61))  # no step missing or duplicated
    np.testing.assert_allclose([b[s] for s in range(1, 61)], [a[s] for s in range(1, 61)], rtol=1e-5)
    ea, eb = losses(full, "eval/loss"), losses(killed, "eval/loss")
    assert ea.keys() == eb.keys()
    np.testing.assert_allclose([eb[s] for s in ea], [ea[s] for s in ea], rtol=1e-5)


def _parseable_prefix(path: Path) -> list[int]:
    """Steps of the complete lines of a metrics.jsonl being killed at random: all but a torn last line parse."""
    if not path.exists():  # killed before the first line (a slow start on a loaded machine)
        return []
    lines = path.read_bytes().split(b"\n")
    complete, torn = lines[:-1], lines[-1]
    steps = [json.loads(l)["step"] for l in complete if l]
    if torn:
        with pytest.raises(ValueError):
            json.loads(torn)
    return steps


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing(tmp_path):
    """Several SIGKILLs at random times (mid-step, mid-eval, mid-save): each restart resumes, and the
    finished run's curve equals an uninterrupted run's, every step logged exactly once."""
    rng = np.random.default_rng(1)
    args = ["train", "--preset", "tiny", "--steps", "60", "--ckpt-every", "10", "--eval-every", "10",
            "--yes", "--no-progress"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(NTJAX + args + ["--out", str(full)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    for delay in rng.uniform(4.0, 12.0, size=3):
        proc = subprocess.Popen(NTJAX + args + ["--out", str(killed)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _parseable_prefix(killed / "metrics.jsonl")
    p = subprocess.run(NTJAX + args + ["--out", str(killed), "--json"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    a, b = losses(full), losses(killed)
    assert sorted(b) == list(range(1, 61))
    np.testing.assert_allclose([b[s] for s in range(1, 61)], [a[s] for s in range(1, 61)], rtol=1e-5)
    assert not list((killed / "checkpoints").glob("*.orbax-checkpoint-tmp*"))
