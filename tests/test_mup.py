"""μP (ntjax/core/mup.py): the rules, their exact equality with SP at base width, the coordinate check through
the real CLI, spec declarations, and the config/CLI plumbing. Widths and steps are tiny."""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ntjax.core import config as C
from ntjax.core import mup
from ntjax.errors import NtjaxError


def tiny(**changes) -> C.TrainConfig:
    base = C.preset("tiny")
    model = dataclasses.replace(base.model, **{k: changes.pop(k) for k in list(changes) if k in ("d_model",)})
    return C.resolve(dataclasses.replace(base, model=model, lr=3e-3, warmup=1, **changes))


def ntjax_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "ntjax.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def train_losses(cfg: C.TrainConfig, steps: int):
    """Losses of `steps` real steps (ntjax's task, optimizer and schedule) and the final parameters."""
    from ntjax.core.step import make_bare_train_step
    from ntjax.trainer import build_state

    task, graphdef, state, make_tx = build_state(cfg)
    step = make_bare_train_step(graphdef, make_tx(1.0)[0], task.loss_fn)
    losses = []
    for i in range(steps):
        state, loss = step(state, jnp.asarray(task.train_batch(i)))
        losses.append(float(loss))
    return losses, state.params


def test_mup_at_base_width_is_sp_bit_for_bit():
    sp_losses, sp_params = train_losses(tiny(), 3)
    mu_losses, mu_params = train_losses(tiny(parametrization="mup", base_width=32), 3)
    assert sp_losses == mu_losses  # exact, not approximate
    for a, b in zip(jax.tree.leaves(sp_params), jax.tree.leaves(mu_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # and the losses are real training (they fall), not a constant
    assert sp_losses[-1] < sp_losses[0]


def test_rules_at_four_times_the_base_width():
    from ntjax.core.task import build_task

    sp = build_task(tiny(d_model=128)).model
    mu_cfg = tiny(d_model=128, parametrization="mup", base_width=32)
    mu = build_task(mu_cfg).model
    spec = mup.spec_for(mu_cfg)
    assert spec.widths.ratio == 0.25 and spec.widths.attn_multiplier == 0.5
    assert mu.logit_mult == 0.25 and mu.blocks[0].attn.attn_mult == 0.5 and sp.logit_mult == 1.0
    # Same seed: hidden matrices are SP's × sqrt(1/m); embeddings and vectors untouched.
    np.testing.assert_allclose(mu.blocks[1].mlp.fc.kernel[...], 0.5 * sp.blocks[1].mlp.fc.kernel[...], rtol=1e-6)
    np.testing.assert_array_equal(mu.embed.embedding[...], sp.embed.embedding[...])
    np.testing.assert_array_equal(mu.blocks[0].ln1.scale[...], sp.blocks[0].ln1.scale[...])
    rows = {r["name"]: r for r in mup.role_table(nnx.state(mu, nnx.Param), spec)}
    assert rows["blocks.0.attn.qkv.kernel"]["role"] == "hidden" and rows["blocks.0.attn.qkv.kernel"]["lr_mult"] == 0.25
    assert rows["embed.embedding"]["role"] == "input" and rows["embed.embedding"]["lr_mult"] == 1.0
    assert rows["pos_embed.embedding"]["role"] == "input"
    assert rows["blocks.0.mlp.fc.bias"]["role"] == "vector" and rows["ln_f.scale"]["lr_mult"] == 1.0


def test_scale_updates_is_a_per_tensor_lr_inside_any_optax_chain():
    params = {"a": jnp.ones((3, 3)), "b": jnp.ones(3)}
    grads = {"a": jnp.full((3, 3), 0.5), "b": jnp.full(3, -2.0)}
    for base in (optax.adam(0.1), optax.lion(0.1), optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.1))):
        tx = optax.chain(base, mup.scale_updates({"a": 0.25, "b": 1.0}))
        plain, _ = base.update(grads, base.init(params), params)
        scaled, _ = tx.update(grads, tx.init(params), params)
        np.testing.assert_allclose(scaled["a"], 0.25 * plain["a"], rtol=1e-6)
        np.testing.assert_array_equal(scaled["b"], plain["b"])


