"""The compiled train step: its measurements are right and measuring changes nothing."""
import jax
import numpy as np
import pytest

from ntjax.core import config as C
from ntjax.core.data import make_data
from ntjax.core.state import build_state
from ntjax.core.step import make_bare_train_step, make_train_step


@pytest.fixture(scope="module")
def setup():
    cfg = C.resolve(C.PRESETS["tiny"])
    task, graphdef, state, make_tx = build_state(cfg)
    tx, sched = make_tx(1.0)
    data = make_data(cfg.model.seq_len, 0, cfg.eval_fraction)
    return cfg, graphdef, state, tx, sched, task, data


def test_per_layer_norms_square_sum_to_global(setup):
    cfg, graphdef, state, tx, sched, task, data = setup
    step = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn)
    _, m = step(state, data.train_batch(0, cfg.batch_size))
    per_layer = [float(v) for k, v in m.items() if k.startswith("grad_norm/")]
    assert len(per_layer) == len(jax.tree.leaves(state.params))
    assert sum(v * v for v in per_layer) == pytest.approx(float(m["train/grad_norm"]) ** 2, rel=1e-5)
    ratios = [float(v) for k, v in m.items() if k.startswith("update_ratio/")]
    assert len(ratios) == len(per_layer) and all(r >= 0 for r in ratios)
    assert not bool(m["train/nonfinite"])


def test_grad_norm_is_taken_before_clipping(setup):
    cfg, graphdef, state, tx, sched, task, data = setup
    step = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn)
    # Scale the loss by 1000: the raw gradient norm grows 1000x, though clipping caps the update.
    def big_loss(model, batch, probes=False):
        return tuple(
            (l * 1000.0, a) for l, a in [task.loss_fn(model, batch, probes)])[0]
    big = make_train_step(graphdef, tx, sched, loss_fn=big_loss)
    batch = data.train_batch(0, cfg.batch_size)
    _, m1 = step(state, batch)
    _, m2 = big(state, batch)
    assert float(m2["train/grad_norm"]) == pytest.approx(1000 * float(m1["train/grad_norm"]), rel=1e-4)
    assert float(m2["train/grad_norm"]) > cfg.clip_norm


def test_instrumented_and_bare_steps_give_identical_parameters(setup):
    cfg, graphdef, state, tx, sched, task, data = setup
    inst = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn)
    probe = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn, probes=True)
    bare = make_bare_train_step(graphdef, tx, loss_fn=task.loss_fn)
    def copy(s):
        return jax.tree.map(lambda x: np.array(x), s)
    a, b = copy(state), copy(state)
    for i in range(5):
        batch = data.train_batch(i, cfg.batch_size)
        a, _ = (probe if i % 2 else inst)(a, batch)
        b, _ = bare(b, batch)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_accumulation_matches_the_full_batch(setup):
    cfg, graphdef, state, tx, sched, task, data = setup
    full = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn, accum_steps=1)
    accum = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn, accum_steps=4)
    batch = data.train_batch(3, cfg.batch_size)
    def copy(s):
        return jax.tree.map(lambda x: np.array(x), s)
    s1, m1 = full(copy(state), batch)
    s4, m4 = accum(copy(state), batch)
    assert float(m4["train/loss"]) == pytest.approx(float(m1["train/loss"]), rel=1e-5)
    assert float(m4["train/grad_norm"]) == pytest.approx(float(m1["train/grad_norm"]), rel=1e-4)
    # The noise-scale inputs: one micro-batch's gradient is noisier than the mean of four.
    assert float(m4["gns/small_sq"]) > float(m4["gns/big_sq"])
    for x, y in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s4.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


def test_probe_step_reports_attention_and_activation_stats(setup):
    cfg, graphdef, state, tx, sched, task, data = setup
    probe = make_train_step(graphdef, tx, sched, loss_fn=task.loss_fn, probes=True)
    _, m = probe(state, data.train_batch(0, cfg.batch_size))
    for i in range(cfg.model.n_layers):
        ent = float(m[f"attn_entropy/blocks.{i}"])
        # At init attention is near uniform over the causal window: entropy below ln(T) but well above 0.
        assert 0.5 < ent < np.log(cfg.model.seq_len)
        assert float(m[f"act_std/blocks.{i}"]) > 0 and np.isfinite(float(m[f"attn_max_logit/blocks.{i}"]))
