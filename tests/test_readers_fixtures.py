"""Every real log in tests/fixtures/logs parses and shows what its PROVENANCE.md says it shows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ntjax.readers import FORMATS, read_run, read_runs

LOGS = Path(__file__).parent / "fixtures" / "logs"


def at(series, step):
    """The value a series holds at `step`."""
    hit = np.flatnonzero(series.step == step)
    assert hit.size, f"{series.name} has no point at step {step}"
    return float(series.value[hit[0]])


def best(series):
    i = int(np.nanargmin(series.value))
    return int(series.step[i]), float(series.value[i])


def window_mean(series, lo, hi):
    keep = (series.step >= lo) & (series.step < hi)
    return float(series.value[keep].mean())


def test_every_fixture_parses_with_a_known_format():
    runs = read_runs(LOGS)
    assert len(runs) == 14
    for table in runs:
        assert table.format in FORMATS
        assert table.series and not table.problems, (table.source, table.problems)
        assert "train/loss" in table.series or "eval/loss" in table.series, table.source


def test_hf_tinyllama_saturating_sft():
    t = read_run(LOGS / "hf_trainer_state/tinyLlama-finetune_trainer_state.json")
    assert t.format == "hf-trainer-state"
    ev = t.series["eval/loss"]
    assert at(ev, 200) == pytest.approx(1.6223, abs=1e-4)
    assert at(ev, 1000) == pytest.approx(1.2507, abs=1e-4)
    assert at(ev, 2800) == pytest.approx(1.1219, abs=1e-4)
    assert np.all(np.diff(ev.value) < 0)  # falls monotonically
    assert at(ev, 2800) - at(ev, 2200) > -0.005  # the last 600 steps gain only ~0.004
    tr = t.series["train/loss"]
    assert tr.value[0] == pytest.approx(2.076, abs=1e-3) and tr.value[-1] == pytest.approx(1.025, abs=1e-3)
    assert tr.original == "loss" and ev.original == "eval_loss"
    acc = t.series["eval/mean_token_accuracy"]
    assert acc.value[0] == pytest.approx(0.657, abs=1e-3) and acc.value[-1] == pytest.approx(0.751, abs=1e-3)
    gn = t.series["train/grad_norm"].value
    assert 0.9 < gn.min() and gn.max() < 2.8
    assert t.series["train/lr"].value.max() == pytest.approx(1e-5, rel=0.05)
    assert t.meta["trainer_state"]["best_metric"] == pytest.approx(1.1219, abs=1e-4)


def test_hf_whisper_japanese_eval_loss_overfits():
    t = read_run(LOGS / "hf_trainer_state/whisper-large-v2-japanese_trainer_state.json")
    ev = t.series["eval/loss"]
    assert list(ev.step) == [1000, 2000, 3000, 4000, 5000]
    assert best(ev) == (1000, pytest.approx(0.3210, abs=1e-4))
    assert np.all(np.diff(ev.value) > 0) and ev.value[-1] == pytest.approx(0.4200, abs=1e-4)
    tr = t.series["train/loss"]
    assert tr.value[0] == pytest.approx(0.305, abs=1e-3) and tr.value[-1] == pytest.approx(0.0002, abs=1e-4)
    wer = t.series["eval/wer"]
    assert best(wer) == (3000, pytest.approx(0.7432, abs=1e-4))
    # the closing summary row (average train loss) must not become the last point of the curve
    assert "train_runtime" in t.meta["summary"] and tr.value[-1] < 0.01


def test_hf_whisper_braj_loss_rises_with_lr():
    t = read_run(LOGS / "hf_trainer_state/whisper-small-braj_trainer_state.json")
    tr, lr = t.series["train/loss"], t.series["train/lr"]
    assert at(tr, 500) == pytest.approx(1.2366) and at(tr, 1000) == pytest.approx(2.028, abs=1e-3)
    assert at(tr, 1500) == pytest.approx(2.157, abs=1e-3) and at(tr, 2500) == pytest.approx(1.787, abs=1e-3)
    assert lr.value.max() == pytest.approx(2.98e-3, rel=0.01) and lr.step[np.argmax(lr.value)] == 1000
    ev = t.series["eval/loss"]
    assert best(ev)[1] == pytest.approx(2.5529, abs=1e-4) and ev.step[0] == 132
    assert ev.value.max() == pytest.approx(4.4566, abs=1e-4) and ev.value[-1] == pytest.approx(3.4234, abs=1e-4)
    gn = t.series["train/grad_norm"].value
    assert gn.min() == pytest.approx(5.7, abs=0.1) and gn.max() == pytest.approx(14.1, abs=0.1)


def test_keras_csvlogger_overfitting_plateau():
    t = read_run(LOGS / "keras_csv/Car-Prediction-CNN-Model_training.log")
    assert t.format == "keras-csv"
    tr, ev = t.series["train/loss"], t.series["eval/loss"]
    assert list(tr.step) == list(range(100))
    assert tr.value[0] == pytest.approx(1.7801, abs=1e-4) and tr.value[-1] == pytest.approx(0.3073, abs=1e-4)
    assert best(ev) == (42, pytest.approx(0.7170, abs=1e-4))
    assert at(ev, 60) == pytest.approx(0.9199, abs=1e-4) and ev.value[-1] == pytest.approx(0.7466, abs=1e-4)
    assert window_mean(tr, 50, 100) == pytest.approx(0.331, abs=1e-3)
    assert t.series["train/accuracy"].value[-1] == pytest.approx(0.889, abs=1e-3)
    assert t.series["eval/accuracy"].value.max() == pytest.approx(0.7621, abs=1e-4)


def test_lightning_slm_slow_but_healthy():
    t = read_run(LOGS / "lightning_csv/slm_training_d4575f9_version_0_metrics.csv")
    assert t.format == "lightning-csv"
    ev = t.series["eval/loss"]
    assert len(ev) == 20 and np.all(np.diff(ev.value) < 0)
    assert ev.value[0] == pytest.approx(6.8337, abs=1e-4) and ev.value[-1] == pytest.approx(5.5522, abs=1e-4)
    ep = t.series["train/loss_epoch"]
    assert ep.value[0] == pytest.approx(7.640, abs=1e-3) and ep.value[-1] == pytest.approx(5.182, abs=1e-3)
    assert t.series["train/loss"].original == "train_loss_step" and len(t.series["train/loss"]) == 114


def test_lightning_cv_converged_and_test_row_kept_apart():
    t = read_run(LOGS / "lightning_csv/cv-image-classification_version_0_metrics.csv")
    ev = t.series["eval/loss"]
    assert ev.original == "val_loss"
    assert list(np.round(ev.value[:5], 4)) == [0.0711, 0.0459, 0.0443, 0.0467, 0.0392]
    assert at(ev, 8595) == pytest.approx(0.0142, abs=1e-4)
    assert at(t.series["test_loss"], 8595) == pytest.approx(0.0322, abs=1e-4)
    tr = t.series["train/loss"].value
    assert tr.min() < 0.001 and tr.max() == pytest.approx(0.635, abs=1e-3)
    acc = t.series["eval/accuracy"]
    assert acc.value[0] == pytest.approx(0.9762, abs=1e-4) and at(acc, 8594) == pytest.approx(0.9868, abs=1e-4)


def test_lightning_lstm_val_rises_every_epoch_with_resumed_duplicates():
    t = read_run(LOGS / "lightning_csv/lstm-yandex-stocks_version_0_metrics.csv")
    ev = t.series["eval/loss"]
    assert list(ev.step) == [5, 11, 17, 23]  # the repeated rows collapse: last write wins
    assert np.all(np.diff(ev.value) > 0) and ev.value[-1] / ev.value[0] == pytest.approx(10.8, abs=0.1)
    assert "train/loss" not in t.series


def test_llmc_log():
    t = read_run(LOGS / "llmc_text/mng_2024-06-06_AdamW_f66d43d7.log")
    assert t.format == "text"
    ev, tr = t.series["eval/loss"], t.series["train/loss"]
    assert (ev.original, tr.original) == ("tel", "trl")
    assert at(ev, 0) == pytest.approx(10.9689, abs=1e-4) and at(ev, 2432) == pytest.approx(3.6231, abs=1e-4)
    assert best(ev) == (9536, pytest.approx(3.2760, abs=1e-4))
    assert tr.step[0] == 0 and tr.step[-1] == 9535 and len(tr) == 9536
    assert tr.value[-100:].mean() == pytest.approx(3.296, abs=1e-3)


@pytest.mark.parametrize("name,first,final,steps", [
    ("mng_2024-10-29_Optimizers_Muon_8d6193f4.txt", 16.0104, 3.2760, 5100),
    ("mng_2024-10-29_Optimizers_Adam_95a9fd44.txt", 15.9936, 3.3406, 5100),
    ("mng_2024-11-24_WindowWarmup_3151f69a.txt", 10.8258, 3.2745, 1750),
])
def test_modded_nanogpt_logs(name, first, final, steps):
    t = read_run(LOGS / "modded_nanogpt_text" / name)
    ev, tr = t.series["eval/loss"], t.series["train/loss"]
    assert at(ev, 0) == pytest.approx(first, abs=1e-4)
    assert best(ev) == (steps, pytest.approx(final, abs=1e-4))
    assert tr.step[0] == 1 and tr.step[-1] == steps
    assert t.meta["total_steps"] == steps and t.meta["units"]["train_time"] == "ms"
    if "Muon" in name:
        assert at(tr, 947) == pytest.approx(5.23, abs=0.01) and at(tr, 948) < 4.0  # one-step spike
        assert np.all(np.diff(ev.value) <= 0)  # val never rises


def test_tensorboard_t5_two_files_merge_into_one_run():
    t = read_run(LOGS / "tfevents/t5-summarization-demo")
    assert t.format == "tensorboard" and len(t.meta["files"]) == 2
    tr = t.series["train/loss"]
    assert len(tr) == 430 and tr.step[0] == 500 and tr.step[-1] == 215000
    assert tr.value[0] == pytest.approx(1.9963, abs=1e-4) and tr.value[-1] == pytest.approx(1.7423, abs=1e-4)
    assert tr.value.min() == pytest.approx(1.734, abs=1e-3)
    lr = t.series["train/lr"]
    assert lr.original == "train/learning_rate" and lr.value[0] == pytest.approx(4.99e-5, rel=1e-3)
    gn = t.series["train/grad_norm"]
    assert at(gn, 190000) == pytest.approx(35.59, abs=0.01) and at(gn, 164000) == pytest.approx(13.17, abs=0.01)
    assert np.median(gn.value) == pytest.approx(2.4, abs=0.2)
    assert at(t.series["eval/loss"], 215337) == pytest.approx(1.6339, abs=1e-4)
    assert at(t.series["eval/rouge1"], 215337) == pytest.approx(41.63, abs=0.01)
    assert "output_dir" in t.meta["text"]["args/text_summary"]
    assert np.all(tr.time > 1.7e9)


def test_tensorboard_unet_per_epoch_scalars():
    t = read_run(LOGS / "tfevents/unet_wd_1e_4/events.out.tfevents.1738277380.wn44.22511.0")
    ev, tr = t.series["eval/loss"], t.series["train/loss"]
    assert (ev.original, tr.original) == ("Test loss (avg on test)", "Training loss")
    assert len(ev) == 50 and ev.value[0] == pytest.approx(0.2964, abs=1e-4)
    assert ev.value[-1] == pytest.approx(0.0863, abs=1e-4) and ev.value.min() == pytest.approx(0.0861, abs=1e-4)
    assert tr.value[0] == pytest.approx(0.367, abs=1e-3) and tr.value[-1] == pytest.approx(0.0667, abs=1e-4)
    iou = t.series["eval/iou"]
    assert iou.value[0] == pytest.approx(0.553, abs=1e-3) and iou.value[-1] == pytest.approx(0.847, abs=1e-3)


def test_tensorboard_folder_of_two_runs():
    tables = read_runs(LOGS / "tfevents")
    assert sorted(t.meta["run_name"] for t in tables) == ["t5-summarization-demo", "unet_wd_1e_4"]
    one = read_run(LOGS / "tfevents")
    assert sorted(one.meta["runs"]) == ["t5-summarization-demo", "unet_wd_1e_4"]
    assert "holds 2 runs" in one.problems[-1]


def test_wandb_history_and_summary():
    t = read_run(LOGS / "wandb/tinylm_run-kj3gdsjx")
    assert t.format == "wandb"
    tr, lr = t.series["train/loss"], t.series["train/lr"]
    assert len(tr) == 2144 and tr.step[0] == 0 and tr.step[-1] == 107123
    assert tr.value[0] == pytest.approx(8.948, abs=1e-3) and tr.value[-1] == pytest.approx(3.6434, abs=1e-4)
    means = [window_mean(tr, lo, lo + 7500) for lo in range(0, 112500, 7500)]
    assert means[0] == pytest.approx(6.40, abs=0.01) and means[-1] == pytest.approx(3.40, abs=0.01)
    assert lr.value.max() == pytest.approx(5e-4) and 15000 < lr.step[np.argmax(lr.value)] < 17000
    ev = t.series["eval/loss"]
    assert ev.original == "val/loss" and at(ev, 107124) == pytest.approx(3.7382, abs=1e-4)
    assert at(t.series["eval/ppl"], 107124) == pytest.approx(42.02, abs=0.01)
    assert t.meta["summary"]["val/loss"] == pytest.approx(3.7382, abs=1e-4)
    assert "_runtime" not in t.series and np.all(tr.time > 1.7e9)


@pytest.mark.parametrize("raw,name", [
    ("Test loss (avg on test)", "eval/loss"), ("IoU (avg on test)", "eval/iou"), ("Training loss", "train/loss"),
    ("train_loss_step", "train/loss"), ("train_loss_epoch", "train/loss_epoch"), ("trl", "train/loss"),
    ("tel", "eval/loss"), ("val/loss", "eval/loss"), ("train/learning_rate", "train/lr"), ("norm", "train/grad_norm"),
])
def test_names_found_in_real_logs_normalise(raw, name):
    from ntjax.diagnostics.runtable import normalise_name
    assert normalise_name(raw) == name
