"""`ntjax monitor` on logs being written by another process: the follower reads only what was appended,
`--once` and `--png` show the live run, TensorBoard starts on a loopback port, W&B offline is said."""
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from ntjax.core.logger import MetricLogger, metrics_line
from ntjax.monitor.follow import Follower
from ntjax.monitor.links import launch_tensorboard, tensorboard_command, wandb_link

NTJAX = [sys.executable, "-m", "ntjax.cli"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

WRITER = textwrap.dedent("""
    import json, math, os, sys, time
    from ntjax.core.logger import MetricLogger
    out, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    json.dump({"train": {"steps": steps}}, open(out + "/config.json", "w"))
    with MetricLogger(out, ("jsonl",)) as log:
        for step in range(1, steps + 1):
            log.log(step, {"train/loss": 5.0 * math.exp(-step / 40) + 1.0, "train/lr": 1e-3,
                           "train/grad_norm": 1.0, "train/throughput": 100.0})
            if step % 10 == 0:
                log.log(step, {"eval/loss": 5.2 * math.exp(-step / 40) + 1.1})
            time.sleep(delay)
            while step == steps // 2 and not os.path.exists(out + "/go"):  # hold mid-run until the test says go
                time.sleep(0.05)
""")


def monitor(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*NTJAX, "monitor", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_follower_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with open(path, "w") as f:
        f.write(metrics_line(1, {"train/loss": 3.0}) + metrics_line(2, {"train/loss": 2.5}))
        f.write('{"step": 3, "train/lo')  # a torn line: the writer is mid-write
    follower = Follower(path)
    assert follower.poll() == 2
    with open(path, "a") as f:
        f.write('ss": "nan"}\n' + metrics_line(4, {"train/loss": 2.0, "eval/loss": 2.2}))
    assert follower.poll() == 2 and follower.poll() == 0
    assert follower.bytes_read == path.stat().st_size  # every byte read once
    loss = follower.table().get("train/loss")
    assert loss.step.tolist() == [1, 2, 3, 4] and str(loss.value[2]) == "nan"
    assert follower.table().get("eval/loss").value.tolist() == [2.2]
    # a resumed run rewrites the file (atomic replace, shorter): the follower starts over
    tmp = tmp_path / "new.jsonl"
    tmp.write_text(metrics_line(1, {"train/loss": 9.0}))
    os.replace(tmp, path)
    assert follower.poll() == 1 and follower.table().get("train/loss").value.tolist() == [9.0]


def test_follower_reads_a_growing_csv_with_widened_header(tmp_path):
    follower = Follower(tmp_path / "metrics.csv")
    with MetricLogger(tmp_path, ("jsonl", "csv")) as log:
        log.log(1, {"train/loss": 3.0})
        log.log(2, {"train/loss": 2.8})
        assert follower.poll() == 2
        log.log(3, {"train/loss": 2.6, "eval/loss": 2.9})  # new column: the CSV writer repeats a wider header
    assert follower.poll() == 1
    table = follower.table()
    assert table.get("train/loss").value.tolist() == [3.0, 2.8, 2.6] and table.get("eval/loss").step.tolist() == [3]


def test_other_formats_are_reread_only_when_changed(tmp_path):
    from tensorboardX import SummaryWriter

    def write(steps):
        writer = SummaryWriter(logdir=str(tmp_path / "tb"))
        for step in steps:
            writer.add_scalar("train/loss", 3.0 - 0.1 * step, step)
        writer.close()

    write(range(1, 6))
    follower = Follower(tmp_path / "tb")
    assert follower.kind == "reread" and follower.poll() == 1 and follower.poll() == 0
    assert follower.table().get("train/loss").step.tolist() == [1, 2, 3, 4, 5]
    time.sleep(1.1)  # event file names carry the second they were opened in
    write(range(6, 8))  # a resumed run adds a second event file
    assert follower.poll() == 1 and follower.table().get("train/loss").step.tolist() == list(range(1, 8))


@pytest.mark.slow
def test_once_and_png_follow_a_run_written_by_another_process(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run), "200", "0.01"])
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (run / "metrics.jsonl").exists():
            time.sleep(0.2)
        time.sleep(0.5)
        first = json.loads(monitor(run, "--once", "--json").stdout)
        png = monitor(run, "--png", tmp_path / "live.png", "--json")
        assert png.returncode == 0, png.stderr
        second = json.loads(png.stdout)
        assert writer.poll() is None, "the writer finished before the monitor saw it running"
        st = first["status"]
        assert 0 < st["step"] < 200 and st["total_steps"] == 200 and st["eta_s"] > 0 and not st["finished"]
        assert second["status"]["step"] >= st["step"]
        assert (tmp_path / "live.png").read_bytes()[:8] == PNG_MAGIC
        text = monitor(run, "--once")  # not a tty: plain text, no ANSI escapes
        assert text.returncode == 0 and "step:" in text.stdout and "\x1b[" not in text.stdout
        assert "/200" in text.stdout and "train/loss" in text.stdout
    finally:
        (run / "go").touch()
        writer.wait(timeout=60)
    done = json.loads(monitor(run, "--once", "--json").stdout)
    assert done["status"]["step"] == 200 and done["metrics"]["eval/loss"]["last_step"] == 200


@pytest.mark.slow
def test_monitor_once_on_a_real_training_run(tmp_path):
    run = tmp_path / "tiny"
    train = subprocess.Popen([*NTJAX, "train", "--preset", "tiny", "--yes", "--out", str(run), "--no-progress",
                              "--steps", "300"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, seen = time.time() + 150, None
        while time.time() < deadline and train.poll() is None:
            out = monitor(run, "--once", "--json")
            if out.returncode == 0:
                seen = json.loads(out.stdout)["status"]
                if seen["step"] and seen["step"] > 20:
                    break
            time.sleep(1)
        assert seen and seen["step"] > 0 and seen["total_steps"] == 300
        png = monitor(run, "--png", tmp_path / "tiny.png")
        assert png.returncode == 0 and (tmp_path / "tiny.png").read_bytes()[:8] == PNG_MAGIC
    finally:
        train.terminate()
        train.wait(timeout=60)


def test_tensorboard_command_serves_on_loopback(tmp_path):
    cmd = tensorboard_command(tmp_path, 6123)
    assert cmd[1:3] == ["-m", "tensorboard.main"] and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--logdir") + 1] == str(tmp_path) and cmd[cmd.index("--port") + 1] == "6123"
    proc = monitor(tmp_path, "--tensorboard")  # no event files: one clear line
    assert proc.returncode == 2 and "no TensorBoard event files" in proc.stderr


@pytest.mark.slow
def test_tensorboard_starts_and_answers(tmp_path):
    with MetricLogger(tmp_path, ("jsonl", "tensorboard")) as log:
        log.log(1, {"train/loss": 3.0})
    tb = launch_tensorboard(tmp_path, timeout=90)
    try:
        assert tb["url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(tb["url"], timeout=10) as response:
            assert response.status == 200
    finally:
        os.kill(tb["pid"], 15)


@pytest.mark.slow
def test_wandb_offline_run_is_said_to_be_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with MetricLogger(tmp_path, ("jsonl", "wandb")) as log:
        log.log(1, {"train/loss": 3.0})
    link = wandb_link(tmp_path)
    assert link["mode"] == "offline" and link["url"] is None and "wandb sync" in link["message"]
    proc = monitor(tmp_path, "--wandb")
    assert proc.returncode == 0 and "offline" in proc.stdout
