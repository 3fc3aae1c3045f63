"""Bad input ends with exit 2 and one clear line (never exit 1 "internal error", never exit 0 on nonsense);
user code calling sys.exit is named; a broken sweep is caught before its first trial; storage passwords
stay out of output, files and argv."""
from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntjax.diagnostics.plan import parse_count
from ntjax.errors import NtjaxError
from ntjax.sweep.runner import worker_command
from ntjax.sweep.secret_url import ENV_VAR, mask
from ntjax.sweep.study import Budget, counts_toward_budget
from tests.robust_helpers import env, ntjax, one_line_error

GOOD_CSV = "params,tokens,loss\n" + "".join(
    f"{1e6 * (i % 7 + 1)},{1e9 * (i % 5 + 1)},{3.0 - 0.01 * (i % 50)}\n" for i in range(20))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("exits")
    (d / "ok.csv").write_text(GOOD_CSV)
    (d / "bin.csv").write_bytes(bytes(range(256)) * 20)
    (d / "huge.csv").write_text("params,tokens,loss\n" + "1" * 200_000 + ",1,1\n")
    (d / "junk.log").write_bytes(bytes(range(1, 256)) * 10)
    (d / "exit7.py").write_text("import sys\nsys.exit(7)\n")
    (d / "broken.py").write_text("raise RuntimeError('the spec is broken')\n")
    for name, doc in {"listcfg": [1, 2], "unknown": {"train": {"steps": 5, "bogus": 1}},
                      "badmodel": {"train": {"model": {"wat": 2}}}}.items():
        (d / name / "checkpoints").mkdir(parents=True)
        (d / name / "config.json").write_text(json.dumps(doc))
    return d


CASES = {
    "plan-params-1.2.3": (["plan", "--params", "1.2.3", "--tokens", "1B"], "cannot read '1.2.3'"),
    "plan-negative-throughput": (["plan", "--params", "1M", "--tokens", "1B", "--throughput", "-100"], "positive"),
    "plan-unwritable": (["plan", "--params", "1M", "--tokens", "1B", "--markdown", "{d}/ok.csv/p.md"], "ok.csv"),
    "scale-binary-csv": (["scale", "fit", "{d}/bin.csv"], "not a text CSV"),
    "scale-huge-field": (["scale", "fit", "{d}/huge.csv"], "not a readable CSV"),
    "scale-budget-0": (["scale", "fit", "{d}/ok.csv", "--budget", "0", "--no-plot"], "positive"),
    "scale-budget-negative": (["scale", "fit", "{d}/ok.csv", "--budget=-1e21", "--no-plot"], "positive"),
    "scale-unwritable-plot": (["scale", "fit", "{d}/ok.csv", "--bootstrap", "0", "--plot", "{d}/ok.csv/s.png"],
                              "ok.csv"),
    "scale-run-sizes-0": (["scale", "run", "--sizes", "0", "--dry-run"], "--sizes"),
    "sweep-max-time-negative": (["sweep", "--param", "lr=log:1e-4:1e-2", "--max-time", "-5", "--out", "{d}/sw"],
                                "--max-time"),
    "monitor-junk": (["monitor", "{d}/junk.log", "--once"], "binary"),
    "eval-batches-negative": (["eval", "{d}/nowhere", "--batches", "-3"], "--batches"),
    "config-list": (["eval", "{d}/listcfg"], "list"),
    "config-unknown-keys": (["eval", "{d}/unknown"], "bogus"),
    "config-unknown-model-keys": (["eval", "{d}/badmodel"], "wat"),
    "spec-not-python": (["train", "--preset", "tiny", "--yes", "--spec", "{d}/ok.csv", "--out", "{d}/t"], ".py"),
    "spec-sys-exit": (["train", "--preset", "tiny", "--yes", "--spec", "{d}/exit7.py", "--out", "{d}/t7"],
                      "sys.exit(7)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_line(files, case):
    argv, expected = CASES[case]
    p = ntjax(*[a.format(d=files) for a in argv])
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr[-2000:]
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and expected in errors[0], p.stderr[-2000:]


def test_lr_find_unwritable_out(files):
    p = ntjax("lr-find", "--preset", "tiny", "--steps", "10", "--out", f"{files}/ok.csv/lrf")
    assert "ok.csv" in one_line_error(p)


def test_sweep_with_broken_spec_stops_before_first_trial(files):
    out = files / "broken-sweep"
    p = ntjax("sweep", "--preset", "tiny", "--steps", "5", "--param", "lr=log:1e-4:1e-2", "--max-runs", "3",
              "--spec", str(files / "broken.py"), "--out", str(out))
    line = one_line_error(p)
    assert "the spec is broken" in line and "no budget used" in line
    assert not list(out.glob("trial_*"))
    with sqlite3.connect(out / "study.db") as db:
        assert db.execute("select count(*) from trials").fetchone()[0] == 0


def test_failed_at_start_trials_use_no_budget():
    def trial(**attrs):
        return optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
    assert counts_toward_budget(trial(fail_reason="RuntimeError: died at step 40"))
    assert not counts_toward_budget(trial(fail_reason="RuntimeError: bad spec", failed_at_start=True))


def test_storage_password_masked_and_kept_out_of_argv(tmp_path):
    url = "postgresql://alice:s3cret@db.example:5432/optuna"
    assert mask(url) == "postgresql://alice:***@db.example:5432/optuna"
    assert mask("sqlite:////tmp/x/study.db") == "sqlite:////tmp/x/study.db"
    cmd = worker_command(tmp_path, url, "study", Budget(4), 0, 5)
    assert not any("s3cret" in a for a in cmd) and "--storage" not in cmd
    plain = worker_command(tmp_path, "sqlite:////tmp/s.db", "study", Budget(4), 0, 5)
    assert "sqlite:////tmp/s.db" in plain
    # A worker started without --storage takes the URL from its environment, and needs one of the two.
    worker = [sys.executable, "-m", "ntjax.sweep.runner", "--out", str(tmp_path), "--study-name", "none",
              "--max-runs", "1"]
    p = subprocess.run(worker, capture_output=True, text=True, env=env(), timeout=120)
    assert p.returncode == 2 and ENV_VAR in p.stderr
    db = f"sqlite:///{tmp_path}/study.db"
    p = subprocess.run(worker, capture_output=True, text=True, env=env(**{ENV_VAR: db}), timeout=120)
    assert ENV_VAR not in p.stderr and (tmp_path / "study.db").exists()  # it opened the storage it was given


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789.eE+-kmbgtKMBGT xyz", max_size=12))
def test_plan_counts_parse_or_refuse_in_one_line(text):
    try:
        value = parse_count(text)
    except NtjaxError as e:
        assert "\n" not in str(e)
        return
    assert value is not None and math.isfinite(value) and value >= 0
