"""The Hugging Face and Lightning callbacks in a real (tiny) `Trainer.train()` / `Trainer.fit()`."""
from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch (pip install 'ntjax[torch]')")


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.mark.slow
def test_hf_trainer_callback_writes_readable_metrics(tmp_path):
    transformers = pytest.importorskip("transformers", reason="needs transformers (pip install 'ntjax[callbacks]')")
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (not in the callbacks extra yet)")
    from ntjax.bridges.torch import HFTrainerCallback

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    rows = [torch.randint(0, 64, (16,), generator=torch.Generator().manual_seed(i)) for i in range(24)]
    data = [{"input_ids": r, "labels": r} for r in rows]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), max_steps=4, per_device_train_batch_size=4, learning_rate=1e-3,
        logging_steps=1, eval_strategy="steps", eval_steps=2, save_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, max_grad_norm=1.0)
    callback = HFTrainerCallback(tmp_path / "run", sample_every=2)
    transformers.Trainer(model=model, args=args, train_dataset=data[:16], eval_dataset=data[16:],
                         callbacks=[callback]).train()

    lines = read_lines(tmp_path / "run" / "metrics.jsonl")
    steps = [r for r in lines if "train/loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(math.isfinite(r["train/loss"]) and r["train/lr"] > 0 for r in steps)
    clipped = [r["train/grad_norm_clipped"] for r in steps]
    pre_clip = {r["step"]: r["train/grad_norm"] for r in lines if "train/grad_norm" in r}
    assert sorted(pre_clip) == [1, 2, 3, 4]
    for step, norm in zip([1, 2, 3, 4], clipped):  # clipping scales to at most max_grad_norm
        assert norm == pytest.approx(min(pre_clip[step], 1.0), rel=1e-3)
    assert any(k.startswith("grad_norm/transformer.h.0.") for k in steps[0])
    assert any(k.startswith("update_ratio/") for k in steps[1])
    evals = [r for r in lines if "eval/loss" in r]
    assert [r["step"] for r in evals] == [2, 4]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["class"] == "GPT2LMHeadModel" and cfg["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert not model._forward_hooks  # the callback's loss hook is gone after training


@pytest.mark.slow
def test_lightning_callback_writes_readable_metrics(tmp_path):
    L = pytest.importorskip("lightning", reason="needs lightning (pip install 'ntjax[callbacks]')")
    from ntjax.bridges.torch import LightningCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, val_check_interval=3,
                        limit_val_batches=2, gradient_clip_val=1e-3, default_root_dir=str(tmp_path),
                        callbacks=[LightningCallback(tmp_path, sample_every=3)])
    trainer.fit(Module(), loader, loader)
    lines = read_lines(tmp_path / "metrics.jsonl")
    steps = [r for r in lines if "train/loss" in r]
    assert [r["step"] for r in steps] == list(range(6))
    # Lightning clips to 1e-3 after the callback reads the gradients: the logged norm is the raw one.
    assert all(r["train/grad_norm"] > 1e-2 for r in steps)
    assert all(r["train/throughput"] > 0 for r in steps[1:])
    assert "grad_norm/net.0.weight" in steps[0] and "act_std/net.2" in steps[0]
    assert [r["step"] for r in lines if "eval/loss" in r] == [3, 6]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["optimizer"]["class"] == "SGD" and cfg["optimizer"]["param_groups"][0]["momentum"] == 0.9
