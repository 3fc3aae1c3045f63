"""Cost of `TorchMonitor` on a small PyTorch transformer: training steps/s bare, monitored on ordinary
steps, and monitored on sampled steps (activations, attention entropy, update ratios every step), plus
the gradient-statistics call alone against torch's own `clip_grad_norm_` total on the same gradients.

    python benchmarks/torch_monitor_overhead.py --json

The three loops run in interleaved rounds in one process; each reports 1 / its median step time, so
a busy machine slows all of them alike and a load spike does not decide the ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from ntjax.bridges import stats
from ntjax.bridges.torch import TorchMonitor, to_jax


def small_transformer(width: int, layers: int, seq_len: int, vocab: int = 256) -> torch.nn.Module:
    torch.manual_seed(0)
    block = torch.nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
    return torch.nn.Sequential(torch.nn.Embedding(vocab, width),
                               torch.nn.TransformerEncoder(block, layers, enable_nested_tensor=False),
                               torch.nn.Linear(width, vocab))


def step_times(model, opt, data, steps: int, monitor: TorchMonitor | None, start: int) -> list[float]:
    """Seconds of each training step (forward, backward, monitor, optimizer)."""
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        x = data[i % len(data)]
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 256), x.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if monitor is not None:
            monitor.log(start + i, loss)
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def grad_stats_ms(model: torch.nn.Module, repeats: int) -> tuple[float, float]:
    """Milliseconds per call: the bridge's DLPack + jitted statistics, and torch's own total norm."""
    params = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    stats.grad_metrics({n: to_jax(p.grad) for n, p in params}, per_layer=False)  # compile
    t0 = time.perf_counter()
    for _ in range(repeats):
        stats.grad_metrics({n: to_jax(p.grad) for n, p in params}, per_layer=False)
    bridge = (time.perf_counter() - t0) / repeats * 1e3
    t0 = time.perf_counter()
    for _ in range(repeats):
        float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
    return bridge, (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="steps per round of each loop")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: stable timings on a shared machine, where OpenMP "
                        "threads spinning against other processes slowed steps ~20x here)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = small_transformer(args.width, args.layers, args.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 256, (args.batch_size, args.seq_len), generator=g) for _ in range(8)]
    sample_every = {"bare": None, "monitored": 10**9, "sampling": 1}
    times: dict[str, list[float]] = {k: [] for k in sample_every}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds + 1):  # round 0 warms every loop up (jit compilation) and is discarded
            for kind, every in sample_every.items():
                monitor = None if every is None else TorchMonitor(model, opt, f"{tmp}/{kind}{r}", sample_every=every)
                if monitor is not None:
                    step_times(model, opt, data, 1, monitor, start=0)  # the first logged step is always sampled
                took = step_times(model, opt, data, args.steps, monitor, start=1)
                if monitor is not None:
                    monitor.close()
                if r:
                    times[kind].extend(took)
    bridge_ms, torch_ms = grad_stats_ms(model, 50)
    med = {k: 1.0 / statistics.median(v) for k, v in times.items()}  # the median step: robust to load spikes
    out = {
        "model_parameters": sum(p.numel() for p in model.parameters()),
        "parameter_tensors": len(list(model.parameters())),
        "batch": [args.batch_size, args.seq_len],
        "bare_steps_per_s": med["bare"],
        "monitored_steps_per_s": med["monitored"],
        "sampling_steps_per_s": med["sampling"],
        "ratio": med["monitored"] / med["bare"],
        "sampling_ratio": med["sampling"] / med["bare"],
        "monitor_ms_per_step": 1e3 / med["monitored"] - 1e3 / med["bare"],
        "bridge_grad_stats_ms": bridge_ms,
        "torch_clip_grad_norm_ms": torch_ms,
        "rounds": args.rounds, "steps_per_round": args.steps, "torch_threads": args.threads,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
