"""`ntjax.bridges.torch.lr_find`: the range test on a real torch model, state restored afterwards."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch (pip install 'ntjax[torch]')")

from ntjax.bridges.torch import lr_find  # noqa: E402


def test_lr_find_on_a_torch_regression_restores_state(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 8, generator=g)
    batches = [(x[i:i + 32], x[i:i + 32].sum(1, keepdim=True)) for i in range(0, 256, 32)]  # re-iterated
    before = {k: v.clone() for k, v in model.state_dict().items()}

    result = lr_find(model, opt, batches, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
                     min_lr=1e-5, max_lr=10.0, steps=60, plot=tmp_path / "lr.png")

    assert result["stop_reason"] in ("diverged", "nonfinite")
    assert result["steps_run"] > len(batches)  # the batch list was cycled
    assert 1e-5 < result["recommended"] < 1.0
    assert result["recommended"] == pytest.approx(result["min_loss_lr"] / 10)
    assert all(math.isfinite(v) for v in result["losses"][:10])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.param_groups[0]["lr"] == 0.01 and not opt.state  # no momentum buffers left behind
    assert (tmp_path / "lr.png").stat().st_size > 1000
