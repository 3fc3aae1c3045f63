"""Progress off a terminal: with stdout piped, long commands print `progress:` lines while they run (not
only at the end), `--json` keeps stdout to one object, and a warning appears at once after a fault."""
import json
import subprocess
import sys
import textwrap
import time

import pytest

from ntjax.viz.progress_lines import Cadence, duration, sweep_line, train_line

NTJAX = [sys.executable, "-m", "ntjax.cli"]


def test_lines_are_key_value_and_say_what_is_known():
    m = {"train/loss": 2.34567, "train/lr": 6e-4, "train/grad_norm": 0.8123, "train/tokens_per_s": 5230.4}
    text = train_line(120, 1500, m, (100, 2.41), 72.0, 1.5)
    assert text == ("progress: train step=120/1500 loss=2.3457 eval_loss=2.4100@100 lr=6.00e-04 grad_norm=0.812 "
                    "tokens_per_s=5230 elapsed=1m12s eta=15m20s")
    fields = dict(tok.split("=", 1) for tok in text.split()[2:])
    assert fields["step"] == "120/1500" and float(fields["loss"]) == pytest.approx(2.3457)
    assert "eta" not in train_line(5, None, {"train/loss": 1.0}, None, 3.0, None)
    sweep = sweep_line({"COMPLETE": 2, "PRUNED": 1, "RUNNING": 1}, 8, (2.3456, 1), 240.0)
    assert sweep == ("progress: sweep trials=3/8 complete=2 pruned=1 failed=0 running=1 best=2.3456@trial1 "
                     "elapsed=4m00s eta=6m40s")
    assert duration(3725) == "1h02m" and duration(None) == "?"


def test_cadence_is_by_time_and_forced_at_evals():
    now = [0.0]
    c = Cadence(30.0, clock=lambda: now[0])
    assert not c.due()
    now[0] = 29.0
    assert not c.due() and c.due(force=True)  # an eval: report now, and restart the clock
    now[0] = 50.0
    assert not c.due()
    now[0] = 59.5
    assert c.due()
    assert not Cadence(0.0).due(force=True)  # switched off


def _read_while_running(cmd, cwd, stream="stdout", timeout=600):
    """Lines of the command's `stream` with, for each, whether the process was still running when it came."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    seen = []
    deadline = time.time() + timeout
    for raw in pipe:
        seen.append((raw.rstrip("\n"), proc.poll() is None))
        assert time.time() < deadline, "command ran too long"
    other = (proc.stderr if stream == "stdout" else proc.stdout).read()
    proc.wait()
    return proc.returncode, seen, other


@pytest.mark.slow
def test_train_piped_prints_progress_while_it_runs(tmp_path):
    code, seen, err = _read_while_running(
        NTJAX + ["train", "--preset", "tiny", "--steps", "60", "--eval-every", "30", "--ckpt-every", "30",
                 "--progress-every", "0.2", "--yes", "--out", str(tmp_path / "run")], tmp_path)
    assert code == 0, err
    progress = [(text, alive) for text, alive in seen if text.startswith("progress: train")]
    assert any(alive and "step=60/60" not in text for text, alive in progress), progress
    assert any("eval_loss=" in text and "@30" in text for text, _ in progress)  # the eval forces a line
    assert progress[-1][0].split()[2] == "step=60/60"
    for text, _ in progress:
        fields = dict(tok.split("=", 1) for tok in text.split()[2:])
        assert {"step", "loss", "lr", "grad_norm", "elapsed"} <= fields.keys()


@pytest.mark.slow
def test_json_keeps_stdout_to_one_object_and_progress_goes_to_stderr(tmp_path):
    code, seen, out = _read_while_running(
        NTJAX + ["train", "--preset", "tiny", "--steps", "40", "--eval-every", "20", "--progress-every", "0.2",
                 "--yes", "--json", "--out", str(tmp_path / "run")], tmp_path, stream="stderr")
    assert code == 0
    assert json.loads(out)["final_step"] == 40  # the whole of stdout is one JSON object
    assert any(text.startswith("progress: train") and alive for text, alive in seen)


SPEC = """
import jax.numpy as jnp
from ntjax.core.data import make_data
from ntjax.core.model import GPT
from ntjax.core.step import lm_loss

_data = {}


def _d(cfg):
    return _data.setdefault(cfg.seed, make_data(cfg.model.seq_len, cfg.seed, cfg.eval_fraction))


