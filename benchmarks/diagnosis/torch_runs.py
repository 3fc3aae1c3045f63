"""Small PyTorch training runs with planted faults, logged through `ntjax.bridges.torch.TorchMonitor`.

Four model families on CPU-sized data: a byte-level transformer LM and an LSTM LM (on the text of
CPython's `pydoc_data.topics`), an MLP classifier (labels from a fixed random teacher network) and a CNN
classifier (noisy shifted class templates). One training loop; a `RunSpec` says the family, optimizer,
settings and which fault to plant. Each run takes a few seconds on one CPU thread.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SEQ = 32  # LM context (bytes)
K_MLP, K_CNN = 8, 6  # classes
PAD = 0  # the padding byte of the padded-LM runs


@dataclasses.dataclass
class RunSpec:
    family: str  # transformer | lstm | mlp | cnn
    optimizer: str = "adamw"  # adamw | sgd | lion
    lr: float = 1e-3
    steps: int = 200
    batch: int = 32
    seed: int = 0
    warmup: int = 0
    schedule: str = "constant"  # constant | cosine
    weight_decay: float = 0.0
    momentum: float = 0.9
    clip: float = 0.0
    eval_every: int = 20
    # model shape
    width: int = 64
    depth: int = 2
    post_ln: bool = False
    residual: bool = True
    activation: str = "relu"
    # planted faults
    init_scale: float | None = None  # multiply every weight matrix (0: all weights zero)
    out_init_scale: float | None = None  # multiply the output layer only
    hidden_bias: float | None = None  # constant hidden bias (very negative: dead ReLUs)
    labels: str = "clean"  # clean | shuffled | noisy
    noise_fraction: float = 0.4
    repeat_batch: bool = False
    eval_leak: bool = False
    n_train: int | None = None  # examples (classifiers) or bytes (LMs) of training data
    fp16: bool = False
    restart_at: int | None = None  # a "resume" at this step that restarts the LR schedule from zero
    accum: int = 1
    accum_divide: bool = True
    pad_loss: bool = False  # padded LM batches: True averages the loss over padding too


# ---- data -----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def corpus() -> np.ndarray:
    from pydoc_data.topics import topics
    text = "\n".join(topics[k] for k in sorted(topics))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def lm_data(spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    data = corpus()
    n_eval = len(data) // 10
    train, held = data[:-n_eval], data[-n_eval:]
    if spec.n_train:
        train = train[:spec.n_train]
    if spec.eval_leak:  # the "held-out" text is a slice of the training text
        held = train[:n_eval]
    return train, held


def teacher_data(spec: RunSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MLP task: 20-d Gaussian inputs, labels = argmax of a fixed random two-layer teacher."""
    t = np.random.default_rng(1234)
    w1, w2 = t.normal(size=(20, 32)), t.normal(size=(32, K_MLP))
    x = np.random.default_rng(seed).normal(size=(n, 20)).astype(np.float32)
    y = np.argmax(np.tanh(x @ w1) @ w2, axis=1)
    return x, y


