"""A small PyTorch transformer language model on ntjax's embedded corpus, monitored by `TorchMonitor`.

    python examples/torch_bridge.py --out runs/torch --steps 300
    ntjax curves runs/torch
    ntjax debug runs/torch

The three monitor lines are marked `# ntjax`; everything else is an ordinary PyTorch loop.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from ntjax.bridges.torch import TorchMonitor
from ntjax.core.data import load_corpus


class TinyLM(torch.nn.Module):
    """A byte-level causal transformer (pre-norm encoder blocks with a causal mask)."""

    def __init__(self, width: int, layers: int, heads: int, seq_len: int, vocab: int = 256):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, width)
        self.pos = torch.nn.Embedding(seq_len, width)
        block = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True,
                                                 norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocab)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(seq_len))

    def forward(self, tokens_BxT: torch.Tensor) -> torch.Tensor:
        t = tokens_BxT.shape[1]
        x_BxTxD = self.tok(tokens_BxT) + self.pos(torch.arange(t, device=tokens_BxT.device))
        x_BxTxD = self.blocks(x_BxTxD, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(x_BxTxD))


def batches(tokens: np.ndarray, batch: int, seq_len: int, seed: int):
    """Endless random windows (inputs, next-byte targets) from `tokens`."""
    rng = np.random.default_rng(seed)
    while True:
        starts = rng.integers(0, len(tokens) - seq_len - 1, batch)
        window = torch.from_numpy(np.stack([tokens[s:s + seq_len + 1] for s in starts]).astype(np.int64))
        yield window[:, :-1], window[:, 1:]


def lm_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))


@torch.no_grad()
def evaluate(model: torch.nn.Module, eval_batches: list) -> float:
    model.eval()
    loss = float(np.mean([float(lm_loss(model, x, y)) for x, y in eval_batches]))
    model.train()
    return loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/torch_bridge")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--sample-every", type=int, default=25)
    p.add_argument("--log", default="jsonl", help="comma list of jsonl,csv,tensorboard,wandb")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    tokens = np.frombuffer(load_corpus(), dtype=np.uint8)
    split = int(0.9 * len(tokens))
    train_batches = batches(tokens[:split], args.batch_size, args.seq_len, args.seed)
    eval_source = batches(tokens[split:], args.batch_size, args.seq_len, args.seed + 1)
    eval_batches = [next(eval_source) for _ in range(4)]

    model = TinyLM(args.width, args.layers, args.heads, args.seq_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warmup if s < warmup else
                                                 0.5 * (1 + math.cos(math.pi * (s - warmup)
                                                                     / max(1, args.steps - warmup))))
    monitor = TorchMonitor(model, optimizer, log_dir=args.out, backends=args.log.split(","),  # ntjax
                           sample_every=args.sample_every)

    for step in range(args.steps):
        x, y = next(train_batches)
        loss = lm_loss(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        monitor.log(step, loss)  # ntjax: after backward, before step
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            eval_loss = evaluate(model, eval_batches)
            monitor.log_eval(step + 1, {"loss": eval_loss, "ppl": math.exp(eval_loss)})
            print(f"step {step + 1}: train loss {loss.item():.3f}, eval loss {eval_loss:.3f}")
    monitor.close()  # ntjax
    print(f"wrote {args.out}/metrics.jsonl and config.json; next: ntjax curves {args.out}")


if __name__ == "__main__":
    main()
