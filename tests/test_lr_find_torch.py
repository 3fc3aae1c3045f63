"""The PyTorch bridge's LR range test: real model and optimizer, restored bit for bit afterwards."""
import math

import pytest

torch = pytest.importorskip("torch")

from ntjax.bridges.torch import lr_find  # noqa: E402


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g)
    w = torch.randn(16, 4, generator=g)
    y = (x @ w).argmax(dim=1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 512, 32)]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(64, 4))
    return model, batches


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.cross_entropy(model(x), y)


def test_lr_find_restores_model_optimizer_grads_and_rng_exactly(tmp_path):
    model, batches = _problem()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    for b in batches[:3]:  # a non-trivial optimizer state (moments, step counts) to restore
        opt.zero_grad()
        _loss(model, b).backward()
        opt.step()
    model.eval()
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = opt.state_dict()
    before_state = {i: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                    for i, s in before_opt["state"].items()}
    before_grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()

    out = lr_find(model, opt, batches, _loss, steps=80, plot=tmp_path / "lr.png")

    assert all(torch.equal(before_model[k], v) for k, v in model.state_dict().items())
    after = opt.state_dict()
    assert after["param_groups"][0]["lr"] == 3e-4
    for i, s in after["state"].items():
        for k, v in s.items():
            assert torch.equal(v, before_state[i][k]) if torch.is_tensor(v) else v == before_state[i][k]
    assert all(torch.equal(a, p.grad) for a, p in zip(before_grads, model.parameters()))
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert 1e-6 <= out["recommended"] <= 1.0 and out["recommended"] == pytest.approx(out["min_loss_lr"] / 10)


def test_lr_find_suggestion_trains_stably():
    model, batches = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lr = lr_find(model, opt, batches, _loss, steps=80)["recommended"]
    for g in opt.param_groups:
        g["lr"] = lr
    first = last = None
    for epoch in range(5):
        for b in batches:
            opt.zero_grad()
            loss = _loss(model, b)
            loss.backward()
            opt.step()
            last = float(loss.detach())
            first = first if first is not None else last
    assert math.isfinite(last) and last < 0.7 * first
