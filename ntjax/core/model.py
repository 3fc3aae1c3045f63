"""The default model family: a GPT-style decoder-only transformer in Flax NNX.

Pre-LayerNorm blocks, learned positions, tied input/output embeddings, GPT-2 initialisation (std 0.02,
residual projections scaled by 1/sqrt(2·n_layers), Radford et al. 2019). With `probes=True` the forward
pass also returns per-layer statistics: residual-stream mean/std, attention entropy and the largest
attention logit (the quantity whose growth precedes attention collapse, Dehghani et al. 2023).

Under μP (`ntjax.core.mup`) the model takes `Widths`: attention scores get the extra sqrt(d_head0/d_head) (so they
scale as 1/d_head) and the tied readout's logits the 1/m multiplier; both are skipped when exactly 1, so
μP at base width runs the very same program as SP. μP's init and LR rules live in `ntjax.core.mup`.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ntjax.core.config import ModelConfig
from ntjax.core.mup import Widths
from ntjax.diagnostics.tree_stats import activation_stats, attention_entropy

Stats = dict[str, jax.Array]


def _dense(d_in: int, d_out: int, rngs: nnx.Rngs, std: float = 0.02) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, kernel_init=nnx.initializers.normal(std), rngs=rngs)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, attn_mult: float = 1.0):
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.attn_mult = attn_mult
        self.qkv = _dense(d, 3 * d, rngs)
        self.proj = _dense(d, d, rngs, std=0.02 / math.sqrt(2 * cfg.n_layers))
        head = d // cfg.n_heads
        self.q_norm = nnx.LayerNorm(head, rngs=rngs) if cfg.qk_norm else None
        self.k_norm = nnx.LayerNorm(head, rngs=rngs) if cfg.qk_norm else None

    def __call__(self, x_BxTxD: jax.Array, probes: bool) -> tuple[jax.Array, Stats]:
        B, T, D = x_BxTxD.shape
        H = self.n_heads
        q, k, v = jnp.split(self.qkv(x_BxTxD), 3, axis=-1)
        q_BxHxTxK, k_BxHxTxK, v_BxHxTxK = (t.reshape(B, T, H, D // H).transpose(0, 2, 1, 3) for t in (q, k, v))
        if self.q_norm is not None and self.k_norm is not None:
            q_BxHxTxK, k_BxHxTxK = self.q_norm(q_BxHxTxK), self.k_norm(k_BxHxTxK)
        logits_BxHxTxT = jnp.einsum("bhqk,bhsk->bhqs", q_BxHxTxK, k_BxHxTxK) / math.sqrt(D // H)
        if self.attn_mult != 1.0:  # μP: scores ∝ 1/d_head
            logits_BxHxTxT = logits_BxHxTxT * self.attn_mult
        causal = jnp.tril(jnp.ones((T, T), dtype=bool))
        logits_BxHxTxT = jnp.where(causal, logits_BxHxTxT, jnp.finfo(logits_BxHxTxT.dtype).min)
        probs_BxHxTxT = jax.nn.softmax(logits_BxHxTxT.astype(jnp.float32), axis=-1).astype(x_BxTxD.dtype)
        out_BxTxD = jnp.einsum("bhqs,bhsk->bhqk", probs_BxHxTxT, v_BxHxTxK).transpose(0, 2, 1, 3).reshape(B, T, D)
        stats: Stats = {}
        if probes:
            stats["attn_entropy"] = attention_entropy(probs_BxHxTxT)
            stats["attn_max_logit"] = jnp.max(jnp.where(causal, logits_BxHxTxT, -jnp.inf))
        return self.proj(out_BxTxD), stats


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        hidden = cfg.mlp_ratio * cfg.d_model
        self.fc = _dense(cfg.d_model, hidden, rngs)
        self.proj = _dense(hidden, cfg.d_model, rngs, std=0.02 / math.sqrt(2 * cfg.n_layers))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.proj(jax.nn.gelu(self.fc(x)))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, attn_mult: float = 1.0):
        self.ln1 = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self.attn = Attention(cfg, rngs, attn_mult)
        self.ln2 = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x: jax.Array, probes: bool) -> tuple[jax.Array, Stats]:
        a, stats = self.attn(self.ln1(x), probes)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, stats


class GPT(nnx.Module):
    """tokens [B, T] int32 -> logits [B, T, vocab] (and per-layer stats when probing)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, mup: Widths | None = None):
        self.cfg = cfg
        self.logit_mult = mup.ratio if mup is not None else 1.0
        attn_mult = mup.attn_multiplier if mup is not None else 1.0
        self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
        self.pos_embed = nnx.Embed(cfg.seq_len, cfg.d_model, embedding_init=nnx.initializers.normal(0.01), rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs, attn_mult) for _ in range(cfg.n_layers)])
        self.ln_f = nnx.LayerNorm(cfg.d_model, rngs=rngs)

    def __call__(self, tokens_BxT: jax.Array, probes: bool = False) -> tuple[jax.Array, Stats]:
        T = tokens_BxT.shape[1]
        x = self.embed(tokens_BxT) + self.pos_embed(jnp.arange(T))[None]
        stats: Stats = {}
        for i, block in enumerate(self.blocks):
            x, block_stats = block(x, probes)
            if probes:
                mean, std = activation_stats(x)
                stats.update({f"act_mean/blocks.{i}": mean, f"act_std/blocks.{i}": std})
                stats.update({f"{k}/blocks.{i}": v for k, v in block_stats.items()})
        logits_BxTxV = self.embed.attend(self.ln_f(x))
        if self.logit_mult != 1.0:  # μP's readout multiplier on the tied embedding (MuSharedReadout)
            logits_BxTxV = logits_BxTxV * self.logit_mult
        return logits_BxTxV, stats


def build_model(cfg: ModelConfig, seed: int) -> GPT:
    return GPT(cfg, nnx.Rngs(seed))