def image_data(spec: RunSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CNN task: 12x12 images, each a class template (smooth random pattern) shifted by up to 2 pixels,
    plus noise."""
    t = np.random.default_rng(99)
    base = t.normal(size=(K_CNN, 16, 16))
    kernel = np.outer(*(np.hanning(5),) * 2)
    templates = np.stack([np.real(np.fft.ifft2(np.fft.fft2(b) * np.fft.fft2(kernel, s=b.shape))) for b in base])
    templates /= templates.std(axis=(1, 2), keepdims=True)
    r = np.random.default_rng(seed)
    y = r.integers(0, K_CNN, n)
    dx, dy = r.integers(0, 5, n), r.integers(0, 5, n)
    x = np.stack([templates[c, i:i + 12, j:j + 12] for c, i, j in zip(y, dx, dy)])
    x = x + 1.0 * r.normal(size=x.shape)
    return x[:, None].astype(np.float32), y


def classifier_data(spec: RunSpec) -> tuple[tuple, tuple]:
    make = teacher_data if spec.family == "mlp" else image_data
    n = spec.n_train or 4096
    x, y = make(spec, n, seed=10 + spec.seed)
    xe, ye = make(spec, 1024, seed=5000)
    r = np.random.default_rng(77 + spec.seed)
    k = K_MLP if spec.family == "mlp" else K_CNN
    if spec.labels == "shuffled":
        y = r.permutation(y)
    elif spec.labels == "noisy":
        flip = r.random(len(y)) < spec.noise_fraction
        y = np.where(flip, r.integers(0, k, len(y)), y)
    if spec.eval_leak:
        xe, ye = x[:1024], y[:1024]
    return (x, y), (xe, ye)


# ---- models ---------------------------------------------------------------------------------------

class TinyTransformerLM(nn.Module):
    def __init__(self, spec: RunSpec):
        super().__init__()
        d = spec.width
        self.embed = nn.Embedding(256, d)
        self.pos = nn.Parameter(torch.randn(SEQ, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=4 * d, dropout=0.0, batch_first=True,
                                           norm_first=not spec.post_ln)
        self.blocks = nn.TransformerEncoder(layer, spec.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d) if not spec.post_ln else nn.Identity()
        self.head = nn.Linear(d, 256)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(SEQ), persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.embed(idx) + self.pos[:t]
        x = self.blocks(x, mask=self.mask[:t, :t].to(x.dtype), is_causal=True)
        return self.head(self.norm(x))


class LSTMLM(nn.Module):
    def __init__(self, spec: RunSpec):
        super().__init__()
        self.embed = nn.Embedding(256, spec.width)
        self.lstm = nn.LSTM(spec.width, spec.width, num_layers=spec.depth, batch_first=True)
        self.head = nn.Linear(spec.width, 256)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(idx))[0])


class Block(nn.Module):
    """Linear + activation (+ residual when the spec has them)."""

    def __init__(self, width: int, act: str, residual: bool):
        super().__init__()
        self.fc, self.act, self.residual = nn.Linear(width, width), act, residual

    def forward(self, x):
        h = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[self.act](self.fc(x))
        return x + h if self.residual else h


class MLP(nn.Module):
    def __init__(self, spec: RunSpec):
        super().__init__()
        self.inp = nn.Linear(20, spec.width)
        self.blocks = nn.Sequential(*[Block(spec.width, spec.activation, spec.residual) for _ in range(spec.depth)])
        self.head = nn.Linear(spec.width, K_MLP)
        self.act = spec.activation

    def forward(self, x):
        h = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[self.act](self.inp(x))
        return self.head(self.blocks(h))


class CNN(nn.Module):
    def __init__(self, spec: RunSpec):
        super().__init__()
        c = max(1, spec.width // 4)
        self.conv1 = nn.Conv2d(1, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.head = nn.Linear(2 * c * 9, K_CNN)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 6x6
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 3x3
        return self.head(x.flatten(1))


def build(spec: RunSpec) -> nn.Module:
    torch.manual_seed(spec.seed)
    model = {"transformer": TinyTransformerLM, "lstm": LSTMLM, "mlp": MLP, "cnn": CNN}[spec.family](spec)
    with torch.no_grad():
        if spec.init_scale is not None:
            for name, p in model.named_parameters():
                if p.dim() >= 2 or spec.init_scale == 0:
                    p.mul_(spec.init_scale)
        if spec.out_init_scale is not None:
            model.head.weight.mul_(spec.out_init_scale)
        if spec.hidden_bias is not None:
            for name, p in model.named_parameters():
                if name.endswith("bias") and not name.startswith("head"):
                    p.fill_(spec.hidden_bias)
    return model.half() if spec.fp16 else model


# ---- optimizers -----------------------------------------------------------------------------------

class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023): update = sign(β1·m + (1-β1)·g), then m = β2·m + (1-β2)·g; decoupled WD."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(m * b1 + p.grad * (1 - b1)), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


def make_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.optimizer == "lion":
        return Lion(params, lr=spec.lr, weight_decay=spec.weight_decay)
    raise ValueError(spec.optimizer)


def lr_factor(spec: RunSpec, step: int) -> float:
    """Linear warmup, then constant or cosine to 10% over the run."""
    if spec.warmup and step < spec.warmup:
        return (step + 1) / spec.warmup
    if spec.schedule == "cosine":
        frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return 1.0


# ---- batches and loss -----------------------------------------------------------------------------

def lm_batch(tokens: np.ndarray, rng: np.random.Generator, batch: int, pad: bool) -> torch.Tensor:
    starts = rng.integers(0, len(tokens) - SEQ - 1, batch)
    x = tokens[starts[:, None] + np.arange(SEQ + 1)].astype(np.int64)
    if pad:  # documents of random length, right-padded with PAD
        lengths = rng.integers(6, SEQ + 1, batch)
        x[np.arange(SEQ + 1)[None, :] > lengths[:, None]] = PAD
    return torch.from_numpy(x)


def lm_loss(model: nn.Module, batch: torch.Tensor, pad: bool, pad_in_loss: bool) -> torch.Tensor:
    logits = model(batch[:, :-1]).float()
    target = batch[:, 1:]
    if pad and not pad_in_loss:
        return F.cross_entropy(logits.reshape(-1, 256), target.reshape(-1), ignore_index=PAD)
    return F.cross_entropy(logits.reshape(-1, 256), target.reshape(-1))


def train(spec: RunSpec, out: Path, config_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one run into `out` (metrics.jsonl + config.json). Returns a short summary."""
    from ntjax.bridges.torch import TorchMonitor

    torch.set_num_threads(1)
    model = build(spec)
    opt = make_optimizer(spec, model)
    is_lm = spec.family in ("transformer", "lstm")
    pad = spec.pad_loss or (is_lm and config_extra is not None and config_extra.get("padded"))
    if is_lm:
        train_tokens, held = lm_data(spec)
        eval_rng = np.random.default_rng(4242)
        eval_batches = [lm_batch(held, eval_rng, 32, pad) for _ in range(4)]
    else:
        (x, y), (xe, ye) = classifier_data(spec)
        eval_batches = [(torch.from_numpy(xe[i:i + 256]), torch.from_numpy(ye[i:i + 256]))
                        for i in range(0, len(xe), 256)]

    def batch_at(i: int):
        if spec.repeat_batch:  # the loader bug: every step sees the first batch again
            i = 0
        r = np.random.default_rng((spec.seed, i))
        if is_lm:
            return lm_batch(train_tokens, r, spec.batch, pad)
        idx = r.integers(0, len(x), spec.batch)
        return torch.from_numpy(x[idx]), torch.from_numpy(y[idx])

    def loss_of(b) -> torch.Tensor:
        if is_lm:
            return lm_loss(model, b, pad, spec.pad_loss)
        xb, yb = b
        return F.cross_entropy(model(xb.half() if spec.fp16 else xb).float(), yb)

    monitor = TorchMonitor(model, opt, out, sample_every=25, batch_size=spec.batch * spec.accum)
    cfg_path = Path(out) / "config.json"
    sched_origin = 0
    last = float("nan")
    for step in range(spec.steps):
        if spec.restart_at is not None and step == spec.restart_at:
            sched_origin = step  # the resumed job rebuilt its scheduler at step 0
        for g in opt.param_groups:
            g["lr"] = spec.lr * lr_factor(spec, step - sched_origin)
        model.train()
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(spec.accum):
            loss = loss_of(batch_at(step * spec.accum + micro))
            (loss / spec.accum if spec.accum_divide else loss).backward()
            total += float(loss) / spec.accum
        monitor.log(step, total)
        if spec.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
        opt.step()
        last = total
        if step % spec.eval_every == 0 or step == spec.steps - 1:
            model.eval()
            with torch.no_grad():
                ev = float(np.mean([float(loss_of(b)) for b in eval_batches]))
                acc = None
                if not is_lm:
                    acc = float(np.mean([float((model(b[0].half() if spec.fp16 else b[0]).argmax(-1) == b[1])
                                                 .float().mean()) for b in eval_batches]))
            monitor.log_eval(step, {"loss": ev, **({"accuracy": acc} if acc is not None else {})})
        if not math.isfinite(total) and step > 10:
            break  # a diverged run stops, as a user's would
    monitor.close()
    # what the run's own config says (a user's script would log these hyperparameters)
    import json
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    cfg["train"] = {"steps": spec.steps, "batch_size": spec.batch, "warmup": spec.warmup,
                    "schedule": spec.schedule, "lr": spec.lr, "grad_accum": spec.accum, "clip_norm": spec.clip,
                    "dtype": "float16" if spec.fp16 else "float32", **(config_extra or {})}
    cfg_path.write_text(json.dumps(cfg, indent=1, default=str))
    return {"final_train_loss": last, "final_eval_loss": ev}
