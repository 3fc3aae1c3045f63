"""TorchMonitor in a real GPU-style job: statistics reduced on the tensors' device (only O(number of
tensors) floats reach the host), no JAX, bounded snapshot memory, and a model that stays savable."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch (pip install 'ntjax[torch]')")
from test_bridge_torch import BATCH, VOCAB, batch, loss_of, read_lines, tiny_transformer  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from ntjax.bridges import torch_device  # noqa: E402
from ntjax.bridges.torch import TorchMonitor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


class LargestOutput(TorchDispatchMode):
    """Records the largest tensor any torch op creates while it is active (and every op's name); views
    (`detach`, `reshape`) share their input's memory and are not counted."""

    def __init__(self):
        super().__init__()
        self.largest, self.ops = 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append(str(func))
        if func.is_view:
            return out
        for t in (out if isinstance(out, (list, tuple)) else [out]):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_unsampled_step_moves_one_float_per_tensor_to_the_host(tmp_path):
    model = tiny_transformer()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n_tensors = len(list(model.parameters()))
    param_elems = sum(p.numel() for p in model.parameters())
    smallest_param = min(p.numel() for p in model.parameters() if p.dim() > 1)
    with TorchMonitor(model, opt, tmp_path, sample_every=1000) as mon:
        for step in range(3):  # step 0 is sampled; 1 and 2 are not
            opt.zero_grad()
            loss = loss_of(model, batch(step))
            loss.backward()
            before = (torch_device.HOST_TRANSFER.bytes, torch_device.HOST_TRANSFER.copies)
            with LargestOutput() as seen:
                mon.log(step, loss)
            moved = torch_device.HOST_TRANSFER.bytes - before[0]
            opt.step()
            if step > 0:
                assert moved == 4 * (n_tensors + 1)  # a float32 norm per tensor, and the loss
                assert torch_device.HOST_TRANSFER.copies - before[1] == 1
                assert seen.largest <= n_tensors + 1 < smallest_param  # no tensor copied, on host or device
                assert not any("clone" in op or "copy" in op for op in seen.ops)
    assert 4 * (n_tensors + 1) * 100 < param_elems * 4  # the figure the benchmark reports, in proportion


def test_grad_norm_of_bfloat16_gradients_is_reduced_in_float32(tmp_path):
    model = tiny_transformer().to(torch.bfloat16)
    with TorchMonitor(model, log_dir=tmp_path, sample_every=1000) as mon:
        loss_of(model, batch(0)).float().backward()
        got = mon.log(0, None, lr=0.1)["train/grad_norm"]
    exact = torch.linalg.vector_norm(torch.cat([p.grad.float().reshape(-1) for p in model.parameters()]))
    assert got == pytest.approx(float(exact), rel=1e-5)


def test_update_ratio_snapshot_is_bounded_and_round_robin(tmp_path):
    model = tiny_transformer()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sizes = {n: p.numel() * 4 for n, p in model.named_parameters()}
    budget = max(sizes.values())  # room for the largest tensor alone, far less than the model
    assert budget < sum(sizes.values()) / 4
    measured: list[set[str]] = []
    with TorchMonitor(model, opt, tmp_path, sample_every=1, snapshot_bytes=budget) as mon:
        for step in range(12):
            opt.zero_grad()
            loss = loss_of(model, batch(step))
            loss.backward()
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
            params = {n: p.detach().clone() for n, p in model.named_parameters()}
            mon.log(step, loss)
            snap = mon._snapshot
            assert sum(t.numel() * t.element_size() for t in snap[2]) <= budget
            opt.step()
            line = read_lines(tmp_path / "metrics.jsonl")[-1]
            ratios = {k.removeprefix("update_ratio/"): v for k, v in line.items() if k.startswith("update_ratio/")}
            measured.append(set(ratios))
            for name, r in ratios.items():  # SGD: the update is exactly lr * grad
                p_norm = float(params[name].norm())
                want = 0.1 * float(grads[name].norm()) / p_norm if p_norm > 0 else 0.0
                assert r == pytest.approx(want, rel=1e-4, abs=1e-9)
    covered = set().union(*measured)
    assert covered == set(sizes)  # every tensor measured within a few sampled steps
    assert all(0 < len(m) < len(sizes) for m in measured)


def test_monitor_without_optimizer_for_a_hand_written_sgd_update(tmp_path):
    model = tiny_transformer()
    lr = 0.05
    with TorchMonitor(model, log_dir=tmp_path, sample_every=2, batch_size=BATCH) as mon:
        for step in range(4):
            model.zero_grad()
            loss = loss_of(model, batch(step))
            loss.backward()
            mon.log(step, loss, lr=lr)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
            lr *= 0.5
        mon.log_eval(4, {"loss": 3.0})
    lines = read_lines(tmp_path / "metrics.jsonl")
    train = [r for r in lines if "train/loss" in r]
    assert [r["train/lr"] for r in train] == [0.05, 0.025, 0.0125, 0.00625]
    assert all(any(k.startswith("update_ratio/") for k in r) == (r["step"] % 2 == 0) for r in train)
    assert 0 < train[0]["update_ratio/2.weight"] < 1
    assert "optimizer" not in json.loads((tmp_path / "config.json").read_text())
    assert lines[-1]["eval/loss"] == 3.0


def test_attached_monitor_never_breaks_torch_save_or_deepcopy(tmp_path):
    model = tiny_transformer()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mon = TorchMonitor(model, opt, tmp_path / "run", sample_every=1)  # sampling hooks armed too
    loss = loss_of(model, batch(0))
    loss.backward()
    mon.log(0, loss)
    opt.step()
    torch.save(model, tmp_path / "model.pt")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.pt")
    twin = copy.deepcopy(model)
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    x = batch(1)
    for other in (twin, loaded):
        assert torch.equal(other(x), model(x))
        loss_of(other, x).backward()  # its inert hooks run and log nothing
    mon.close()
    assert len(read_lines(tmp_path / "run" / "metrics.jsonl")) == 1


def test_log_dir_defaults_to_ntjax_run_dir_then_a_fresh_folder_and_refuses_to_append(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tiny_transformer()
    monkeypatch.setenv("NTJAX_RUN_DIR", str(tmp_path / "from_env"))
    with TorchMonitor(model) as mon:
        mon.log(0, 1.0)
    assert mon.log_dir == tmp_path / "from_env" and (tmp_path / "from_env" / "metrics.jsonl").is_file()
    monkeypatch.delenv("NTJAX_RUN_DIR")
    folders = []
    for _ in range(2):
        with TorchMonitor(model) as mon:
            mon.log(0, 1.0)
        folders.append(mon.log_dir)
    assert folders[0] != folders[1] and all(f.parent == Path("runs") and f.name.startswith("Sequential-")
                                            for f in folders)
    with pytest.raises(FileExistsError, match="resume=True"):
        TorchMonitor(model, log_dir=folders[0])
    with TorchMonitor(model, log_dir=folders[0], resume=True) as mon:
        mon.log(1, 0.5)
    assert [r["step"] for r in read_lines(folders[0] / "metrics.jsonl")] == [0, 1]


class SeqFirstLM(torch.nn.Module):
    """PyTorch's word_language_model shape: input [seq, batch], an nn.LSTM (batch_first=False)."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.out = torch.nn.Embedding(VOCAB, 16), torch.nn.LSTM(16, 16), torch.nn.Linear(16, VOCAB)

    def forward(self, x, hidden=None):
        y, hidden = self.rnn(self.emb(x), hidden)
        return self.out(y), hidden


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0  # one second between logs
        return self.t


def test_throughput_counts_the_batch_dimension_not_the_sequence_length(tmp_path):
    seq, bsz = 35, 20
    model = SeqFirstLM()
    mon = TorchMonitor(model, log_dir=tmp_path / "lm", sample_every=1000)
    mon.recorder.clock = Clock()
    assert mon.batch_dim == 1
    got = []
    for step in range(3):
        for _ in range(2):  # two accumulated micro-batches per step
            x = torch.randint(0, VOCAB, (seq, bsz))
            out, _ = model(x)
            torch.nn.functional.cross_entropy(out.reshape(-1, VOCAB), x.reshape(-1)).backward()
        got.append(mon.log(step, None, lr=1.0).get("train/throughput"))
    mon.close()
    assert got == [None, 2 * bsz, 2 * bsz]  # samples per second, with one second between logs
    assert TorchMonitor(tiny_transformer(), log_dir=tmp_path / "t").batch_dim == 0  # batch_first=True


def test_run_end_is_marked_finished_or_crashed(tmp_path):
    model = tiny_transformer()
    with TorchMonitor(model, log_dir=tmp_path / "ok") as mon:
        mon.log(0, 1.0)
        assert json.loads((tmp_path / "ok" / "status.json").read_text())["state"] == "running"
    assert json.loads((tmp_path / "ok" / "status.json").read_text())["state"] == "finished"
    with pytest.raises(ValueError):
        with TorchMonitor(model, log_dir=tmp_path / "bad") as mon:
            mon.log(0, 1.0)
            raise ValueError("data loader broke")
    status = json.loads((tmp_path / "bad" / "status.json").read_text())
    assert status["state"] == "crashed" and "data loader broke" in status["reason"] and status["step"] == 0


SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from ntjax.bridges.torch import TorchMonitor
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = TorchMonitor(model, opt, sample_every=2)  # log_dir from NTJAX_RUN_DIR; never closed
    for step in range(5):
        opt.zero_grad()
        loss = model(torch.randn(16, 4)).pow(2).mean()
        loss.backward()
        monitor.log(step, loss)
        opt.step()
    jax_loaded = "jax" in sys.modules
    import jax
    print("JAX", jax_loaded, sorted({d.platform for a in jax.live_arrays() for d in a.devices()}), flush=True)
    if sys.argv[1] == "crash":
        raise RuntimeError("out of memory (simulated)")
""")


@pytest.mark.parametrize("ending", ["crash", "clean"])
def test_script_never_touches_jax_and_its_end_is_marked_without_close(tmp_path, ending):
    (tmp_path / "train.py").write_text(SCRIPT)
    run_dir = tmp_path / "run"
    env = {**__import__("os").environ, "NTJAX_RUN_DIR": str(run_dir)}
    proc = subprocess.run([sys.executable, "train.py", ending], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert "JAX False []" in proc.stdout, proc.stderr  # the bridge never imported JAX, so never took memory
    assert (proc.returncode != 0) == (ending == "crash")
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == ("crashed" if ending == "crash" else "finished")
    assert status["step"] == 4 and len(read_lines(run_dir / "metrics.jsonl")) == 5
    mon = subprocess.run([sys.executable, "-m", "ntjax.cli", "monitor", str(run_dir), "--once", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert json.loads(mon.stdout)["status"]["ended_as"] == status["state"], mon.stderr


def test_sampled_activation_and_attention_statistics_equal_torchs_own(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.GELU(), torch.nn.Linear(32, 3))
    attn = torch.nn.MultiheadAttention(6, 2, batch_first=True)
    x = torch.randn(16, 6) * 2 + 0.5
    with TorchMonitor(model, log_dir=tmp_path / "mlp") as mon:
        model(x).square().mean().backward()
        got = mon.log(0, None, lr=0.1)
    with torch.no_grad():
        h, y = model[0](x), model(x)
    assert got["act_mean/0"] == pytest.approx(float(h.mean()), rel=1e-5, abs=1e-6)
    assert got["act_std/0"] == pytest.approx(float(h.std(correction=0)), rel=1e-4)
    assert got["act_std/2"] == pytest.approx(float(y.std(correction=0)), rel=1e-4)
    wrapper = torch.nn.Sequential(attn)
    wrapper.forward = lambda q: attn(q, q, q)  # an nn.MultiheadAttention called as self-attention
    with TorchMonitor(wrapper, log_dir=tmp_path / "attn") as mon:
        q = torch.randn(4, 5, 6)
        out, _ = wrapper(q)
        out.sum().backward()
        got = mon.log(0, None, lr=0.1)
    with torch.no_grad():
        _, w = attn(q, q, q, need_weights=True, average_attn_weights=False)
    entropy = float(-(w * w.log()).sum(-1).mean())
    assert got["attn_entropy/0"] == pytest.approx(entropy, rel=1e-5)


def test_to_host_keeps_order_across_dtypes_in_one_copy_per_device():
    parts = [torch.tensor(1.5), torch.tensor(2.25, dtype=torch.float64), torch.tensor(3.0, dtype=torch.bfloat16),
             torch.tensor([4.0])]
    before = torch_device.HOST_TRANSFER.copies
    assert torch_device.to_host(parts).tolist() == [1.5, 2.25, 3.0, 4.0]
    assert torch_device.HOST_TRANSFER.copies - before == 1  # all on the CPU: one stacked copy
    assert torch_device.to_host([]).size == 0
