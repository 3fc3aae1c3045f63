"""`ntjax debug`: symptoms, evidence checks and ranking on real fixture logs and generated runs; the
end-to-end test trains for real with a far too high and a far too low LR."""
import json
import shutil
from pathlib import Path

import curvegen as cg
import numpy as np
import pytest

from ntjax.cli import main
from ntjax.commands.debug import render_next
from ntjax.diagnostics.detectors import analyse
from ntjax.diagnostics.hypotheses import config_evidence, diagnose, parse_symptoms, rank
from ntjax.diagnostics.runtable import make_series
from ntjax.readers import read_run

LOGS = Path(__file__).parent / "fixtures" / "logs"
CAUSES = {"lr_too_high", "lr_too_low", "insufficient_warmup", "gradient_explosion", "vanishing_gradients",
          "numerical_precision", "overfitting", "underfitting", "data_pipeline", "batch_size", "weight_decay",
          "attention_logit_growth", "output_logit_divergence", "initialization", "lr_schedule", "label_noise"}
BENCH_RUNS = Path(__file__).resolve().parents[1] / "benchmarks/diagnosis/runs"


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
    step = hyps[0].next_step  # analysis returns data; the CLI renders it
    assert step["command"] == "sweep" and step["args"]["param"][0]["name"] == "lr"
    assert render_next(step).startswith("ntjax sweep --param lr=log:")


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
    assert hyps[0].cause == "weight_decay" and "weight_decay 5" in hyps[0].evidence[0]


def test_gradient_checks_vanishing_layers_exploding_norm_and_attention_logits():
    tab = cg.table(cg.run("power_law", 0, 0.03))
    steps = np.arange(0, cg.N_STEPS, 10)
    for i in range(6):
        tab.add(make_series(f"grad_norm/h.{i}.mlp", steps, np.full(steps.size, 1e-7 if i == 0 else 0.1)))
    tab.add(make_series("train/grad_norm", steps, np.exp(steps / 1000)))
    tab.add(make_series("attn_max_logit/h.3", steps, 5 * np.exp(steps / 1000)))  # 5 -> 740, still climbing
    d = diagnose(tab, analyse(tab), set(), tab.source)
    causes = {h.cause: h for h in d.hypotheses}
    assert any("h.0.mlp" in e for e in causes["vanishing_gradients"].evidence)
    # every check read its evidence; the calibrated ranking then shares the confidence among the causes
    signals = {s.name: s for s in d.signals}
    assert "(x54)" in signals["grad_norm_growth"].evidence and "attn_max_logit/h.3" in signals["attn_logit_growth"].evidence
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
    assert set(h) >= {"cause", "confidence", "evidence", "fix", "next"} and h["cause"] in CAUSES
    assert isinstance(h["evidence"], list) and h["next"].startswith("ntjax ")
    # every point of confidence is a listed contribution: the prior plus the signals sum to the log-odds
    assert h["contributions"][0]["signal"] == "prior"
    assert abs(sum(c["log_odds"] for c in h["contributions"]) - h["log_odds"]) < 0.05 * len(h["contributions"])
    assert "summary" in d["context"] and isinstance(d["insufficient"], list)
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
    # the re-runs keep the original 40-step schedule and are compared at the same step, beyond the noise
    assert fix["schedule_steps"] == 40 and fix["step"] == 40 and fix["seeds"] == 2
    c = fix["compare"]["train/loss"]
    assert len(c["after_per_seed"]) == 2 and c["noise"] >= c["seed_noise"] >= 0
    assert c["after"] < c["before"] - max(0.5, 2 * c["noise"])
    for out in fix["outs"]:
        assert json.loads((Path(out) / "config.json").read_text())["train"]["steps"] == 40


@pytest.mark.slow
def test_issue_lr_3_no_warmup_ranks_lr_too_high_with_high_confidence(tmp_path, capsys):
    # The issue's case (default preset, 120 steps, lr 3.0, no warmup) on the tiny preset: the same divergence.
    out = tmp_path / "lr3"
    assert main(["train", "--preset", "tiny", "--steps", "60", "--lr", "3.0", "--warmup", "0", "--eval-every",
                 "20", "--out", str(out), "--yes", "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["debug", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    top = d["hypotheses"][0]
    assert top["cause"] == "lr_too_high" and top["confidence"] >= 0.8, d["hypotheses"]
    assert "tie" not in d or "lr_too_high" not in d["tie"]
    assert any("divergence" in e for e in top["evidence"]) and any("config lr 3" in e for e in top["evidence"])
    assert all(h["cause"] != "vanishing_gradients" for h in d["hypotheses"])


def test_next_steps_are_data_the_cli_renders():
    step = {"command": "train", "args": {"preset": "tiny", "lr": 0.0003, "warmup": 100, "qk_norm": True,
                                         "out": "runs/a_fix", "yes": True}}
    assert render_next(step) == "ntjax train --preset tiny --lr 0.0003 --warmup 100 --qk-norm --out runs/a_fix --yes"
    sweep = {"command": "sweep", "args": {"param": [{"name": "batch_size", "kind": "choice", "values": [16, 32]}],
                                          "steps": 200, "out": "sweeps/bs"}}
    assert render_next(sweep) == "ntjax sweep --param batch_size=choice:16,32 --steps 200 --out sweeps/bs"
    assert render_next({"command": "curves", "path": "runs/x", "args": {}}) == "ntjax curves runs/x"


def test_absurd_weight_decay_counts_without_a_bad_curve():
    # A real PyTorch CNN at AdamW weight decay 40 (lr 2e-3: 8% shrink per step, 16 e-folds over 200 steps)
    # stalls so smoothly that no curve finding is a warning; the config alone must still name the cause.
    hyps = _rank(read_run(BENCH_RUNS / "torch_cnn_adamw_wd_extreme_r7_dev_s61"), "progress stops after a few steps")
    assert hyps[0].cause == "weight_decay" and "weight_decay 40" in hyps[0].evidence[0]



def test_stall_right_after_a_start_without_warmup_is_the_warmup():
    # Real post-LN PyTorch transformer, AdamW 1.2e-2 (4x the size rule) and no warmup: the loss falls onto the
    # byte unigram level by step 30 and stays there. The same LR with warmup trains: the warmup is the fix.
    hyps = _rank(read_run(BENCH_RUNS / "torch_transformer_postln_nowarmup_r7"), "it blows up right away and then sits there")
    assert hyps[0].cause == "insufficient_warmup" and any("no warmup with AdamW" in e for e in hyps[0].evidence)
    lr_high = [h for h in hyps if h.cause == "lr_too_high"]  # explained away: listed with the reason, or not at all
    assert all(any(e.startswith("against: no warmup") for e in h.evidence) for h in lr_high)


def test_usual_weight_decay_at_an_absurd_lr_is_the_lr():
    # ntjax tiny preset at lr 1.0 (weight decay 0.1, the usual AdamW value): lr * wd = 0.1 per step is the LR's
    # doing, not weight decay's.
    hyps = _rank(read_run(BENCH_RUNS / "ntjax_tiny_lr_high_s7_r7"), "the loss went up fast")
    assert hyps[0].cause == "lr_too_high"
    assert not any("weight_decay" in e for h in hyps for e in h.evidence)


def test_worsening_eval_loss_in_the_users_words_is_overfitting():
    for text in ("eval loss is getting worse", "val loss went up", "test error climbs after epoch 3",
                 "validation loss rises after a while"):
        assert "overfitting" in parse_symptoms(text), text
    assert "overfitting" not in parse_symptoms("the loss went up fast")
