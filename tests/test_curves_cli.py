"""`ntjax curves` end to end through the CLI entry point, on copies of the real fixture logs."""
import json
import shutil
from pathlib import Path

import pytest

from ntjax.cli import main

LOGS = Path(__file__).parent / "fixtures" / "logs"
CONTRACT_FINDING = {"kind", "metric", "start_step", "end_step", "severity", "confidence", "evidence", "recommendation"}


@pytest.fixture
def logs(tmp_path):
    shutil.copytree(LOGS, tmp_path / "logs")
    return tmp_path / "logs"


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


def test_json_contract_and_png(logs, capsys):
    path = logs / "hf_trainer_state" / "whisper-small-braj_trainer_state.json"
    d = _json(capsys, ["curves", str(path), "--json"])
    assert {"source", "format", "metrics", "findings", "verdict", "plots"} <= set(d)
    assert d["format"] == "hf-trainer-state"
    m = d["metrics"]["train/loss"]
    assert {"points", "first", "last", "min", "min_step"} <= set(m) and m["min"] == pytest.approx(1.2366)
    assert all(CONTRACT_FINDING <= set(f) for f in d["findings"])
    assert d["findings"][0]["kind"] == "divergence" and d["findings"][0]["severity"] == "critical"
    (png,) = d["plots"]
    # A foreign log is the user's data: the PNG goes to a private per-user folder, never next to it.
    from ntjax.core.safefile import private_dir
    assert png.startswith(str(private_dir("plots")))
    assert Path(png).name.startswith("whisper-small-braj_trainer_state-")
    assert not (logs / "hf_trainer_state" / "plots").exists()
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_paths_and_out_dir(logs, capsys, tmp_path):
    a, b = logs / "llmc_text", logs / "tfevents" / "unet_wd_1e_4"
    d = _json(capsys, ["curves", str(a / "mng_2024-06-06_AdamW_f66d43d7.log"), str(b), "--json",
                       "--out", str(tmp_path / "pngs")])
    assert len(d["runs"]) == 2 and d["source"] == d["runs"][0]["source"]
    assert d["runs"][1]["format"] == "tensorboard"
    assert all(Path(r["plots"][0]).parent == tmp_path / "pngs" and Path(r["plots"][0]).exists() for r in d["runs"])


def test_baseline(logs, capsys):
    run = logs / "modded_nanogpt_text" / "mng_2024-10-29_Optimizers_Muon_8d6193f4.txt"
    base = logs / "modded_nanogpt_text" / "mng_2024-10-29_Optimizers_Adam_95a9fd44.txt"
    d = _json(capsys, ["curves", str(run), "--baseline", str(base), "--json", "--no-plot"])
    (ev,) = [c for c in d["baseline"] if c["metric"] == "eval/loss"]
    assert ev["step"] == 5100 and ev["ahead"] == "run"  # Muon 3.2760 vs Adam 3.3406 (PROVENANCE)
    assert ev["run"] == pytest.approx(3.276, abs=0.01) and ev["baseline"] == pytest.approx(3.3406, abs=0.01)
    assert ev["run_reaches_baseline_at"] < 5100


def test_human_output_has_plain_terminal_plot(logs, capsys):
    assert main(["curves", str(logs / "keras_csv" / "Car-Prediction-CNN-Model_training.log")]) == 0
    out = capsys.readouterr().out
    assert "VERDICT (!): needs attention: overfitting" in out and "recommendations:" in out
    assert "\x1b[" not in out and "┤" in out  # plotext axes, no colour codes when not a terminal
    assert main(["curves", str(logs / "keras_csv" / "Car-Prediction-CNN-Model_training.log"), "--no-plot"]) == 0
    assert "┤" not in capsys.readouterr().out


def test_run_folder_gets_its_own_plots(tmp_path, capsys):
    from ntjax.core.logger import MetricLogger
    run = tmp_path / "run"
    with MetricLogger(run) as log:
        for step in range(1, 201):
            log.log(step, {"train/loss": 5.0 / step ** 0.3, "train/lr": 1e-3})
    d = _json(capsys, ["curves", str(run), "--json"])
    assert d["plots"] == [str(run / "plots" / "curves.png")] and (run / "plots" / "curves.png").exists()


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["curves", str(tmp_path / "missing.log")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file" in err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    assert main(["curves", str(junk), "--json"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
