"""Cost of `TorchMonitor` on a PyTorch transformer: training steps/s bare, monitored on ordinary steps, and
monitored on sampled steps (activations, attention entropy, update ratios), the amortised mix of the
default `sample_every=50`, and what the monitor moves from the device to the host.

    python benchmarks/torch_monitor_overhead.py --json                 # the example model, CPU
    python benchmarks/torch_monitor_overhead.py --preset gpt2-small --device cuda --bf16 --json

The loops run in interleaved rounds in one process; each reports 1 / its median step time, so a busy
machine slows all of them alike and a load spike does not decide the ratio. CUDA steps are synchronised
before each clock read. `host_bytes_per_step` counts the tensor data the monitor copies to the host on an
unsampled step (`ntjax.bridges.stats.HOST_TRANSFER`): one float32 per parameter tensor plus the loss,
against `param_bytes` for the model itself.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from ntjax.bridges import torch_device
from ntjax.bridges.stats import HOST_TRANSFER
from ntjax.bridges.torch import TorchMonitor

PRESETS = {  # width, layers, heads, seq_len, vocab, batch
    "example": (64, 2, 4, 64, 256, 16),  # examples/torch_bridge.py's defaults
    "quick": (32, 1, 4, 32, 256, 8),
    "gpt2-small": (768, 12, 12, 1024, 50257, 8),  # 124M parameters
}
DEFAULT_SAMPLE_EVERY = 50


class LM(torch.nn.Module):
    """A pre-norm causal transformer LM (the shape of examples/torch_bridge.py's TinyLM)."""

    def __init__(self, width: int, layers: int, heads: int, seq_len: int, vocab: int):
        super().__init__()
        self.tok, self.pos = torch.nn.Embedding(vocab, width), torch.nn.Embedding(seq_len, width)
        block = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True,
                                                 norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm, self.head = torch.nn.LayerNorm(width), torch.nn.Linear(width, vocab)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(seq_len))

    def forward(self, tokens_BxT: torch.Tensor) -> torch.Tensor:
        t = tokens_BxT.shape[1]
        x = self.tok(tokens_BxT) + self.pos(torch.arange(t, device=tokens_BxT.device))
        return self.head(self.norm(self.blocks(x, mask=self.mask[:t, :t], is_causal=True)))


LOG_CALLS: list[float] = []  # process CPU seconds of each unsampled `monitor.log` call


def step_times(model, opt, data, steps: int, monitor: TorchMonitor | None, start: int, bf16: bool,
               sync) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds of each training step (forward, backward, monitor, clipping, optimizer)."""
    times = []
    vocab = model.head.out_features
    for i in range(steps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        x = data[i % len(data)]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if monitor is not None:
            sampled = monitor.is_sampling(start + i)
            c1 = time.process_time()
            monitor.log(start + i, loss)
            if not sampled:
                LOG_CALLS.append(time.process_time() - c1)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def grad_stats_ms(model: torch.nn.Module, repeats: int, sync) -> tuple[float, float]:
    """Milliseconds per call: the monitor's per-tensor norms + one host copy, and torch's own total norm."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch_device.to_host(torch_device.norms(grads))
    bridge = (time.perf_counter() - t0) / repeats * 1e3
    t0 = time.perf_counter()
    for _ in range(repeats):
        float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
    return bridge, (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="example")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    p.add_argument("--steps", type=int, default=5, help="steps per round of each loop")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="a tiny model and 3 rounds (a smoke test)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: stable timings on a shared machine, where OpenMP "
                        "threads spinning against other processes slowed steps ~20x here)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if args.quick:
        args.preset, args.rounds, args.steps = "quick", 3, 3
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    width, layers, heads, seq_len, vocab, batch = PRESETS[args.preset]
    torch.manual_seed(0)
    model = LM(width, layers, heads, seq_len, vocab).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, vocab, (batch, seq_len + 1), generator=g).to(device) for _ in range(4)]
    sample_every = {"bare": None, "monitored": 10**9, "sampling": 1}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in sample_every}
    host_bytes: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds + 1):  # round 0 warms every loop up and is discarded
            order = list(sample_every)[r % 3:] + list(sample_every)[:r % 3]
            for kind in order:
                every = sample_every[kind]
                monitor = None if every is None else TorchMonitor(model, opt, f"{tmp}/{kind}{r}", sample_every=every)
                if monitor is not None:  # the first logged step is always sampled
                    step_times(model, opt, data, 1, monitor, 0, args.bf16, sync)
                before = HOST_TRANSFER.bytes
                took = step_times(model, opt, data, args.steps, monitor, 1, args.bf16, sync)
                if kind == "monitored":
                    host_bytes.append((HOST_TRANSFER.bytes - before) // args.steps)
                if monitor is not None:
                    monitor.close()
                if r:
                    times[kind].extend(took)
    bridge_ms, torch_ms = grad_stats_ms(model, 20, sync)
    # the median step: robust to load spikes; CPU time is disturbed much less by other tenants than wall time
    med = {k: 1.0 / statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: 1.0 / statistics.median(c for _, c in v) for k, v in times.items()}

    def amortised(speed: dict[str, float]) -> float:
        """bare / the default mix: one sampled step in DEFAULT_SAMPLE_EVERY, the rest ordinary."""
        mix = ((DEFAULT_SAMPLE_EVERY - 1) / speed["monitored"] + 1 / speed["sampling"]) / DEFAULT_SAMPLE_EVERY
        return (1 / speed["bare"]) / mix
    ratio, sampling_ratio = med["monitored"] / med["bare"], med["sampling"] / med["bare"]
    params = list(model.parameters())
    out = {
        "preset": args.preset, "device": str(device), "bf16_autocast": args.bf16,
        "model_parameters": sum(p.numel() for p in params),
        "n_tensors": len(params),
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "host_bytes_per_step": max(host_bytes),
        "batch": [batch, seq_len],
        "bare_steps_per_s": med["bare"],
        "monitored_steps_per_s": med["monitored"],
        "sampling_steps_per_s": med["sampling"],
        "ratio": ratio,
        "sampling_ratio": sampling_ratio,
        "amortised_ratio": amortised(med),
        "cpu_ratio": cpu["monitored"] / cpu["bare"],
        "cpu_sampling_ratio": cpu["sampling"] / cpu["bare"],
        "cpu_amortised_ratio": amortised(cpu),
        "sample_every": DEFAULT_SAMPLE_EVERY,
        "monitor_ms_per_step": 1e3 / med["monitored"] - 1e3 / med["bare"],
        # The log call alone, timed inside the step (CPU time): the low-noise figure on a loaded machine.
        "log_call_cpu_ms": 1e3 * statistics.median(LOG_CALLS),
        "log_call_ratio": (1 / cpu["bare"]) / (1 / cpu["bare"] + statistics.median(LOG_CALLS)),
        "bridge_grad_stats_ms": bridge_ms,
        "torch_clip_grad_norm_ms": torch_ms,
        "rounds": args.rounds, "steps_per_round": args.steps, "torch_threads": args.threads,
        "load_average": list(os.getloadavg()),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
