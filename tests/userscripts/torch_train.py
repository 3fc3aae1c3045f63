"""A small PyTorch training script of the kind users bring: synthetic classification, its own loop,
argparse flags. Logs through the ntjax bridge into $NTJAX_RUN_DIR. `--nan-at N` injects a NaN loss."""
import argparse
import math
import os

import torch

from ntjax.bridges.torch import TorchMonitor

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--steps", type=int, default=60)
p.add_argument("--width", type=int, default=32)
p.add_argument("--eval-every", type=int, default=10)
p.add_argument("--nan-at", type=int, default=-1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--out", default=None)
args = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(0)  # the data is fixed; --seed moves the init only
classes, dim, n = 4, 16, 512
centers = torch.randn(classes, dim) * 1.5
y = torch.randint(0, classes, (n,))
x = centers[y] + torch.randn(n, dim)
x_eval, y_eval, x_train, y_train = x[:128], y[:128], x[128:], y[128:]
torch.manual_seed(args.seed)
model = torch.nn.Sequential(torch.nn.Linear(dim, args.width), torch.nn.ReLU(), torch.nn.Linear(args.width, classes))
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
monitor = TorchMonitor(model, opt, log_dir=args.out or os.environ["NTJAX_RUN_DIR"], sample_every=20)
gen = torch.Generator().manual_seed(1)
for step in range(1, args.steps + 1):
    idx = torch.randint(0, x_train.shape[0], (32,), generator=gen)
    loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
    if step == args.nan_at:
        loss = loss * float("nan")
    opt.zero_grad()
    loss.backward()
    monitor.log(step, loss)
    opt.step()
    if step % args.eval_every == 0 or step == args.steps:
        with torch.no_grad():
            logits = model(x_eval)
            ev = torch.nn.functional.cross_entropy(logits, y_eval).item()
            acc = (logits.argmax(-1) == y_eval).float().mean().item()
        monitor.log_eval(step, {"loss": ev if math.isfinite(ev) else float("nan"), "accuracy": acc})
        print(f"step {step} eval loss {ev:.4f}", flush=True)
    if args.sleep:
        import time
        time.sleep(args.sleep)
monitor.close()
