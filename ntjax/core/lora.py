"""LoRA adapters for fine-tuning: wrap, select and fold them back.

`core.state.build_state` wraps the layers when `cfg.init_from` is set and `cfg.lora_rank > 0`
(`core.runfolder.load_base_params` supplies the base weights). The targeted `nnx.Linear` layers become
`nnx.LoRALinear` (Flax NNX's LoRA: the frozen kernel plus a trainable low-rank product A·B with B
initialised to zero, Hu et al. 2021), so the model starts exactly equal to the base and only the
`nnx.LoRAParam` leaves are trained. `nnx.LoRALinear` keeps the `kernel`/`bias` paths of `nnx.Linear`, so
per-layer metrics keep their names.
"""
from __future__ import annotations

from collections.abc import Iterable

import jax.numpy as jnp
from flax import nnx

from ntjax.errors import NtjaxError

# What `--lora-targets` names in the default GPT (ntjax/core/model.py): a target matches every Linear layer
# with that name anywhere in its path, so `attn` -> attn.qkv and attn.proj, `mlp` -> mlp.fc and mlp.proj,
# and a layer name such as `qkv` picks just those layers.
DEFAULT_TARGETS = ("attn", "mlp")


def linear_paths(model: nnx.Module) -> list[tuple]:
    """Paths of the plain `nnx.Linear` layers of a model (LoRA-wrapped ones excluded)."""
    return [path for path, node in nnx.iter_graph(model)
            if isinstance(node, nnx.Linear) and not isinstance(node, nnx.LoRALinear)]


def dotted(path: Iterable) -> str:
    return ".".join(str(p) for p in path)


def select_targets(model: nnx.Module, targets: Iterable[str]) -> list[tuple]:
    """The Linear layers each target names; an unknown target is an error that lists what exists."""
    paths = linear_paths(model)
    chosen: list[tuple] = []
    for target in targets:
        hits = [p for p in paths if target in (str(x) for x in p)]
        if not hits:
            raise NtjaxError(f"LoRA target {target!r} matches no Linear layer; layers: "
                             f"{', '.join(sorted({dotted(p) for p in paths})) or 'none'}")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def _set_child(model: nnx.Module, path: tuple, child: nnx.Module) -> None:
    parent = model
    for key in path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    if isinstance(path[-1], int):
        parent[path[-1]] = child
    else:
        setattr(parent, path[-1], child)


def to_lora(linear: nnx.Linear, rank: int, rngs: nnx.Rngs) -> nnx.LoRALinear:
    """A LoRALinear computing exactly what `linear` does (its kernel and bias copied; B = 0)."""
    lora = nnx.LoRALinear(linear.in_features, linear.out_features, lora_rank=rank, use_bias=linear.use_bias,
                          dtype=linear.dtype, param_dtype=linear.param_dtype, rngs=rngs)
    lora.kernel.set_value(linear.kernel[...])
    if lora.bias is not None and linear.bias is not None:
        lora.bias.set_value(linear.bias[...])
    return lora


def add_lora(model: nnx.Module, rank: int, targets: Iterable[str], seed: int = 0) -> list[str]:
    """Replace the targeted Linear layers of `model` in place by LoRA layers; returns their dotted paths."""
    if rank <= 0:
        raise NtjaxError(f"LoRA rank must be positive (got {rank})")
    paths = select_targets(model, targets)
    rngs = nnx.Rngs(seed)
    for path in paths:
        linear = model
        for key in path:
            linear = linear[key] if isinstance(key, int) else getattr(linear, key)
        too_big = [d for d in (linear.in_features, linear.out_features) if rank >= d]
        if too_big:
            raise NtjaxError(f"LoRA rank {rank} is not low rank for {dotted(path)} "
                             f"({linear.in_features}x{linear.out_features}); choose a rank below {min(too_big)}")
        _set_child(model, path, to_lora(linear, rank, rngs))
    return [dotted(p) for p in paths]


def fold_lora(model: nnx.Module) -> int:
    """Merge every LoRA adapter into its kernel (W + A·B) and turn the layer back into a plain Linear.

    Lets a LoRA-tuned run be the base of another fine-tune, or be evaluated as an ordinary model.
    Returns how many layers were folded.
    """
    paths = [p for p, node in nnx.iter_graph(model) if isinstance(node, nnx.LoRALinear)]
    for path in paths:
        lora = model
        for key in path:
            lora = lora[key] if isinstance(key, int) else getattr(lora, key)
        plain = nnx.Linear(lora.in_features, lora.out_features, use_bias=lora.use_bias, dtype=lora.dtype,
                           param_dtype=lora.param_dtype, rngs=nnx.Rngs(0))
        delta = jnp.asarray(lora.lora.lora_a[...]) @ jnp.asarray(lora.lora.lora_b[...])
        plain.kernel.set_value(lora.kernel[...] + delta.astype(lora.kernel[...].dtype))
        if plain.bias is not None and lora.bias is not None:
            plain.bias.set_value(lora.bias[...])
        _set_child(model, path, plain)
    return len(paths)
