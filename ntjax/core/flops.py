"""Training FLOPs of a decoder-only transformer, and the peak throughput of common accelerators.

The budget everyone quotes is C = 6·N·D (Kaplan et al. 2020, §2.1): a forward pass costs 2 FLOPs per
non-embedding parameter per token and the backward pass twice that. Attention adds work that grows with
context length: QKᵀ and the weighted sum over values each cost 2·T·d per layer per token forward, so
12·L·T·d per token for forward plus backward (the PaLM MFU convention, Chowdhery et al. 2022, App. B;
causal masking is not discounted). MFU = achieved FLOPs per second / the device's dense peak.
"""
from __future__ import annotations

# Dense (no sparsity) peak FLOP/s for 16-bit matmuls (bf16, or fp16 where the chip lacks bf16), from
# the vendors' data sheets. Keys are what `--device` accepts.
PEAK_FLOPS: dict[str, float] = {
    "h100": 989e12,  # H100 SXM
    "h100-pcie": 756e12,
    "h200": 989e12,
    "b200": 2250e12,
    "a100": 312e12,
    "a10g": 70e12,
    "l4": 121e12,
    "v100": 125e12,  # fp16 tensor cores
    "t4": 65e12,  # fp16 tensor cores
    "mi300x": 1307e12,
    "tpu-v4": 275e12,
    "tpu-v5e": 197e12,
    "tpu-v5p": 459e12,
    "tpu-v6e": 918e12,
}


def attention_flops_per_token(n_layers: int, seq_len: int, d_model: int) -> float:
    """Training FLOPs per token spent in attention scores and their weighted sum: 12·L·T·d."""
    return 12.0 * n_layers * seq_len * d_model


def flops_per_token(n_params_non_embedding: float, n_layers: int, seq_len: int, d_model: int) -> float:
    """Training FLOPs per token: 6·N (matmuls over the weights) + 12·L·T·d (attention)."""
    return 6.0 * n_params_non_embedding + attention_flops_per_token(n_layers, seq_len, d_model)


def training_flops(n_params: float, n_tokens: float) -> float:
    """The standard budget C = 6·N·D (no attention term), as scaling-law papers count it."""
    return 6.0 * n_params * n_tokens


def mfu(tokens_per_s: float, flops_per_tok: float, device: str, n_devices: int = 1) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the devices' dense peak."""
    return tokens_per_s * flops_per_tok / (peak_flops(device) * n_devices)


def peak_flops(device: str) -> float:
    """The dense 16-bit peak of `device` (a `PEAK_FLOPS` key, case-insensitive); KeyError names the choices."""
    key = device.lower().replace("_", "-").replace(" ", "-")
    if key not in PEAK_FLOPS:
        raise KeyError(f"unknown device {device!r}; known: {', '.join(PEAK_FLOPS)}")
    return PEAK_FLOPS[key]


def device_peak_flops(device_kind: str, platform: str) -> float | None:
    """The dense 16-bit peak of a JAX device from its `device_kind` ("NVIDIA H100 80GB HBM3", "TPU v4"),
    or None when unknown (CPUs: MFU is not reported). "H100 PCIe" is told apart from the SXM part."""
    if platform == "cpu":
        return None
    kind = device_kind.lower().replace(" ", "-")
    if "h100" in kind and "pcie" in kind:
        return PEAK_FLOPS["h100-pcie"]
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if key in kind or key.replace("-", "") in kind.replace("-", ""):
            return PEAK_FLOPS[key]
    return None
