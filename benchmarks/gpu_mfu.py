"""Model FLOPs utilisation of the default GPT family at GPT-2-small size, bf16, on a GPU.

    python benchmarks/gpu_mfu.py --json [--batch-size 16] [--vocab 50257]

GPT-2 small: d=768, 12 layers, 12 heads, T=1024; with the default vocabulary of 50257 (GPT-2's BPE size)
the model has 124.4M parameters, as GPT-2 small does; `--vocab 256` gives ntjax's byte-level model.
Tokens are random ids (the speed does not depend on them). Mixed precision, local to this benchmark:
float32 master weights and optimizer state, every matmul of the forward and backward passes in bfloat16
(the modules' compute dtype is set to bf16 inside the step; the library's defaults are untouched).

FLOPs per token: 6·N + 12·L·T·d (`ntjax.core.flops.flops_per_token`; Kaplan et al. 2020 and PaLM's
appendix B), with N the non-embedding parameters plus the output projection V·d, a real matmul since
the embeddings are tied. MFU = tokens/s × FLOPs per token / the device's dense bf16 peak
(`ntjax.core.flops.PEAK_FLOPS`, picked from the device kind; H100 SXM 989 TFLOP/s).
The bare step (loss and update) and the instrumented step (the trainer's every-step metrics) run in
interleaved rounds; each round dispatches `--steps` steps and waits for the last, so the GPU stays busy.

Without a GPU it prints `{"skipped": "no GPU", ...}` and exits 0; `--any-device` runs anyway (with
`--quick`, a small model on CPU: a smoke test of this script, not a measurement).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from common import Runner, Stopwatch, Timing, emit, interleaved, machine, parser, spread, steps_per_s
from flax import nnx

from ntjax.core import flops
from ntjax.core.config import ModelConfig, TrainConfig
from ntjax.core.model import GPT
from ntjax.core.optimizer import make_optimizer
from ntjax.core.schedules import make_schedule
from ntjax.core.step import init_state, lm_loss, make_bare_train_step, make_train_step

GPT2_SMALL = ModelConfig(vocab_size=50257, seq_len=1024, d_model=768, n_layers=12, n_heads=12)
QUICK = ModelConfig(vocab_size=256, seq_len=64, d_model=64, n_layers=2, n_heads=2)
# `device_kind` substrings (lower case) -> `PEAK_FLOPS` keys; the first match wins, so variants come
# before their family's name. None: a known chip whose peak is not in the table (pass --peak-tflops).
DEVICE_KINDS = (("h100 pcie", "h100-pcie"), ("h100 nvl", None), ("gh200", "h200"), ("h200", "h200"),
                ("h100", "h100"), ("b200", "b200"), ("a100", "a100"), ("a10g", "a10g"), ("l40", None),
                ("l4", "l4"), ("v100", "v100"), ("t4", "t4"), ("mi300x", "mi300x"))


def peak_key(device_kind: str) -> str | None:
    """The `PEAK_FLOPS` key of a JAX `device_kind` ("NVIDIA H100 80GB HBM3" -> "h100"), or None (unknown)."""
    kind = device_kind.lower()
    return next((key for sub, key in DEVICE_KINDS if sub in kind), None)


def bf16_compute(loss_fn):
    """Wrap a loss so the model computes in bfloat16 on its float32 parameters: flax's mixed precision.

    Every submodule with a `dtype` (Linear, Embed, LayerNorm) is set to bf16 on the model merged inside
    the step; it casts its float32 parameters at use, so gradients come back float32 (LayerNorm still
    takes its statistics in float32, and `lm_loss` its softmax).
    """
    def loss(model: nnx.Module, batch: jax.Array, probes: bool = False):
        for _, module in nnx.iter_modules(model):
            if hasattr(module, "dtype"):
                module.dtype = jnp.bfloat16
        return loss_fn(model, batch, probes)
    return loss


def flops_per_token(m: ModelConfig) -> float:
    """6·(non-embedding params + the tied output projection) + 12·L·T·d."""
    return flops.flops_per_token(m.n_params(embedding=False) + m.vocab_size * m.d_model, m.n_layers, m.seq_len,
                                 m.d_model)


def pipelined(step_fn, state, batches: list[jax.Array]) -> Runner:
    """A runner that dispatches `n` steps back to back and waits for the last: one sample per call."""
    box = [state]

    def run(n: int) -> list[Timing]:
        clock = Stopwatch()
        state = box[0]
        for i in range(n):
            state, _ = step_fn(state, batches[i % len(batches)])
        jax.block_until_ready(state)
        box[0] = state
        return [clock.per_step(n)]
    return run


def measure(m: ModelConfig, batch_size: int, rounds: int, steps: int, peak: float | None) -> dict:
    """Tokens/s and MFU of the bare and instrumented bf16 train steps of model `m`."""
    cfg = TrainConfig(model=m, batch_size=batch_size, micro_batch_size=batch_size, lr=6e-4, warmup=100, steps=10_000)
    model = GPT(m, nnx.Rngs(0))
    schedule = make_schedule(cfg.schedule, cfg.lr, cfg.steps, cfg.warmup, cfg.min_lr_ratio, cfg.decay_fraction)
    tx = make_optimizer(cfg, schedule, nnx.state(model, nnx.Param))
    graphdef, state = init_state(model, tx)
    loss_fn = bf16_compute(lm_loss)
    step_fns = {"bare": make_bare_train_step(graphdef, tx, loss_fn=loss_fn),
                "instrumented": make_train_step(graphdef, tx, schedule, loss_fn=loss_fn)}
    rng = np.random.default_rng(0)
    batches = [jnp.asarray(rng.integers(0, m.vocab_size, (batch_size, m.seq_len + 1), dtype=np.int32))
               for _ in range(2)]
    samples = interleaved({k: pipelined(f, state, batches) for k, f in step_fns.items()}, rounds, steps)
    per_token = flops_per_token(m)
    out: dict = {"model": dataclasses.asdict(m), "n_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
                 "batch": [batch_size, m.seq_len], "tokens_per_step": batch_size * m.seq_len,
                 "flops_per_token": per_token, "dtype": "bfloat16 compute, float32 master weights"}
    for k, v in samples.items():
        tokens_per_s = steps_per_s(v) * batch_size * m.seq_len
        out[f"{k}_steps_per_s"] = steps_per_s(v)
        out[f"{k}_tokens_per_s"] = tokens_per_s
        out[f"{k}_tflops_per_s"] = tokens_per_s * per_token / 1e12
        out[f"{k}_mfu"] = tokens_per_s * per_token / peak if peak else None
        out[f"{k}_relative_iqr"] = spread(v)
    out["ratio"] = out["instrumented_steps_per_s"] / out["bare_steps_per_s"]
    out["mfu"] = out["instrumented_mfu"]
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step (16 × 1024 tokens fits 80 GB)")
    p.add_argument("--vocab", type=int, default=GPT2_SMALL.vocab_size, help="50257 (GPT-2) or 256 (byte-level)")
    p.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    p.add_argument("--any-device", action="store_true", help="run without a GPU too (a smoke test)")
    args = p.parse_args()
    dev = jax.devices()[0]
    if dev.platform != "gpu" and not args.any_device:
        emit({"skipped": "no GPU", "machine": machine()}, args.json)
        return
    key = peak_key(dev.device_kind)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (flops.PEAK_FLOPS[key] if key else None)
    m = QUICK if args.quick else dataclasses.replace(GPT2_SMALL, vocab_size=args.vocab)
    batch_size = 4 if args.quick else args.batch_size
    rounds, steps = args.rounds or (2 if args.quick else 6), args.steps or (2 if args.quick else 10)
    out = measure(m, batch_size, rounds, steps, peak)
    out.update(device_kind=dev.device_kind, peak_key=key, peak_flops=peak, rounds=rounds, steps_per_round=steps,
               machine=machine())
    emit(out, args.json)


if __name__ == "__main__":
    main()