def build_model(cfg, rngs):
    return GPT(cfg.model, rngs)


def train_batch(cfg, index):
    batch = _d(cfg).train_batch(index, cfg.batch_size)
    if index == 20:
        batch[0, 0] = 0  # a NUL byte marks the poisoned batch
    return batch


def eval_batches(cfg):
    return _d(cfg).eval_batches(cfg.eval_batches, cfg.batch_size)


def loss_fn(model, batch):
    loss, aux = lm_loss(model, batch)
    return loss * jnp.where(batch[0, 0] == 0, jnp.nan, 1.0), aux
"""


@pytest.mark.slow
def test_a_warning_appears_in_the_progress_stream_at_the_faulty_step(tmp_path):
    spec = tmp_path / "nan_spec.py"
    spec.write_text(textwrap.dedent(SPEC))
    code, seen, err = _read_while_running(
        NTJAX + ["train", "--preset", "tiny", "--spec", str(spec), "--steps", "60", "--eval-every", "30",
                 "--on-instability", "stop", "--progress-every", "60", "--yes", "--out", str(tmp_path / "run")],
        tmp_path)
    texts = [text for text, _ in seen]
    warnings = [t for t in texts if t.startswith("warning:")]
    assert warnings and "step 21" in warnings[0], texts  # batch index 20 is step 21
    first = texts.index(warnings[0])
    later_steps = [int(t.split()[2].split("=")[1].split("/")[0]) for t in texts[first:]
                   if t.startswith("progress: train")]
    assert all(s <= 22 for s in later_steps)  # stopped within one step of the fault
    assert code != 0


@pytest.mark.slow
def test_lr_find_piped_prints_progress(tmp_path):
    code, seen, err = _read_while_running(
        NTJAX + ["lr-find", "--preset", "tiny", "--steps", "40", "--progress-every", "0.05", "--out",
                 str(tmp_path / "lr")], tmp_path)
    assert code == 0, err
    lines = [text for text, alive in seen if text.startswith("progress: lr-find") and alive]
    assert lines and all("lr=" in t and "loss=" in t for t in lines)


@pytest.mark.slow
def test_sweep_piped_prints_progress_and_monitor_reads_the_sweep_folder(tmp_path):
    out = tmp_path / "sweep"
    code, seen, err = _read_while_running(
        NTJAX + ["sweep", "--preset", "tiny", "--steps", "20", "--param", "lr=log:1e-3:1e-2", "--max-runs", "2",
                 "--strategy", "random", "--progress-every", "0.5", "--out", str(out)], tmp_path)
    assert code == 0, err
    lines = [text for text, alive in seen if text.startswith("progress: sweep") and alive]
    assert lines, [t for t, _ in seen]
    assert any("complete=1" in t for t in lines)  # a finished trial is reported at once, mid-sweep
    mon = subprocess.run(NTJAX + ["monitor", str(out), "--once", "--json"], capture_output=True, text=True)
    assert mon.returncode == 0, mon.stderr
    data = json.loads(mon.stdout)
    assert data["format"] == "ntjax-sweep" and len(data["trials"]) == 2
    assert all(t["state"] == "COMPLETE" and t["steps"] == 20 and "lr" in t["params"] for t in data["trials"])
    human = subprocess.run(NTJAX + ["monitor", str(out), "--once"], capture_output=True, text=True).stdout
    assert "2 complete" in human and "steps" in human


@pytest.mark.slow
def test_ntjax_run_piped_prints_progress_and_warns_in_the_same_stream(tmp_path):
    """`ntjax run` on a user's PyTorch script: progress lines from its growing log while it runs, and the
    injected NaN's warning in the same stream."""
    from pathlib import Path

    script = Path(__file__).parent / "userscripts" / "torch_train.py"
    code, seen, err = _read_while_running(
        NTJAX + ["run", "--yes", "--progress-every", "0.2", "--out", str(tmp_path / "r"), "--",
                 sys.executable, str(script), "--steps", "80", "--nan-at", "60", "--sleep", "0.02"], tmp_path)
    texts = [t for t, _ in seen]
    progress = [t for t, alive in seen if t.startswith("progress: train") and alive]
    assert progress and all("loss=" in t for t in progress), texts
    assert any(t.startswith("warning:") and "non-finite" in t for t in texts), texts
