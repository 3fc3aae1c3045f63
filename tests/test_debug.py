"""`ntjax debug`: symptoms, evidence checks and ranking on real fixture logs and generated runs; the
end-to-end test trains for real with a far too high and a far too low LR."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import curvegen as cg
from ntjax.cli import main
from ntjax.diagnostics.detectors import analyse
from ntjax.diagnostics.hypotheses import config_evidence, parse_symptoms, rank
from ntjax.readers import read_run
from ntjax.diagnostics.runtable import make_series

LOGS = Path(__file__).parent / "fixtures" / "logs"
CAUSES = {"lr_too_high", "lr_too_low", "insufficient_warmup", "gradient_explosion", "vanishing_gradients",
          "numerical_precision", "overfitting", "underfitting", "data_pipeline", "batch_size", "weight_decay",
          "attention_logit_growth", "output_logit_divergence", "initialization"}


def _rank(table, symptom=None):
    return rank(table, analyse(table), parse_symptoms(symptom), table.source)


def test_parse_symptoms():
    assert parse_symptoms("loss stuck at 2.3") == {"plateau"}
    assert parse_symptoms("NaN after 2k steps") == {"nan"}
    assert parse_symptoms("val loss goes up, overfitting?") >= {"overfitting"}
    assert parse_symptoms("training is slow and spiky") == {"slow", "spiky"}
    assert parse_symptoms(None) == set()


def test_config_evidence_from_torch_bridge_shape():
    cfg = {"framework": "pytorch", "model": {"class": "Net", "n_params": 1234},
           "optimizer": {"class": "AdamW", "param_groups": [{"lr": 0.001, "weight_decay": 5.0}]}}
    ev = config_evidence(cfg)
    assert ev["lr"] == 0.001 and ev["weight_decay"] == 5.0 and ev["n_params"] == 1234 and ev["optimizer"] == "AdamW"


def test_braj_log_ranks_lr_too_high_first():
    hyps = _rank(read_run(LOGS / "hf_trainer_state" / "whisper-small-braj_trainer_state.json"))
    assert hyps[0].cause == "lr_too_high" and hyps[0].confidence > 0.7
    assert any("0.00298" in e for e in hyps[0].evidence)
    assert hyps[0].next.startswith("ntjax sweep --param lr=log:")


def test_whisper_japanese_ranks_overfitting_first():
    hyps = _rank(read_run(LOGS / "hf_trainer_state" / "whisper-large-v2-japanese_trainer_state.json"),
                 "val loss goes up")
    assert hyps[0].cause == "overfitting"


def test_healthy_run_has_no_hypothesis():
    assert _rank(read_run(LOGS / "llmc_text" / "mng_2024-06-06_AdamW_f66d43d7.log")) == []


def test_weight_decay_plateau_from_config():
    tab = cg.table(cg.inject("plateau", cg.run("power_law", 0, 0.03), 1500))
    tab.meta["config"] = {"optimizer": {"class": "AdamW", "param_groups": [{"lr": 3e-4, "weight_decay": 5.0}]}}
    hyps = _rank(tab, "loss stuck")
    assert hyps[0].cause == "weight_decay" and "5" in hyps[0].evidence[0]


def test_gradient_checks_vanishing_layers_exploding_norm_and_attention_logits():
    tab = cg.table(cg.run("power_law", 0, 0.03))
    steps = np.arange(0, cg.N_STEPS, 10)
    for i in range(6):
        tab.add(make_series(f"grad_norm/h.{i}.mlp", steps, np.full(steps.size, 1e-7 if i == 0 else 0.1)))
    tab.add(make_series("train/grad_norm", steps, np.exp(steps / 1000)))
    tab.add(make_series("attn_max_logit/h.3", steps, 5 * np.exp(steps / 1000)))  # 5 -> 740, still climbing
    causes = {h.cause: h for h in _rank(tab)}
    assert "h.0.mlp" in causes["vanishing_gradients"].evidence[0]
    assert "gradient_explosion" in causes and "attention_logit_growth" in causes
    assert set(causes) <= CAUSES


def test_sharp_but_settled_attention_is_not_logit_growth():
    # The default preset's real pattern: max attention logit 0 -> ~55 early, then flat (sharp attention
    # to the previous byte), which is healthy.
    tab = cg.table(cg.run("power_law", 0, 0.03))
    steps = np.arange(0, cg.N_STEPS, 10)
    tab.add(make_series("attn_max_logit/blocks.0", steps, 55 * (1 - np.exp(-steps / 300))))
    assert "attention_logit_growth" not in {h.cause for h in _rank(tab)}


def test_debug_json_contract(tmp_path, capsys):
    path = tmp_path / "braj.json"
    shutil.copy(LOGS / "hf_trainer_state" / "whisper-small-braj_trainer_state.json", path)
    assert main(["debug", str(path), "--json", "--symptom", "loss goes up"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["symptoms"] == ["diverging"]
    h = d["hypotheses"][0]
    assert set(h) == {"cause", "confidence", "evidence", "fix", "next"} and h["cause"] in CAUSES
    assert isinstance(h["evidence"], list) and h["next"].startswith("ntjax ")
    assert main(["debug", str(path), "--fix"]) == 2  # not an ntjax run folder: one clear line
    assert "config.json" in capsys.readouterr().err


def _train(tmp_path, name, lr):
    out = tmp_path / name
    assert main(["train", "--preset", "tiny", "--steps", "40", "--lr", str(lr), "--out", str(out), "--yes",
                 "--no-progress", "--json"]) == 0
    return out


@pytest.mark.slow
def test_end_to_end_far_too_high_and_far_too_low_lr(tmp_path, capsys):
    high, low = _train(tmp_path, "high", 1.0), _train(tmp_path, "low", 1e-6)
    capsys.readouterr()
    for run, cause in ((high, "lr_too_high"), (low, "lr_too_low")):
        assert main(["debug", str(run), "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        top = d["hypotheses"][0]
        assert top["cause"] == cause, d["hypotheses"]
        assert any("config lr" in e for e in top["evidence"]) and top["next"].startswith("ntjax train")
    assert main(["debug", str(low), "--fix", "--json"]) == 0
    fix = json.loads(capsys.readouterr().out)["fix_result"]
    assert fix["improved"] and fix["applied"]["lr"] > 1e-4
    assert fix["compare"]["train/loss"]["after"] < fix["compare"]["train/loss"]["before"] - 0.5
