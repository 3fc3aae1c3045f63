"""TorchMonitor against real torch training: its numbers equal torch's own, and its files are readable."""
from __future__ import annotations

import json
import math
import warnings

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch (pip install 'ntjax[torch]')")

from ntjax.bridges.torch import TorchMonitor  # noqa: E402

VOCAB, WIDTH, SEQ, BATCH = 40, 32, 12, 8


def tiny_transformer() -> torch.nn.Module:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(WIDTH, 4, 2 * WIDTH, dropout=0.0, batch_first=True)
    return torch.nn.Sequential(torch.nn.Embedding(VOCAB, WIDTH), torch.nn.TransformerEncoder(layer, 2),
                               torch.nn.Linear(WIDTH, VOCAB))


def batch(step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    return torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)


def loss_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), x.reshape(-1))


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def train(tmp_path, steps: int, sample_every: int = 3, inject_nan_at: int | None = None, clip: float = 0.5):
    """A real loop with clipping; returns (lines, torch's own clip totals, the monitor's returns, warnings)."""
    model = tiny_transformer()
    opt = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 3e-3},
                             {"params": list(model[1].parameters()) + list(model[2].parameters()), "lr": 1e-3}],
                            betas=(0.9, 0.95), weight_decay=0.1)
    totals, returned = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TorchMonitor(model, opt, tmp_path, sample_every=sample_every) as mon:
            for step in range(steps):
                opt.zero_grad()
                loss_of(model, batch(step)).backward()
                if step == inject_nan_at:
                    model[1].layers[1].linear2.weight.grad[0, 0] = float("nan")
                returned.append(mon.log(step, loss_of(model, batch(step)).detach()))
                totals.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
                opt.step()
            mon.log_eval(steps, {"loss": 2.5, "accuracy": 0.25})
    return read_lines(tmp_path / "metrics.jsonl"), totals, returned, caught


def test_grad_norm_equals_clip_grad_norm_total_and_layers_sum_to_it(tmp_path):
    lines, totals, _, _ = train(tmp_path, steps=6)
    train_lines = [r for r in lines if "train/loss" in r]
    assert [r["step"] for r in train_lines] == list(range(6))
    for rec, total in zip(train_lines, totals):
        assert rec["train/grad_norm"] == pytest.approx(total, rel=1e-5)
    sampled = [r for r in train_lines if r["step"] % 3 == 0]
    for rec in sampled:
        squares = sum(v ** 2 for k, v in rec.items() if k.startswith("grad_norm/"))
        assert squares == pytest.approx(rec["train/grad_norm"] ** 2, rel=1e-5)
        assert len([k for k in rec if k.startswith("grad_norm/")]) == len(list(tiny_transformer().parameters()))


def test_every_step_has_loss_lr_groups_throughput_and_sampled_steps_have_details(tmp_path):
    lines, _, _, _ = train(tmp_path, steps=7)
    by_step = {r["step"]: r for r in lines if "train/loss" in r}
    for step, rec in by_step.items():
        assert rec["train/lr"] == pytest.approx(3e-3) and rec["train/lr/group1"] == pytest.approx(1e-3)
        assert rec["train/nonfinite"] == 0.0 and math.isfinite(rec["train/loss"])
        if step > 0:
            assert rec["train/throughput"] > 0
        has_details = any(k.startswith("update_ratio/") for k in rec)
        assert has_details == (step % 3 == 0)
    detail = by_step[3]
    assert 0 < detail["update_ratio/2.weight"] < 0.1
    assert {"act_mean/0", "act_std/0", "act_std/1.layers.0.linear1", "act_std/2"} <= set(detail)
    entropy = detail["attn_entropy/1.layers.0.self_attn"]
    assert 0 < entropy <= math.log(SEQ) + 1e-5  # uniform attention over SEQ keys is the maximum
    assert not any(k.startswith("act_") for k in by_step[4])
    assert lines[-1] == {"step": 7, "time": lines[-1]["time"], "eval/loss": 2.5, "eval/accuracy": 0.25}


def test_injected_nan_is_flagged_at_its_step_and_module(tmp_path):
    lines, _, _, caught = train(tmp_path, steps=5, sample_every=100, inject_nan_at=2)
    by_step = {r["step"]: r for r in lines if "train/nonfinite" in r}
    flagged = [s for s, r in by_step.items() if r["train/nonfinite"] == 1.0]
    assert flagged == [2, 3, 4]  # clipping by a NaN total then spreads it into every weight
    assert by_step[2]["grad_norm/1.layers.1.linear2.weight"] == "nan"
    assert by_step[2]["train/grad_norm"] == "nan"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("step 2" in m and "'1.layers.1.linear2.weight'" in m for m in messages)
    assert not any("step 1 " in m for m in messages)


def test_config_json_holds_optimizer_groups_and_model_summary(tmp_path):
    train(tmp_path, steps=1)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["framework"] == "pytorch"
    assert cfg["optimizer"]["class"] == "AdamW"
    g0, g1 = cfg["optimizer"]["param_groups"]
    assert g0["lr"] == pytest.approx(3e-3) and g1["lr"] == pytest.approx(1e-3)
    assert g0["betas"] == [0.9, 0.95] and g0["weight_decay"] == 0.1 and g0["eps"] == 1e-8
    n = sum(p.numel() for p in tiny_transformer().parameters())
    assert cfg["model"]["parameters"] == n == g0["n_params"] + g1["n_params"]
    assert cfg["model"]["class"] == "Sequential"
    assert {"name": "1.layers.0.self_attn", "class": "MultiheadAttention",
            "parameters": 4 * WIDTH * WIDTH + 4 * WIDTH} in cfg["model"]["modules"]


def test_config_lr_is_the_schedules_base_lr(tmp_path):
    model = tiny_transformer()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / 10)  # warmup: the group's lr is now 3e-4
    TorchMonitor(model, opt, tmp_path).close()
    group = json.loads((tmp_path / "config.json").read_text())["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(3e-3) and group["lr_at_start"] == pytest.approx(3e-4)


def test_close_removes_every_hook(tmp_path):
    model = tiny_transformer()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    n_opt_hooks = len(opt._optimizer_step_post_hooks)
    mon = TorchMonitor(model, opt, tmp_path, sample_every=1)
    assert any(m._forward_hooks for m in model.modules())
    mon.close()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert len(opt._optimizer_step_post_hooks) == n_opt_hooks


def test_csv_backend_writes_beside_jsonl(tmp_path):
    model = tiny_transformer()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with TorchMonitor(model, opt, tmp_path, backends=("jsonl", "csv"), batch_size=BATCH) as mon:
        for step in range(2):
            opt.zero_grad()
            loss = loss_of(model, batch(step))
            loss.backward()
            mon.log(step, loss)
            opt.step()
    assert (tmp_path / "metrics.csv").read_text().count("train/grad_norm") >= 1
    assert len(read_lines(tmp_path / "metrics.jsonl")) == 2
