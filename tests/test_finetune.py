"""Fine-tuning: NNX LoRA wrapping starts equal to the base model; a full and a LoRA fine-tune of the tiny
preset on a shifted corpus (other stdlib docstrings) both get a forgetting report with real numbers."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ntjax.cli import main
from ntjax.core import config as C
from ntjax.core.lora import add_lora, fold_lora
from ntjax.core.model import GPT
from ntjax.core.runfolder import load_checkpoint
from ntjax.errors import NtjaxError
from ntjax.trainer import train


def _load_example():
    """examples/finetune_lora.py, whose shifted corpus (stdlib docstrings) the test trains on too."""
    path = Path(__file__).resolve().parent.parent / "examples" / "finetune_lora.py"
    spec = importlib.util.spec_from_file_location("finetune_lora_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shifted_corpus = _load_example().write_shifted_corpus


def tokens(seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (2, 32)), jnp.int32)


def test_lora_wrapping_starts_equal_to_the_base_and_trains_only_adapters():
    model = GPT(C.PRESETS["tiny"].model, nnx.Rngs(0))
    before = model(tokens())[0]
    wrapped = add_lora(model, 4, ("attn", "mlp"))
    assert sorted(wrapped) == sorted(f"blocks.{i}.{m}" for i in range(2)
                                     for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"))
    np.testing.assert_array_equal(model(tokens())[0], before)  # B = 0: the adapters add nothing yet
    lora = nnx.state(model, nnx.LoRAParam)
    n_lora = sum(x.size for x in jax.tree.leaves(lora))
    assert n_lora == 2 * (4 * (32 + 96) + 4 * (32 + 32) + 4 * (32 + 128) + 4 * (128 + 32))
    # a nonzero adapter changes the output; folding it into the kernel keeps that output exactly
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.LoRALinear):
            node.lora.lora_b.set_value(jnp.full(node.lora.lora_b.shape, 0.01))
    changed = model(tokens())[0]
    assert not np.allclose(changed, before)
    assert fold_lora(model) == 8 and not any(isinstance(n, nnx.LoRALinear) for _, n in nnx.iter_graph(model))
    np.testing.assert_allclose(model(tokens())[0], changed, atol=1e-5)


def test_lora_targets_by_layer_name_and_errors():
    model = GPT(C.PRESETS["tiny"].model, nnx.Rngs(0))
    assert add_lora(model, 2, ("qkv",)) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    with pytest.raises(NtjaxError, match="matches no Linear layer"):
        add_lora(GPT(C.PRESETS["tiny"].model, nnx.Rngs(0)), 2, ("conv",))
    with pytest.raises(NtjaxError, match="not low rank"):
        add_lora(GPT(C.PRESETS["tiny"].model, nnx.Rngs(0)), 32, ("attn",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    tiny = C.PRESETS["tiny"]
    # a base trained past unigram statistics, so that there is something to forget
    train(dataclasses.replace(tiny, steps=240, eval_every=60, ckpt_every=120), root / "base", progress=False,
          report=False)
    data = str(shifted_corpus(root / "shifted.txt"))
    tune = dataclasses.replace(tiny, steps=60, eval_every=30, init_from=str(root / "base"), data=data)
    train(tune, root / "full", progress=False, report=False)
    train(dataclasses.replace(tune, lora_rank=4), root / "lora", progress=False, report=False)
    return root


@pytest.mark.slow
def test_lora_run_keeps_the_base_weights_frozen(runs):
    base, lora = load_checkpoint(runs / "base"), load_checkpoint(runs / "lora")
    assert lora.cfg.lora_rank == 4
    leaves = jax.tree.leaves(lora.state.params)
    assert leaves and all(x.shape[0] == 4 or x.shape[1] == 4 for x in leaves)  # only A [in, r] and B [r, out]
    frozen = nnx.to_pure_dict(lora.state.frozen)
    base_params = nnx.to_pure_dict(base.state.params)
    np.testing.assert_array_equal(frozen["blocks"][0]["attn"]["qkv"]["kernel"],
                                  base_params["blocks"][0]["attn"]["qkv"]["kernel"])
    np.testing.assert_array_equal(frozen["embed"]["embedding"], base_params["embed"]["embedding"])


@pytest.mark.slow
@pytest.mark.parametrize("tuned", ["full", "lora"])
def test_forgetting_report_has_real_numbers(runs, tuned, capsys):
    capsys.readouterr()
    assert main(["eval", "--forgetting", str(runs / "base"), str(runs / tuned), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    orig, new = out["original"], out["new"]
    print(f"\n{tuned}: {out['verdict']}")
    print(json.dumps({k: orig[k] for k in ("base_loss", "tuned_loss", "loss_delta", "loss_delta_ci95",
                                          "fraction_worse", "per_token_delta")}))
    assert orig["tokens"] >= 32 * 8 * 32 and np.isfinite(orig["loss_delta"])
    assert orig["loss_delta"] == pytest.approx(orig["tuned_loss"] - orig["base_loss"])
    assert orig["base_loss"] != orig["tuned_loss"]  # the fine-tune changed the model
    assert orig["loss_delta_ci95"][0] <= orig["loss_delta"] <= orig["loss_delta_ci95"][1]
    assert 0 <= orig["fraction_worse"] <= 1 and orig["fraction_worse"] + orig["fraction_better"] <= 1
    assert new is not None and new["tuned_loss"] < new["base_loss"]  # it learned the new data
    assert out["tuned"]["lora_rank"] == (4 if tuned == "lora" else 0)
    report = (runs / tuned / "forgetting_report.md").read_text()
    assert out["verdict"] in report and f"{orig['base_loss']:.4f}" in report


@pytest.mark.slow
@pytest.mark.parametrize("tuned", ["full", "lora"])
def test_a_fine_tuned_run_evaluates_with_its_base_run_folder_gone(runs, tuned, capsys):
    """The fine-tuned checkpoint holds every weight: loading it never reads --init-from's folder."""
    moved = runs / "base-moved-away"
    (runs / "base").rename(moved)
    try:
        assert json.loads((runs / tuned / "config.json").read_text())["train"]["init_from"] == str(runs / "base")
        loaded = load_checkpoint(runs / tuned)
        assert loaded.step == 60
        capsys.readouterr()
        assert main(["eval", str(runs / tuned), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["step"] == 60 and out["logged"]["eval/loss"] == pytest.approx(out["metrics"]["eval/loss"], abs=1e-5)
    finally:
        moved.rename(runs / "base")
