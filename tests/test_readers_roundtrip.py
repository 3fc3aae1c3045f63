"""Known series written with the real writers of each format read back exactly."""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest

from ntjax.core.logger import MetricLogger
from ntjax.readers import read_run, read_runs

STEPS = np.arange(0, 200, 5)
LOSS = 4.0 * np.exp(-STEPS / 80.0) + 1.0
LR = np.where(STEPS < 50, 1e-3 * (STEPS + 5) / 55, 1e-3)
NAN_STEP = 100  # one logged NaN the NaN detector must see


def _loss_with_nan():
    return np.where(STEPS == NAN_STEP, np.nan, LOSS)


def _assert_series(table, name, steps, values, rtol=1e-12):
    s = table.series[name]
    np.testing.assert_array_equal(s.step, steps)
    np.testing.assert_allclose(s.value, values, rtol=rtol, equal_nan=True)


def test_ntjax_metric_logger_jsonl_and_csv(tmp_path):
    with MetricLogger(tmp_path, backends="jsonl,csv") as log:
        for s, loss, clean, lr in zip(STEPS, _loss_with_nan(), LOSS, LR):
            log.log(int(s), {"train/loss": loss, "train/lr": lr}, wall_time=1.7e9 + s)
            if s % 50 == 0:  # eval rows bring a new column mid-run (the CSV header widens)
                log.log(int(s), {"eval/loss": clean + 0.1}, wall_time=1.7e9 + s)
    (tmp_path / "config.json").write_text(json.dumps({"train": {"lr": 1e-3}}))
    run = read_run(tmp_path)
    assert run.format == "ntjax-jsonl" and run.meta["config"] == {"train": {"lr": 1e-3}}
    assert run.source == str(tmp_path)
    for table in (run, read_run(tmp_path / "metrics.jsonl"), read_run(tmp_path / "metrics.csv")):
        _assert_series(table, "train/loss", STEPS, _loss_with_nan())
        _assert_series(table, "train/lr", STEPS, LR)
        _assert_series(table, "eval/loss", STEPS[STEPS % 50 == 0], LOSS[STEPS % 50 == 0] + 0.1)
        np.testing.assert_allclose(table.series["train/loss"].time, 1.7e9 + STEPS)
        assert not table.problems
    assert read_run(tmp_path / "metrics.csv").format == "csv"


def test_tensorboardx_scalars_and_histograms(tmp_path):
    from tensorboardX import SummaryWriter
    with SummaryWriter(logdir=str(tmp_path)) as w:
        for s, loss, lr in zip(STEPS, _loss_with_nan(), LR):
            w.add_scalar("train/loss", loss, global_step=int(s), walltime=1.7e9 + s)
            w.add_scalar("train/learning_rate", lr, global_step=int(s))
            if s % 50 == 0:
                w.add_histogram("grads/w", np.linspace(-1, 1, 101) * (1 + s), global_step=int(s))
    table = read_run(tmp_path)
    assert table.format == "tensorboard"
    _assert_series(table, "train/loss", STEPS, _loss_with_nan().astype(np.float32))  # simple_value is f32
    _assert_series(table, "train/lr", STEPS, LR.astype(np.float32))
    hist = table.meta["histograms"]["grads/w"]
    np.testing.assert_array_equal(hist["step"], STEPS[STEPS % 50 == 0])
    np.testing.assert_allclose(hist["max"], 1 + STEPS[STEPS % 50 == 0])
    np.testing.assert_allclose(hist["mean"], 0, atol=1e-9)


def test_tensorboard_sliced_scalars_equal_the_protobuf_parse(tmp_path, monkeypatch):
    """The sliced fast path for one-scalar events gives exactly what the protobuf parser gives, on a file
    that mixes it with the shapes it must hand over: step 0 (no step field), steps of many varint bytes,
    a tag too long for one length byte, histograms and text."""
    from tensorboardX import SummaryWriter

    import ntjax.readers.tfevents as tfevents
    steps = [0, 1, 127, 128, 300, 70_000, 2**40]
    with SummaryWriter(logdir=str(tmp_path)) as w:
        for s in steps:
            w.add_scalar("train/loss", 1.5 + s % 7, global_step=s, walltime=1.7e9 + s)
            w.add_scalar("x" * 200, -float(s % 5), global_step=s)
            w.add_histogram("grads/w", np.arange(10.0), global_step=s)
            w.add_text("note", "hello", global_step=s)
    sliced = []
    real = tfevents.slice_scalars
    monkeypatch.setattr(tfevents, "slice_scalars", lambda *a: sliced.append(real(*a)) or sliced[-1])
    fast = read_run(tmp_path)
    assert sorted(sliced[0][1]) == ["train/loss", "x" * 200][:1]  # step 0 and the long tag were parsed
    assert len(sliced[0][1]["train/loss"][0]) == len(steps) - 1
    monkeypatch.setattr(tfevents, "slice_scalars", lambda buf, off, length: (np.zeros(len(off), bool), {}))
    slow = read_run(tmp_path)
    assert fast.names() == slow.names() and "train/loss" in fast.names()
    for name in fast.names():
        a, b = fast.series[name], slow.series[name]
        np.testing.assert_array_equal(a.step, b.step)
        np.testing.assert_array_equal(a.value, b.value)
        np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(fast.series["train/loss"].step, steps)


