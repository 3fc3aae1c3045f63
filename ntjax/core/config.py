"""One typed, frozen training config with validation and smart defaults derived from model size.

Every default lives here (not scattered `get(key, default)` calls). `resolve(cfg)` fills the values left
as None (peak LR, warmup, micro-batch) from the rules below, so a run's `config.json` records what was
actually used.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError

SCHEDULES = ("cosine", "linear", "wsd", "constant")
OPTIMIZERS = ("adamw", "adam", "sgd", "lion", "adafactor", "muon")
ON_INSTABILITY = ("stop", "skip", "rollback")
PARAMETRIZATIONS = ("sp", "mup")  # standard, or maximal-update (ntjax.core.mup)
MUP_OPTIMIZERS = ("adamw", "adam", "lion")  # the Adam-like updates whose μP rules ntjax.core.mup implements

# GPT-3's peak learning rates by model size (Brown et al. 2020, Table 2.1): params -> peak LR.
GPT3_LR_TABLE = ((125e6, 6.0e-4), (350e6, 3.0e-4), (760e6, 2.5e-4), (1.3e9, 2.0e-4), (2.7e9, 1.6e-4),
                 (6.7e9, 1.2e-4), (13e9, 1.0e-4), (175e9, 0.6e-4))
# The table's least-squares slope in log-log (-0.31), anchored at GPT-3 Small (125M, 6e-4).
LR_REF, N_REF, LR_EXPONENT = 6.0e-4, 125e6, -0.31
# Small byte-level models tolerate larger LRs, but above ~3e-3 AdamW on a 4-layer GPT starts to spike.
LR_MAX, LR_MIN = 3e-3, 1e-5


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A GPT-style decoder-only transformer (pre-LN, learned positions, tied embeddings)."""

    vocab_size: int = 256
    seq_len: int = 128
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    qk_norm: bool = False

    def n_params(self, embedding: bool = True) -> int:
        """Parameter count: 12·L·d² (+ biases and norms) plus, with `embedding`, the token and
        position tables. Non-embedding N is what Kaplan et al. 2020 scale with."""
        d, L = self.d_model, self.n_layers
        per_layer = 4 * d * d + 4 * d + 2 * self.mlp_ratio * d * d + self.mlp_ratio * d + d + 4 * d
        if self.qk_norm:
            per_layer += 2 * (d // self.n_heads)
        body = L * per_layer + 2 * d
        return body + (self.vocab_size * d + self.seq_len * d if embedding else 0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs. None means "derive it" (see `resolve`)."""

    preset: str = "default"
    model: ModelConfig = ModelConfig()
    steps: int = 1500
    batch_size: int = 16  # effective (global) batch, in sequences
    micro_batch_size: int | None = None  # per forward pass; None -> what fits (gradient accumulation)
    lr: float | None = None  # peak; None -> smart_lr(model size)
    min_lr_ratio: float = 0.1  # final LR as a fraction of peak (cosine/linear/wsd)
    warmup: int | None = None  # steps; None -> smart_warmup
    schedule: str = "cosine"
    decay_fraction: float = 0.2  # WSD: the share of steps spent decaying
    optimizer: str = "adamw"
    b1: float = 0.9
    b2: float = 0.95  # the LLM default (GPT-3, Chinchilla); 0.999 needs far longer warmup
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float = 1.0  # 0 disables clipping
    z_loss: float = 0.0  # PaLM's auxiliary log-partition loss weight (1e-4 in Chowdhery et al. 2022)
    eval_every: int = 250
    eval_batches: int = 8
    eval_fraction: float = 0.1  # held-out tail of the corpus when no eval set is given
    ckpt_every: int = 500
    keep_ckpts: int = 3
    log: tuple[str, ...] = ("jsonl",)
    probe_every: int = 50  # the expensive probes (activation stats, attention entropy, histograms)
    seed: int = 0
    on_instability: str = "stop"
    spike_threshold: float = 6.0  # spike guard: robust z-score (MAD units) that skips an update
    spike_window: int = 32
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    spec: str | None = None  # path to a user spec module (model, loss, data)
    init_from: str | None = None  # a checkpoint (run folder) to start the weights from
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = ("attn", "mlp")
    data: str | None = None  # a text file to train on instead of the embedded corpus
    mesh: str | None = None  # e.g. "data=8" or "data=2,fsdp=4"
    parametrization: str = "sp"  # "mup": μP init, LR multipliers and output/attention scales (ntjax.core.mup)
    base_width: int | None = None  # μP: the width the hyperparameters were tuned at; None -> d_model (ignored by SP)

    @property
    def accum_steps(self) -> int:
        return self.batch_size // (self.micro_batch_size or self.batch_size)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len


PRESETS: dict[str, TrainConfig] = {
    # For tests and smoke runs: seconds on a laptop core.
    "tiny": TrainConfig(preset="tiny", model=ModelConfig(seq_len=32, d_model=32, n_layers=2, n_heads=2),
                        steps=60, batch_size=8, eval_every=15, eval_batches=2, ckpt_every=30, probe_every=10),
    # The main job: ~0.8M parameters, byte-level, a few minutes on 2 CPU cores.
    "default": TrainConfig(),
    # A larger member of the same family, for scaling studies and benchmarks.
    "small": TrainConfig(preset="small", model=ModelConfig(seq_len=256, d_model=256, n_layers=6, n_heads=8),
                         steps=3000, batch_size=32),
}


def preset(name: str) -> TrainConfig:
    """The named preset (`tiny`, `default`, `small`)."""
    if name not in PRESETS:
        raise NtjaxError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def smart_lr(n_params: int) -> float:
    """Peak LR for AdamW by model size: larger models need lower peak LRs.

    Rule: lr = 6e-4 · (N / 125M)^-0.31, the log-log slope of GPT-3's sizes and peak LRs (Brown et al. 2020,
    Table 2.1: 6e-4 at 125M down to 0.6e-4 at 175B), clipped to [1e-5, 3e-3] since tiny models stop
    benefiting (and start spiking) above ~3e-3.
    """
    lr = LR_REF * (max(n_params, 1) / N_REF) ** LR_EXPONENT
    return float(min(max(lr, LR_MIN), LR_MAX))


def smart_warmup(n_params: int, steps: int, b2: float) -> int:
    """Warmup steps: at least 2/(1-β2) (Ma & Yarats 2021: the steps Adam's second-moment estimate needs,
    40 for β2=0.95), and a share of the run that grows with model size: 1% at 1M params plus 1% per
    decade, capped at 10% (GPT-3 warmed up over 375M tokens; bigger models were warmed longer).
    Never more than a quarter of the run.
    """
    share = min(0.10, 0.01 + 0.01 * max(0.0, math.log10(max(n_params, 1) / 1e6)))
    warm = max(2.0 / (1.0 - b2), share * steps)
    return int(min(round(warm), max(steps // 4, 1)))


def micro_batch_that_fits(cfg: TrainConfig, memory_bytes: float) -> int:
    """The largest divisor of the batch whose activations fit in half of `memory_bytes`.

    Activation memory per sequence ≈ L·T·(34·d + 5·h·T) bytes in 16-bit (Korthikanti et al. 2022, eq. 2),
    doubled for float32.
    """
    m = cfg.model
    per_seq = 2 * m.n_layers * m.seq_len * (34 * m.d_model + 5 * m.n_heads * m.seq_len)
    fits = max(1, int(0.5 * memory_bytes // max(per_seq, 1)))
    return max(d for d in range(1, cfg.batch_size + 1) if cfg.batch_size % d == 0 and d <= fits)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise NtjaxError with one clear line for a config that cannot train; return it otherwise."""
    m = cfg.model
    checks = [
        (cfg.steps > 0, f"steps must be positive (got {cfg.steps})"),
        (cfg.batch_size > 0, f"batch size must be positive (got {cfg.batch_size})"),
        (cfg.lr is None or cfg.lr > 0, f"learning rate must be positive (got {cfg.lr})"),
        (cfg.warmup is None or 0 <= cfg.warmup <= cfg.steps,
         f"warmup ({cfg.warmup}) must lie between 0 and the number of steps ({cfg.steps})"),
        (cfg.micro_batch_size is None or (0 < cfg.micro_batch_size <= cfg.batch_size
                                          and cfg.batch_size % cfg.micro_batch_size == 0),
         f"batch size {cfg.batch_size} is not divisible by micro-batch size {cfg.micro_batch_size}"),
        (cfg.schedule in SCHEDULES, f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}"),
        (cfg.optimizer in OPTIMIZERS, f"unknown optimizer {cfg.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"),
        (cfg.on_instability in ON_INSTABILITY,
         f"--on-instability must be one of {', '.join(ON_INSTABILITY)} (got {cfg.on_instability!r})"),
        (0 <= cfg.min_lr_ratio <= 1, f"min LR ratio must lie in [0, 1] (got {cfg.min_lr_ratio})"),
        (0 < cfg.decay_fraction <= 1, f"WSD decay fraction must lie in (0, 1] (got {cfg.decay_fraction})"),
        (0 <= cfg.b1 < 1 and 0 <= cfg.b2 < 1, f"betas must lie in [0, 1) (got {cfg.b1}, {cfg.b2})"),
        (cfg.eps > 0, f"eps must be positive (got {cfg.eps})"),
        (cfg.weight_decay >= 0, f"weight decay must be non-negative (got {cfg.weight_decay})"),
        (cfg.clip_norm >= 0, f"clip norm must be non-negative (got {cfg.clip_norm})"),
        (cfg.eval_every > 0 and cfg.ckpt_every > 0 and cfg.probe_every > 0,
         "eval, checkpoint and probe intervals must be positive"),
        (0 < cfg.eval_fraction < 0.5, f"eval fraction must lie in (0, 0.5) (got {cfg.eval_fraction})"),
        (m.d_model % m.n_heads == 0, f"d_model {m.d_model} is not divisible by n_heads {m.n_heads}"),
        (min(m.d_model, m.n_layers, m.n_heads, m.seq_len, m.vocab_size) > 0, "model sizes must be positive"),
        (cfg.lora_rank >= 0, f"LoRA rank must be non-negative (got {cfg.lora_rank})"),
        (cfg.lora_rank == 0 or cfg.init_from, "--lora-rank needs --init-from CHECKPOINT (LoRA adapts a trained model)"),
        (cfg.parametrization in PARAMETRIZATIONS,
         f"unknown parametrization {cfg.parametrization!r}; choose from {', '.join(PARAMETRIZATIONS)}"),
        (cfg.base_width is None or cfg.base_width > 0, f"base width must be positive (got {cfg.base_width})"),
        (cfg.parametrization != "mup" or cfg.optimizer in MUP_OPTIMIZERS,
         f"μP's LR rules are implemented for Adam-like optimizers ({', '.join(MUP_OPTIMIZERS)}), "
         f"not {cfg.optimizer}"),
        (cfg.parametrization != "mup" or cfg.lora_rank == 0, "μP is a parametrization for training from "
         "scratch; LoRA fine-tuning uses --parametrization sp"),
    ]
    for ok, message in checks:
        if not ok:
            raise NtjaxError(message)
    return cfg


def resolve(cfg: TrainConfig, memory_bytes: float = 4 * 2**30) -> TrainConfig:
    """Validate, then fill the derived fields: peak LR (under μP: the base width's), warmup and micro-batch."""
    validate(cfg)
    n = cfg.model.n_params(embedding=False)
    # Under μP the LR is width-free: the smart LR belongs to the base width, where it would be tuned.
    n_lr = n if cfg.parametrization != "mup" or not cfg.base_width else \
        dataclasses.replace(cfg.model, d_model=cfg.base_width).n_params(embedding=False)
    lr = cfg.lr if cfg.lr is not None else smart_lr(n_lr)
    warmup = cfg.warmup if cfg.warmup is not None else smart_warmup(n, cfg.steps, cfg.b2)
    micro = cfg.micro_batch_size or micro_batch_that_fits(cfg, memory_bytes)
    return validate(dataclasses.replace(cfg, lr=lr, warmup=warmup, micro_batch_size=micro))


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """Inverse of `to_dict` (unknown keys are an error: a config.json from another tool is not ours)."""
    if not isinstance(d, dict):
        raise NtjaxError(f"a config must be a JSON object of settings, not a {type(d).__name__}")
    d = dict(d)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(d) - fields
    if unknown:
        raise NtjaxError(f"config has unknown field(s): {', '.join(sorted(unknown))}")
    model = d.pop("model", {})
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    if not isinstance(model, dict) or set(model) - model_fields:
        bad = sorted(set(model) - model_fields) if isinstance(model, dict) else [type(model).__name__]
        raise NtjaxError(f"config has unknown model field(s): {', '.join(map(str, bad))}")
    model = ModelConfig(**model)
    for key in ("log", "lora_targets"):
        if key in d:
            d[key] = tuple(d[key])
    return TrainConfig(model=model, **d)


def load(path: str | Path) -> TrainConfig:
    """Read a config.json written by `ntjax train` (its `train` section, or the whole file)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NtjaxError(f"cannot read config {path}: {e}") from None
    if not isinstance(d, dict):
        raise NtjaxError(f"config {path} holds a JSON {type(d).__name__}, not an object of settings")
    try:
        return from_dict(d.get("train", d))
    except NtjaxError as e:
        raise NtjaxError(f"config {path}: {e}") from None
    except (TypeError, ValueError) as e:  # a value of the wrong type for its field
        raise NtjaxError(f"config {path} is not a valid ntjax config: {e}") from None