def test_coordinate_check_cli_is_flat_under_mup_and_grows_under_sp(tmp_path):
    out = tmp_path / "check"
    proc = ntjax_cli("mup", "check", "--widths", "16,128", "--steps", "3", "--layers", "1", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["widths"] == [16, 128] and data["base_width"] == 16
    mu, sp = data["results"]["mup"], data["results"]["sp"]
    # μP: every layer's activation and update RMS within 2x across an 8x width range, in both directions
    for ratios in (mu["activation_ratio"], mu["update_ratio_by_layer"]):
        assert all(0.5 <= r <= 2.0 for r in ratios.values()), ratios
    # SP: the hidden layers' coordinates grow with width (Adam moves each weight Θ(lr), summed over width)
    assert sp["coord_ratio"] > 4 and sp["update_ratio"] > 4
    assert sp["activation_slope"]["blocks.0.mlp"] > 0.5 > abs(mu["activation_slope"]["blocks.0.mlp"])
    assert len(sp["activation"]["128"]["logits"]) == 4  # init + 3 steps
    assert (out / "plots" / "coord_check.png").stat().st_size > 10_000
    assert json.loads((out / "coord_check.json").read_text())["widths"] == [16, 128]


def test_coordinate_check_refuses_bad_input_in_one_line():
    proc = ntjax_cli("mup", "check", "--widths", "32")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "two positive widths" in proc.stderr


def test_config_round_trip_and_validation():
    cfg = tiny(parametrization="mup", base_width=16)
    assert C.from_dict(json.loads(json.dumps(C.to_dict(cfg)))) == cfg
    old = C.to_dict(C.preset("tiny"))
    del old["parametrization"], old["base_width"]  # a config.json written before μP existed
    assert C.from_dict(old).parametrization == "sp"
    for bad, words in ((dict(parametrization="xp"), "unknown parametrization"),
                       (dict(parametrization="mup", base_width=0), "base width must be positive"),
                       (dict(parametrization="mup", optimizer="sgd"), "Adam-like"),
                       (dict(parametrization="mup", lora_rank=4, init_from="x"), "from scratch")):
        with pytest.raises(NtjaxError, match=words):
            C.validate(dataclasses.replace(C.preset("tiny"), **bad))
    # μP's default LR is the smart LR of the base width (where it is tuned), not of the wide model
    wide = dataclasses.replace(C.preset("small"), parametrization="mup", base_width=32, lr=None)
    narrow = dataclasses.replace(C.preset("small"), model=dataclasses.replace(C.preset("small").model, d_model=32))
    assert C.resolve(wide).lr == C.resolve(dataclasses.replace(narrow, lr=None)).lr > C.resolve(C.preset("small")).lr


def test_train_cli_refuses_mup_with_sgd():
    proc = ntjax_cli("train", "--preset", "tiny", "--parametrization", "mup", "--optimizer", "sgd", "--yes",
                     "--out", "/nonexistent/never-written", timeout=300)
    assert proc.returncode == 2 and "Adam-like" in proc.stderr


SPEC = textwrap.dedent('''
    import numpy as np
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, d, rngs):
            self.embed = nnx.Embed(256, d, embedding_init=nnx.initializers.normal(1.0), rngs=rngs)
            self.hidden = nnx.Linear(d, d, kernel_init=nnx.initializers.normal(0.02), rngs=rngs)
            self.head = nnx.Linear(d, 256, kernel_init=nnx.initializers.normal(0.02), rngs=rngs)
        def __call__(self, x, probes=False):
            return self.head(nnx.relu(self.hidden(self.embed(x)))), {}

    def build_model(cfg, rngs):
        return Net(cfg.model.d_model, rngs)

    def train_batch(cfg, index):
        return np.random.default_rng(index).integers(0, 256, (cfg.batch_size, 9)).astype(np.int32)

    def eval_batches(cfg):
        return [train_batch(cfg, 10_000)]
''')


def test_spec_models_declare_roles(tmp_path):
    spec = tmp_path / "spec.py"
    spec.write_text(SPEC + "\nMUP_ROLES = {r'^embed': 'input', r'^hidden\\.kernel': 'hidden', "
                           "r'^head\\.kernel': 'output'}\n")
    proc = ntjax_cli("mup", "roles", "--spec", str(spec), "--d-model", "128", "--base-width", "32", "--json",
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(proc.stdout)["params"]}
    assert rows["hidden.kernel"] == {"name": "hidden.kernel", "shape": [128, 128], "role": "hidden",
                                     "lr_mult": 0.25, "init_mult": 0.5}
    assert rows["head.kernel"]["role"] == "output" and rows["head.kernel"]["init_mult"] == 0.25
    assert rows["head.kernel"]["lr_mult"] == 0.25 and rows["embed.embedding"]["lr_mult"] == 1.0
    assert rows["head.bias"]["role"] == "vector"

    undeclared = tmp_path / "bare.py"
    undeclared.write_text(SPEC)
    proc = ntjax_cli("mup", "roles", "--spec", str(undeclared), timeout=300)
    assert proc.returncode == 2 and "declares no MUP_ROLES" in proc.stderr
    partial = tmp_path / "partial.py"
    partial.write_text(SPEC + "\nMUP_ROLES = {r'^embed': 'input'}\n")
    proc = ntjax_cli("mup", "roles", "--spec", str(partial), timeout=300)
    assert proc.returncode == 2 and "no role for 2 matrix parameter(s): head.kernel" in proc.stderr


def test_mup_scaling_study_keeps_heads_and_one_lr():
    from ntjax.scaling.study import design_axis

    base = dataclasses.replace(C.preset("tiny"), parametrization="mup", lr=0.01)
    runs = design_axis(base, "width", [32, 128, 256])
    assert [r.cfg.model.n_heads for r in runs] == [2, 2, 2]
    assert [r.cfg.lr for r in runs] == [0.01] * 3 and {r.cfg.base_width for r in runs} == {32}
    sp_runs = design_axis(C.preset("tiny"), "width", [32, 256])
    assert sp_runs[1].cfg.model.n_heads == 8 and sp_runs[1].cfg.lr < sp_runs[0].cfg.lr or \
        sp_runs[1].cfg.lr == sp_runs[0].cfg.lr == C.LR_MAX
