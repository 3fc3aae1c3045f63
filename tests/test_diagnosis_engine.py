"""The diagnosis engine: context read before rules, context findings (trivial_solution, resume_regression),
log-odds traceable to evidence, ties said aloud, "insufficient evidence" instead of guessing, and
calibration sanity on generated runs with known causes."""
import copy
import math

import curvegen as cg
import numpy as np
import pytest

from ntjax.diagnostics.context import optimizer_family, read_context
from ntjax.diagnostics.detectors import analyse
from ntjax.diagnostics.hypotheses import diagnose, load_weights, probabilities, scores
from ntjax.diagnostics.runtable import RunTable, make_series

LSTM_SGD = {"framework": "pytorch",
            "model": {"class": "RNNModel", "parameters": 6_000_000,
                      "modules": [{"name": "encoder", "class": "Embedding", "parameters": 3_000_000},
                                  {"name": "rnn", "class": "LSTM", "parameters": 2_000_000},
                                  {"name": "decoder", "class": "Linear", "parameters": 1_000_000}]},
            "optimizer": {"class": "SGD", "param_groups": [{"lr": 20, "momentum": 0, "weight_decay": 0}]},
            "clip_norm": 0.25}
CNN_SGD = {"framework": "pytorch",
           "model": {"class": "ResNet", "parameters": 270_000,
                     "modules": [{"name": "conv1", "class": "Conv2d", "parameters": 432},
                                 {"name": "bn1", "class": "BatchNorm2d", "parameters": 32}]},
           "optimizer": {"class": "SGD", "param_groups": [{"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}]}}
GPT_ADAMW = {"framework": "pytorch",
             "model": {"class": "GPT", "parameters": 10_000_000,
                       "modules": [{"name": "h.0.attn", "class": "CausalSelfAttention", "parameters": 1000}]},
             "optimizer": {"class": "AdamW", "param_groups": [{"lr": 0.5, "betas": [0.9, 0.95], "eps": 1e-8,
                                                                "weight_decay": 0.1}]}}


def _diagnose(tab, symptoms=frozenset()):
    return diagnose(tab, analyse(tab), set(symptoms), tab.source)


def _with(config, shape="power_law", seed=0):
    tab = cg.table(cg.run(shape, seed, 0.03))
    tab.meta["config"] = copy.deepcopy(config)
    return tab


def test_context_reads_optimizer_architecture_and_settings():
    ctx = read_context(_with(LSTM_SGD))
    assert (ctx.family, ctx.arch, ctx.lr, ctx.clip_norm, ctx.momentum) == ("sgd", "rnn", 20, 0.25, 0)
    ctx = read_context(_with(CNN_SGD))
    assert (ctx.family, ctx.arch, ctx.momentum, ctx.weight_decay) == ("sgd", "cnn", 0.9, 5e-4)
    ctx = read_context(_with(GPT_ADAMW))
    assert (ctx.family, ctx.arch, ctx.beta2, ctx.eps) == ("adam", "transformer", 0.95, 1e-8)
    assert [optimizer_family(n) for n in ("Lion", "Adafactor", "Muon", "RMSprop", None)] == \
        ["lion", "adafactor", "muon", "other", "unknown"]


def test_ntjax_config_context(tmp_path):
    cfg = {"framework": "ntjax", "train": {"preset": "tiny", "model": {"vocab_size": 256}, "steps": 60, "lr": 3.0,
                                           "warmup": 0, "optimizer": "adamw", "b1": 0.9, "b2": 0.95, "clip_norm": 1.0},
           "model": {"class": "GPT", "n_params": 34688},
           "optimizer": {"class": "adamw", "param_groups": [{"lr": 3.0, "betas": [0.9, 0.95], "eps": 1e-8,
                                                              "weight_decay": 0.1, "warmup": 0, "clip_norm": 1.0}]}}
    tab = _with(cfg)
    ctx = read_context(tab)
    assert (ctx.family, ctx.arch, ctx.task, ctx.warmup, ctx.n_params, ctx.vocab_size) == \
        ("adam", "transformer", "lm", 0, 34688, 256)
    assert any(abs(v - math.log(256)) < 1e-9 for v in ctx.baselines.values())


@pytest.mark.parametrize("config", [LSTM_SGD, CNN_SGD], ids=["lstm-sgd-lr20-clip", "cnn-sgd-momentum-lr0.1"])
def test_healthy_sgd_setups_get_no_lr_rule(config):
    # lr 20 with plain SGD and clipping on an LSTM LM, lr 0.1 with SGD momentum on a CNN: known healthy setups.
    for shape in ("power_law", "exponential"):
        d = _diagnose(_with(config, shape))
        # no LR cause at all, and nothing the engine would call likely (a run with no gap between eval and
        # train may keep a few % on a leak: that is also what a leak looks like)
        assert all(h.confidence < 0.1 and not h.cause.startswith("lr_") for h in d.hypotheses), \
            [(h.cause, h.confidence, h.evidence) for h in d.hypotheses]


def test_adam_size_rule_says_which_context_it_assumed():
    d = _diagnose(_with(GPT_ADAMW))
    top = d.hypotheses[0]
    assert top.cause == "lr_too_high"
    assert any("size-based AdamW rule" in e and "assumes adam on a transformer" in e for e in top.evidence)


def test_sgd_without_clipping_at_high_lr_is_suspect_but_not_certain():
    cfg = copy.deepcopy(LSTM_SGD)
    del cfg["clip_norm"]
    sig = [s for s in _diagnose(_with(cfg)).signals if s.name == "config_lr_above"]
    assert sig and "no gradient clipping" in sig[0].evidence and sig[0].value < 0.5


def test_embedding_and_layernorm_grads_are_not_vanishing():
    # The false alarm: small LayerNorm and sparse embedding gradients next to healthy matrices.
    tab = _with(GPT_ADAMW)
    tab.meta["config"]["optimizer"]["param_groups"][0]["lr"] = 3e-4
    steps = np.arange(0, cg.N_STEPS, 10)
    for i in range(4):
        tab.add(make_series(f"grad_norm/h.{i}.mlp.weight", steps, np.full(steps.size, 0.1)))
        tab.add(make_series(f"grad_norm/h.{i}.ln_1.bias", steps, np.full(steps.size, 1e-6)))
    tab.add(make_series("grad_norm/wte.weight", steps, np.full(steps.size, 1e-7)))
    assert "vanishing_gradients" not in {h.cause for h in _diagnose(tab).hypotheses}


def test_vanishing_with_depth_is_found():
    tab = _with(GPT_ADAMW)
    tab.meta["config"]["optimizer"]["param_groups"][0]["lr"] = 3e-4
    steps = np.arange(0, cg.N_STEPS, 10)
    for i in range(8):  # grad norms fall 10x per layer going back
        tab.add(make_series(f"grad_norm/layers.{i}.weight", steps, np.full(steps.size, 10.0 ** (i - 7))))
    top = _diagnose(tab).hypotheses[0]
    assert top.cause == "vanishing_gradients" and any("layer 7" in e and "layer 0" in e for e in top.evidence)


def _regression_table(level=0.25, n=2000, seed=0):
    t = np.arange(float(n))
    clean = level + 0.6 * np.exp(-t / 100)
    rng = np.random.default_rng(seed)
    tab = RunTable(source="regression", format="synthetic")
    tab.add(make_series("train/loss", t, clean * np.exp(0.02 * rng.standard_normal(n))))
    tab.add(make_series("train/mse", t, clean * np.exp(0.02 * rng.standard_normal(n))))
    return tab


def test_trivial_solution_names_the_mean_predictor():
    a = analyse(_regression_table())
    f = next(f for f in a.findings if f.kind == "trivial_solution")
    assert f.severity == "warning" and "0.250 = the MSE of predicting the mean" in f.evidence
    assert 300 <= f.start_step <= 600  # where it settled: 0.25 + 0.6 exp(-t/100) is within 3% from t ~ 440
    assert "data_pipeline" in {h.cause for h in _diagnose(_regression_table()).hypotheses}


def test_regression_below_the_baseline_is_not_trivial():
    assert not [f for f in analyse(_regression_table(level=0.12)).findings if f.kind == "trivial_solution"]


def test_trivial_solution_from_the_config_vocabulary():
    tab = cg.table(cg.inject("no_learning", cg.run("power_law", 0, 0.03), 0))
    tab.meta["config"] = {"model": {"vocab_size": 10}}
    f = next(f for f in analyse(tab).findings if f.kind == "trivial_solution")
    assert "ln V = ln 10" in f.evidence


def _resumed(restart_lr=True, worse=True):
    """A cosine run killed at step 3000 and resumed after a 10-minute pause; the LR schedule restarts."""
    c = cg.run("cosine", 0, 0.03)
    t = c["step"]
    time = 1000.0 + 0.5 * t + np.where(t >= 3000, 600.0, 0.0)
    if restart_lr:  # the resumed run starts its schedule (warmup included) from step 0 again
        c["lr"] = np.where(t >= 3000, c["lr"][np.clip((t - 3000).astype(int), 0, None)], c["lr"])
    if worse:
        bump = np.where(t >= 3000, 1 + 0.3 * np.exp(-(t - 3000) / 2000), 1.0)
        c["train"] = c["train"] * bump
        c["eval"] = c["eval"] * np.interp(c["eval_step"], t, bump)
    tab = RunTable(source="resumed", format="synthetic")
    tab.add(make_series("train/loss", t, c["train"], time))
    tab.add(make_series("train/lr", t, c["lr"], time))
    tab.add(make_series("eval/loss", c["eval_step"], c["eval"]))
    return tab


def test_resume_regression_names_the_step_and_what_changed():
    tab = _resumed()
    ctx = read_context(tab)
    assert [r.step for r in ctx.resumes] == [3000]
    f = next(f for f in analyse(tab).findings if f.kind == "resume_regression")
    assert f.start_step == 3000 and f.severity == "warning"
    assert "pause" in f.evidence and "LR jumped back up" in f.evidence and "before" in f.evidence
    top = _diagnose(tab).hypotheses[0]
    assert top.cause == "lr_schedule", [(h.cause, h.confidence) for h in _diagnose(tab).hypotheses]


def test_clean_resume_is_not_a_regression():
    tab = _resumed(restart_lr=False, worse=False)
    assert [r.step for r in read_context(tab).resumes] == [3000]
    assert not [f for f in analyse(tab).findings if f.kind == "resume_regression"]


def test_confidence_is_traceable_and_calibrated_softmax():
    tab = cg.table(cg.inject("divergence", cg.run("power_law", 0, 0.03), 2500))
    d = _diagnose(tab)
    weights = load_weights()
    logits, parts = scores(d.signals, weights)
    probs, p_healthy = probabilities(logits, weights["temperature"])
    assert abs(sum(probs.values()) + p_healthy - 1) < 1e-9
    for h in d.hypotheses:
        assert abs(h.confidence - probs[h.cause]) < 1e-9
        assert abs(sum(c["log_odds"] for c in h.contributions) - h.log_odds) <= 0.01 * len(h.contributions)
        assert all(c["evidence"] for c in h.contributions)
    assert d.hypotheses[0].cause == "lr_too_high"


def test_a_tie_is_said_not_broken_silently():
    tab = cg.table(cg.inject("overfitting", cg.run("power_law", 0, 0.03), 2000))
    weights = copy.deepcopy(load_weights())
    weights["causes"]["label_noise"] = copy.deepcopy(weights["causes"]["overfitting"])
    d = diagnose(tab, analyse(tab), set(), "x", weights=weights)
    assert {h.cause for h in d.hypotheses[:2]} == {"overfitting", "label_noise"}
    assert d.tie and "overfitting" in d.tie and "label_noise" in d.tie and "does not separate" in d.tie
    assert any("tied with" in e for e in d.hypotheses[0].evidence)


def test_insufficient_evidence_names_what_to_log():
    # A stalled plateau with no config, no grad norms, no eval: the engine must not guess confidently.
    c = cg.inject("plateau", cg.run("power_law", 0, 0.03), 1500)
    tab = RunTable(source="plateau", format="synthetic")
    tab.add(make_series("train/loss", c["step"], c["train"]))
    d = _diagnose(tab)
    assert d.insufficient and all(line.startswith("insufficient evidence: log ") for line in d.insufficient)
    assert any("eval loss" in line for line in d.insufficient)  # what would tell underfitting from a stall


GENERATED = [("divergence", 2500, {"lr_too_high", "gradient_explosion"}),
             ("overfitting", 2000, {"overfitting"}),
             ("slow_convergence", 0, {"lr_too_low"}),
             ("oscillation", 2000, {"lr_too_high", "batch_size"}),
             ("repeated_spikes", 2000, {"lr_too_high", "insufficient_warmup"})]


def test_calibration_sanity_on_generated_runs():
    """Confidence means probability: the top cause's confidence is no far cry from how often it is right,
    healthy runs get no confident cause, and more supporting evidence never lowers a confidence."""
    conf, right = [], []
    for kind, onset, truth in GENERATED:
        for seed in range(3):
            d = _diagnose(cg.table(cg.inject(kind, cg.run(cg.SHAPES[seed % 4], seed, 0.03), onset)))
            assert d.hypotheses, kind
            conf.append(d.hypotheses[0].confidence)
            right.append(d.hypotheses[0].cause in truth)
    for shape in cg.SHAPES:
        d = _diagnose(cg.table(cg.run(shape, 1, 0.03)))
        assert all(h.confidence < 0.3 for h in d.hypotheses)
    assert np.mean(right) >= 0.8
    assert abs(np.mean(conf) - np.mean(right)) <= 0.25  # over- or under-confidence stays small
    tab = cg.table(cg.inject("slow_convergence", cg.run("power_law", 0, 0.03), 0))
    before = _diagnose(tab).hypotheses[0]
    after = _diagnose(tab, {"slow"}).hypotheses[0]
    assert after.cause == before.cause and after.confidence >= before.confidence


def _hist(std, lo=None, hi=None):
    steps = np.arange(0, 1000, 50, dtype=float)
    std = np.broadcast_to(np.asarray(std, float), steps.shape).copy()
    return {"step": steps, "std": std, "mean": np.zeros_like(steps), "count": np.full(steps.shape, 1e4),
            "min": -4 * std if lo is None else np.broadcast_to(lo, steps.shape),
            "max": 4 * std if hi is None else np.broadcast_to(hi, steps.shape)}


def test_gradient_histograms_dead_and_collapsing_layers():
    tab = cg.table(cg.run("power_law", 0, 0.03))
    decay = np.exp(-np.arange(20) / 1.5)  # one layer's gradient spread shrinks e^-13 over the run
    tab.meta["histograms"] = {**{f"grad_hist/layers.{i}.weight": _hist(0.01) for i in range(4)},
                              "grad_hist/layers.4.weight": _hist(0.0, 0.0, 0.0),
                              "grad_hist/layers.5.weight": _hist(0.01 * decay)}
    kinds = {f.kind: f for f in analyse(tab).findings}
    assert "layers.4.weight" in kinds["dead_gradients"].evidence and kinds["dead_gradients"].severity == "warning"
    assert "layers.5.weight" in kinds["collapsing_gradients"].evidence
    assert _diagnose(tab).hypotheses[0].cause == "vanishing_gradients"


def test_healthy_and_heavy_tailed_histograms_raise_no_warning():
    tab = cg.table(cg.run("power_law", 0, 0.03))
    tab.meta["histograms"] = {**{f"grad_hist/l.{i}.w": _hist(0.01 * (1 + i)) for i in range(4)},
                              "grad_hist/emb.w": _hist(0.01, -2.0, 2.0)}
    bad = [f for f in analyse(tab).findings if f.severity != "info"]
    assert bad == []
    assert any(f.kind == "heavy_tailed_gradients" for f in analyse(tab).findings)


def _memorising_run(scatter: float, every: int = 1, n: int = 300, seed: int = 0) -> RunTable:
    """Train loss 2.3 -> ~0.005 (a 460x fall) with per-step log-normal scatter `scatter`, logged every
    `every` steps; eval rises from step 60 (what memorising a few examples looks like)."""
    t = np.arange(0.0, n, every)
    rng = np.random.default_rng(seed)
    tab = RunTable(source="memorise", format="synthetic")
    tab.add(make_series("train/loss", t, 2.3 * np.exp(-t / 49) * np.exp(scatter * rng.standard_normal(t.size))))
    e = np.arange(0.0, n, 20)
    tab.add(make_series("eval/loss", e, 2.0 + 0.004 * np.maximum(e - 60, 0)))
    return tab


def test_same_examples_every_step_is_named_and_explains_the_overfitting():
    """A per-step train loss that collapses with no minibatch scatter: the loader repeats one batch, which
    the engine must rank above plain overfitting; fresh minibatches (log scatter 0.1) or a log averaged
    over 10 steps must not be read that way."""
    from ntjax.diagnostics.evidence import sig_same_batch

    def fires(tab):
        return sig_same_batch(tab, analyse(tab), read_context(tab), set()) is not None

    repeated = _memorising_run(0.0005)
    assert fires(repeated)
    assert not fires(_memorising_run(0.1)) and not fires(_memorising_run(0.0005, every=10))
    top = _diagnose(repeated, {"overfitting"}).hypotheses[0]
    assert top.cause == "data_pipeline" and any("same examples" in e for e in top.evidence)
    assert _diagnose(_memorising_run(0.1), {"overfitting"}).hypotheses[0].cause == "overfitting"
