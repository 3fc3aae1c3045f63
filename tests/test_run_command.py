"""`ntjax run -- CMD`: a user's own PyTorch and Keras scripts as monitored runs (real scripts, real
subprocesses): live NaN warnings, --on-instability stop, the report, and mandatory logging."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ntjax.readers import read_run

SCRIPTS = Path(__file__).parent / "userscripts"


def ntjax_run(*args, timeout=300):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "run", "--yes", "--json", *args], capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr


@pytest.mark.slow
def test_pytorch_script_warns_live_on_nan_and_writes_the_report(tmp_path):
    run_dir = tmp_path / "torch"
    code, data, err = ntjax_run("--out", str(run_dir), "--", sys.executable, str(SCRIPTS / "torch_train.py"),
                                "--steps", "60", "--nan-at", "40", "--lr", "0.05")
    assert code == 0, err[-2000:]  # warn mode: the script's own exit status
    assert data["stopped"] is None and data["final_step"] == 60
    assert [e["kind"] for e in data["events"]] == ["nan"] and data["events"][0]["step"] == 40
    assert "warning: non-finite loss" in err
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0]["step"] == 40
    report = (run_dir / "report.md").read_text()
    assert "step 40: nan" in report and "[critical] nan in train/loss" in report
    assert (run_dir / "plots" / "loss.png").is_file()
    assert "step 60 eval loss" in (run_dir / "console.log").read_text()  # the script's own output is kept
    run = json.loads((run_dir / "run.json").read_text())
    assert run["argv"][-2:] == ["--lr", "0.05"] and run["exit_code"] == 0
    table = read_run(run_dir)  # the folder reads as the bridge run it is, not as the console log
    assert table.format == "ntjax-jsonl" and table.get("eval/accuracy") is not None


@pytest.mark.slow
def test_on_instability_stop_ends_the_pytorch_job_at_the_first_nan(tmp_path):
    run_dir = tmp_path / "stop"
    code, data, err = ntjax_run("--out", str(run_dir), "--on-instability", "stop", "--", sys.executable,
                                str(SCRIPTS / "torch_train.py"), "--steps", "400", "--nan-at", "20",
                                "--sleep", "0.05")
    assert code == 3 and data["stopped"] == "instability", err[-2000:]
    assert data["events"][0]["step"] == 20
    assert data["final_step"] < 200  # stopped while it ran, not after 400 steps
    assert "--on-instability stop" in err


@pytest.mark.slow
def test_keras_script_is_stopped_live_on_nan(tmp_path):
    pytest.importorskip("tensorflow")
    run_dir = tmp_path / "keras"
    code, data, err = ntjax_run("--out", str(run_dir), "--on-instability", "stop", "--grace", "120", "--",
                                sys.executable, str(SCRIPTS / "keras_train.py"), "--nan-at", "20", "--epochs", "40")
    assert code == 3 and data["stopped"] == "instability", err[-2000:]
    assert data["events"][0]["kind"] == "nan" and data["events"][0]["step"] == 20
    assert data["final_step"] < 16 * 40 - 1
    assert "non-finite" in (run_dir / "report.md").read_text()


def test_a_script_that_logs_nothing_is_stopped_with_the_lines_to_add(tmp_path):
    run_dir = tmp_path / "silent"
    code, data, err = ntjax_run("--out", str(run_dir), "--grace", "4", "--", sys.executable,
                                str(SCRIPTS / "silent_train.py"))
    assert code == 2 and data["stopped"] == "no_metrics"
    assert "no metrics appeared" in err and "TorchMonitor(model, optimizer" in err
    assert "monitor.log(step, loss)" in data["message"]
    assert data["wall_s"] < 60  # stopped after the grace period, not left running


def test_a_folder_holding_a_run_is_refused(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    code, data, err = ntjax_run("--out", str(tmp_path), "--", sys.executable, "-c", "pass")
    assert code == 2 and data is None and "already holds a run" in err


@pytest.mark.slow
def test_ctrl_c_stops_the_whole_job_and_reports(tmp_path):
    import signal
    import time

    run_dir = tmp_path / "int"
    proc = subprocess.Popen([sys.executable, "-m", "ntjax.cli", "run", "--yes", "--quiet", "--json", "--out",
                             str(run_dir), "--", sys.executable, str(SCRIPTS / "torch_train.py"), "--steps", "5000",
                             "--sleep", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    child = json.loads((run_dir / "run.json").read_text())["pid"]
    proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground ntjax process
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    data = json.loads(out)
    assert data["stopped"] == "interrupted" and data["final_step"] < 5000
    try:
        os.kill(child, 0)
        alive = open(f"/proc/{child}/stat").read().split()[2] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive
    assert (run_dir / "report.md").is_file()