def test_tensorflow_tensor_valued_scalars(tmp_path):
    tf = pytest.importorskip("tensorflow")
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for s, loss in zip(STEPS, LOSS):
            tf.summary.scalar("train/loss", loss, step=int(s))
    writer.close()
    table = read_run(tmp_path)
    _assert_series(table, "train/loss", STEPS, LOSS.astype(np.float32))


def test_wandb_offline_run(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(dir=str(tmp_path), mode="offline", project="ntjax-test", config={"lr": 1e-3})
    for s, loss, lr in zip(STEPS, _loss_with_nan(), LR):
        run.log({"train/loss": float(loss), "lr": float(lr)}, step=int(s))
    run.log({"val_loss": 1.5}, step=int(STEPS[-1]))
    run.summary["best"] = 1.5
    run.finish()
    _wait_until_written(next((tmp_path / "wandb").glob("offline-run-*/*.wandb")))
    folders = [p for p in (tmp_path / "wandb").iterdir() if p.name.startswith("offline-run-")]
    assert len(folders) == 1
    for path in (folders[0], tmp_path / "wandb", tmp_path):
        table = read_run(path)
        assert table.format == "wandb"
        _assert_series(table, "train/loss", STEPS, _loss_with_nan())
        _assert_series(table, "train/lr", STEPS, LR)
        _assert_series(table, "eval/loss", STEPS[-1:], [1.5])
        assert table.meta["config"]["lr"] == 1e-3 and table.meta["summary"]["best"] == 1.5
        assert np.all(table.series["train/loss"].time > 1e9)


def _wait_until_written(path, quiet_s=1.0, limit_s=30.0):
    """wandb-core flushes the .wandb file after finish() returns: wait until its size settles."""
    start, size = time.time(), -1
    while time.time() - start < limit_s:
        new = path.stat().st_size
        if new == size:
            return
        size = new
        time.sleep(quiet_s)


def test_hf_trainer_state(tmp_path):
    transformers = pytest.importorskip("transformers")
    history = []
    for s, loss, lr in zip(STEPS[1:], LOSS[1:], LR[1:]):
        history.append({"epoch": s / 100, "grad_norm": 1.0 + s / 1000, "learning_rate": lr, "loss": loss,
                        "step": int(s)})
        if s % 50 == 0:
            history.append({"epoch": s / 100, "eval_loss": loss + 0.2, "eval_runtime": 1.0, "step": int(s)})
    history.append({"epoch": 2.0, "step": int(STEPS[-1]), "total_flos": 1e12, "train_loss": 2.2,
                    "train_runtime": 10.0})
    state = transformers.TrainerState(global_step=int(STEPS[-1]), log_history=history)
    (tmp_path / "checkpoint-100").mkdir()
    (tmp_path / "checkpoint-195").mkdir()
    transformers.TrainerState(log_history=history[:3]).save_to_json(str(tmp_path / "checkpoint-100/trainer_state.json"))
    state.save_to_json(str(tmp_path / "checkpoint-195" / "trainer_state.json"))
    table = read_run(tmp_path)  # the output dir: the latest checkpoint's state
    assert table.format == "hf-trainer-state"
    _assert_series(table, "train/loss", STEPS[1:], LOSS[1:])
    _assert_series(table, "train/lr", STEPS[1:], LR[1:])
    evals = STEPS[(STEPS % 50 == 0) & (STEPS > 0)]
    _assert_series(table, "eval/loss", evals, 4.0 * np.exp(-evals / 80.0) + 1.2)
    assert table.meta["summary"]["train_loss"] == 2.2


def test_lightning_csvlogger(tmp_path):
    loggers = pytest.importorskip("lightning.pytorch.loggers")
    logger = loggers.CSVLogger(str(tmp_path))
    for s, loss in zip(STEPS, LOSS):  # sparse rows: train every step, val at epoch ends
        logger.log_metrics({"train_loss": float(loss), "epoch": int(s // 50)}, step=int(s))
        if s % 50 == 45:
            logger.log_metrics({"val_loss": float(loss) + 0.3, "epoch": int(s // 50)}, step=int(s))
    logger.save()
    table = read_run(tmp_path)
    assert table.format == "lightning-csv"
    _assert_series(table, "train/loss", STEPS, LOSS)
    _assert_series(table, "eval/loss", STEPS[STEPS % 50 == 45], LOSS[STEPS % 50 == 45] + 0.3)
    assert "epoch" in table.series


def test_keras_csvlogger(tmp_path):
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.arange(4, dtype="float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    path = tmp_path / "training.log"
    hist = model.fit(x, y, epochs=5, validation_split=0.25, verbose=0, callbacks=[keras.callbacks.CSVLogger(str(path))])
    table = read_run(path)
    assert table.format == "keras-csv"
    _assert_series(table, "train/loss", np.arange(5), hist.history["loss"], rtol=1e-6)
    _assert_series(table, "eval/loss", np.arange(5), hist.history["val_loss"], rtol=1e-6)


def test_tsv_and_wandb_export_and_tensorboard_export(tmp_path):
    tsv = tmp_path / "log.tsv"
    tsv.write_text("iter\tloss\tval loss\n" + "".join(f"{s}\t{float(l)!r}\t\n" for s, l in zip(STEPS, LOSS)))
    _assert_series(read_run(tsv), "train/loss", STEPS, LOSS)
    export = tmp_path / "wandb_export.csv"
    export.write_text('"Step","run1 - train/loss","run1 - train/loss__MIN","run1 - train/loss__MAX"\n'
                      + "".join(f'"{s}","{float(l)!r}","{float(l)!r}","{float(l)!r}"\n' for s, l in zip(STEPS, LOSS)))
    table = read_run(export)
    assert table.format == "wandb" and table.names() == ["train/loss"]
    _assert_series(table, "train/loss", STEPS, LOSS)
    tb = tmp_path / "run-.-tag-train_loss.csv"
    tb.write_text("Wall time,Step,Value\n" + "".join(f"{1.7e9 + s},{s},{float(l)!r}\n" for s, l in zip(STEPS, LOSS)))
    _assert_series(read_run(tb), "train/loss", STEPS, LOSS)


@pytest.mark.parametrize("fmt,expect", [
    # nanoGPT train.py
    ("iter {s}: loss {loss:.4f}, time 123.45ms, mfu 12.34%", {"train/loss": 4}),
    ("step {s}: train loss {loss:.4f}, val loss {val:.4f}", {"train/loss": 4, "eval/loss": 4}),
    # llm.c train_gpt2.cu console
    ("step {s:4d}/200 | train loss {loss:.6f} | norm 1.2345 | lr {lr:.2e} | 123.45 ms | 45.0% bf16 MFU | 4500 tok/s",
     {"train/loss": 6, "train/lr": 2, "train/grad_norm": 4, "train/tokens_per_s": 0}),
    # llm.c main.log and modded-nanogpt
    ("s:{s} trl:{loss:.6f}", {"train/loss": 6}),
    ("step:{s}/200 train_loss:{loss:.4f} train_time:{ms}ms step_avg:nanms", {"train/loss": 4}),
    ("step {s} | loss {loss:.4f} | lr {lr:.3e}", {"train/loss": 4, "train/lr": 3}),
    ("2024-01-01 12:00:00 INFO epoch=1 global_step={s} loss={loss:.5f} learning_rate={lr:.3e}",
     {"train/loss": 5, "train/lr": 3}),
    ("Epoch 1 | Step {s} | Loss: {loss:.4f} | Val Loss: {val:.4f}", {"train/loss": 4, "eval/loss": 4}),
])
def test_text_log_styles(tmp_path, fmt, expect):
    lines = ["banner: model with 124M params, seed 1337"]
    lines += [fmt.format(s=int(s), loss=l, val=l + 0.1, lr=r, ms=int(s) * 100) for s, l, r in zip(STEPS, LOSS, LR)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    table = read_run(path)
    assert table.format == "text"
    truth = {"train/loss": LOSS, "eval/loss": LOSS + 0.1, "train/lr": LR, "train/grad_norm": np.full(STEPS.shape, 1.2345),
             "train/tokens_per_s": np.full(STEPS.shape, 4500.0)}
    for name, digits in expect.items():
        s = table.series[name]
        np.testing.assert_array_equal(s.step, STEPS)
        tol = 0.6 * 10.0 ** -digits if name != "train/lr" else 0.006
        np.testing.assert_allclose(s.value, truth[name], atol=tol if name != "train/lr" else 0, rtol=tol if name == "train/lr" else 0)


def test_llmc_val_lines_take_the_last_step(tmp_path):
    path = tmp_path / "llmc.log"
    path.write_text("val loss 4.500000\nstep    1/10 | train loss 4.400000 | norm 2.0 | lr 1.00e-04\n"
                    "step    2/10 | train loss 4.300000 | norm 2.0 | lr 1.00e-04\nval loss 4.200000\n")
    table = read_run(path)
    _assert_series(table, "train/loss", [1, 2], [4.4, 4.3])
    _assert_series(table, "eval/loss", [2], [4.2])  # the val line before any step is not a point
    assert table.meta["total_steps"] == 10


def test_folder_of_several_runs_reads_the_latest(tmp_path):
    for i, name in enumerate(["a", "b", "c"]):
        with MetricLogger(tmp_path / name) as log:
            log.log(1, {"train/loss": float(i)})
        os.utime(tmp_path / name / "metrics.jsonl", (1e9 + i, 1e9 + i))
    os.utime(tmp_path / "b" / "metrics.jsonl", (2e9, 2e9))
    table = read_run(tmp_path)
    assert table.meta["run_name"] == "b" and table.series["train/loss"].value[0] == 1.0
    assert "holds 3 runs" in table.problems[-1]
    assert [t.meta["run_name"] for t in read_runs(tmp_path)] == ["a", "b", "c"]
    assert math.isclose(read_runs(tmp_path)[2].series["train/loss"].value[0], 2.0)
