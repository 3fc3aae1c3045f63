"""Maximal-update parametrization (μP): tune a small model, train a wide one with the same hyperparameters.

Source: Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen, Gao 2022, "Tensor Programs V:
Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer" (arXiv:2203.03466), Table 3 (μP for
Adam) in the base-shape form of its Appendix and of the authors' `mup` package (MuAdam, MuReadout,
MuSharedReadout). With width n, base width n0 and width multiplier m = n / n0, the rules implemented:

  role     what                                init std                 Adam LR      forward
  input    embeddings (vocab x d, seq x d)     unchanged (width-free)   η            -
  hidden   d x d-like matrices (qkv, proj, fc) σ · sqrt(1/m)            η / m        -
  output   untied readout (d x vocab)          σ / m                    η / m        -
  vector   biases, norm gains and shifts       unchanged                η            -
  tied     ntjax's GPT reads out through its (input-role) embedding: logits · 1/m (MuSharedReadout)
  attn     scores q·k · 1/sqrt(d_head) · sqrt(d_head0 / d_head), i.e. ∝ 1/d_head, equal to SP at n0

σ is the init the model declares (GPT-2's width-independent 0.02, and 0.02/sqrt(2L) for residual
projections). At n = n0 every multiplier is exactly 1, so μP at base width *is* SP, bit for bit.

Choices, and why:
- Tied embeddings (ntjax's GPT): the shared table keeps the input role (Adam LR η, init unchanged) and the
  readout gets the 1/m logit multiplier — the `mup` package's MuSharedReadout. Check: an Adam update moves
  every entry by Θ(η), so the input side changes by Θ(1) per coordinate, and the readout's change E·h sums
  n correlated terms, Θ(n), times 1/m: Θ(1). At init E·h is a sum of n uncorrelated terms, Θ(√n), times
  1/m: it vanishes as 1/√n — the μP output at init.
- An untied output layer (a `--spec` model's readout) is handled in the multiplier-free form of the
  same rule (Table 3's 1/fan_in² init, η/fan_in LR), so specs need no forward change: scaling a weight
  by 1/m with its Adam LR by 1/m is the forward multiplier 1/m exactly (Adam's step does not depend on
  the gradient's scale, up to eps; decoupled weight decay scales with the LR).
- Attention 1/d_head (TP5's rule for Transformers; the `mup` package's attn_mult / d_head): the base
  head size is d_head0 = base_width // n_heads, so μP widening keeps the number of heads and grows
  d_head. `ntjax scale run` with μP keeps the preset's heads for this reason.
- The LR multipliers are an optax transformation (`scale_updates`) chained after the optimizer, so any
  optax optimizer composes with them; the rules above are Adam's, and hold for sign/Adam-like updates
  (adam, adamw, lion). SGD (different exponents), Adafactor (relative steps) and Muon (spectral updates,
  already width-aware) are refused.

What does not transfer (Yang et al. 2022, Table 1; Everett et al. 2024):
- regularisation (weight decay, dropout); batch size; training length (the optimum LR moves with the
  number of steps and tokens: tune at the target horizon). The schedule's shape and Adam's betas do
  transfer (TP5, Table 1);
- depth: no depth-μP residual scaling (Yang et al. 2023 "Tensor Programs VI", Bordelon et al. 2023) is
  implemented here — sweep at the target depth; transfer is across width only;
- global-norm gradient clipping at a fixed threshold is not width-invariant (the global norm grows with
  the number of parameters): the coordinate check and the transfer benchmark run without it;
- it is a statement about wide enough models; at the CPU widths of benchmarks/mup_transfer.py (32 → 256,
  one block, 300 steps) the best LR of a factor-2 grid was the same point at every width under μP and
  moved 2 points under SP (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import optax
from flax import nnx

from ntjax.core.config import MUP_OPTIMIZERS, PARAMETRIZATIONS  # noqa: F401  (re-exported: the μP vocabulary)
from ntjax.diagnostics.tree_stats import path_name
from ntjax.errors import NtjaxError

ROLES = ("input", "hidden", "output", "vector")
HIDDEN_INITS = ("constant", "fan_in")

Rules = Sequence[tuple[str, str]]  # (regex searched in the dotted parameter path, role); first match wins

# ntjax's GPT: the token table is input *and* (tied) readout; positions are input; every block matrix is
# hidden; everything 1-D (biases, LayerNorm, qk-norm) is vector-like by default.
GPT_RULES: Rules = (
    (r"(^|\.)pos_embed\.", "input"),
    (r"(^|\.)embed\.", "input"),
    (r"(^|\.)blocks\.\d+\.(attn|mlp)\.\w+\.kernel", "hidden"),
)


@dataclasses.dataclass(frozen=True)
class Widths:
    """The model's width n and the base width n0 its hyperparameters were tuned at."""

    width: int
    base_width: int

    @property
    def mult(self) -> float:
        """m = n / n0, the width multiplier."""
        return self.width / self.base_width

    @property
    def ratio(self) -> float:
        """1/m = n0 / n: the hidden/output LR multiplier and the readout logit multiplier."""
        return self.base_width / self.width

    @property
    def attn_multiplier(self) -> float:
        """Extra factor on the 1/sqrt(d_head) attention scores that makes them ∝ 1/d_head (n_heads fixed):
        sqrt(d_head0 / d_head) = sqrt(n0 / n); exactly 1.0 at base width."""
        return 1.0 if self.width == self.base_width else math.sqrt(self.ratio)


@dataclasses.dataclass(frozen=True)
class MupSpec:
    """What μP needs to know about a model: its widths, the role rules, and how its hidden init scales."""

    widths: Widths
    rules: Rules = GPT_RULES
    hidden_init: str = "constant"  # the model's hidden std is width-free ("constant") or ∝ 1/sqrt(fan_in)


def widths_of(cfg: Any) -> Widths | None:
    """The config's widths under μP (width = `cfg.model.d_model`), or None under SP."""
    if getattr(cfg, "parametrization", "sp") != "mup":
        return None
    return Widths(cfg.model.d_model, cfg.base_width or cfg.model.d_model)


def check_rules(rules: Any, where: str) -> Rules:
    """Validate a rule table (a dict or pairs of regex -> role); one clear line when it is wrong."""
    pairs = list(rules.items()) if isinstance(rules, dict) else list(rules)
    out = []
    for item in pairs:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise NtjaxError(f"{where}: MUP_ROLES entries must be pattern -> role pairs (got {item!r})")
        pattern, role = item
        if role not in ROLES:
            raise NtjaxError(f"{where}: unknown μP role {role!r} for {pattern!r}; choose from {', '.join(ROLES)}")
        try:
            re.compile(pattern)
        except re.error as e:
            raise NtjaxError(f"{where}: bad MUP_ROLES pattern {pattern!r}: {e}") from None
        out.append((str(pattern), str(role)))
    return tuple(out)


def spec_for(cfg: Any) -> MupSpec | None:
    """μP metadata for this config's model: ntjax's GPT rules, or those a `--spec` module declares
    (`MUP_ROLES = {regex: role}` and optionally `MUP_HIDDEN_INIT = "constant" | "fan_in"`)."""
    widths = widths_of(cfg)
    if widths is None:
        return None
    if not getattr(cfg, "spec", None):
        return MupSpec(widths)
    rules, hidden_init = _spec_declaration(str(cfg.spec))
    return MupSpec(widths, rules, hidden_init)


@functools.lru_cache(maxsize=8)
def _spec_declaration(path: str) -> tuple[Rules, str]:
    """A spec module's MUP_ROLES and MUP_HIDDEN_INIT (imported once per path: the task and the optimizer
    both ask)."""
    from ntjax.core.spec import load_spec

    module = load_spec(path)
    if not hasattr(module, "MUP_ROLES"):
        raise NtjaxError(f"spec {path} declares no MUP_ROLES: --parametrization mup needs the width-scaled "
                         "layers declared, e.g. MUP_ROLES = {'embed': 'input', 'layers.*kernel': 'hidden', "
                         "'head.kernel': 'output'}")
    hidden_init = getattr(module, "MUP_HIDDEN_INIT", "constant")
    if hidden_init not in HIDDEN_INITS:
        raise NtjaxError(f"spec {path}: MUP_HIDDEN_INIT must be one of {', '.join(HIDDEN_INITS)}")
    return check_rules(module.MUP_ROLES, f"spec {path}"), hidden_init


def role_of(name: str, ndim: int, rules: Rules) -> str | None:
    """The first rule whose pattern occurs in `name`; else "vector" for 0-D/1-D leaves; else None."""
    for pattern, role in rules:
        if re.search(pattern, name):
            return role
    return "vector" if ndim <= 1 else None


def roles(params: Any, rules: Rules = GPT_RULES) -> Any:
    """A pytree of role names shaped like `params`. A matrix that no rule covers is an error: guessing
    whether it is hidden or not would silently break transfer."""
    missing: list[str] = []

    def one(path: tuple, leaf: Any) -> str:
        name = path_name(path).removesuffix(".value")  # nnx Variables flatten to their `.value`
        role = role_of(name, getattr(leaf, "ndim", 0), rules)
        if role is None:
            missing.append(name)
            return "vector"
        return role

    tree = jax.tree_util.tree_map_with_path(one, params)
    if missing:
        raise NtjaxError(f"μP: no role for {len(missing)} matrix parameter(s): {', '.join(missing[:4])}"
                         f"{' ...' if len(missing) > 4 else ''}; declare them in MUP_ROLES")
    return tree


def lr_multipliers(params: Any, spec: MupSpec) -> Any:
    """Per-tensor Adam LR multipliers: 1/m for hidden and output matrices, 1 for input and vector-like."""
    r = spec.widths.ratio
    return jax.tree.map(lambda role: r if role in ("hidden", "output") else 1.0, roles(params, spec.rules))


def init_multipliers(params: Any, spec: MupSpec) -> Any:
    """Per-tensor factors on the model's own init: sqrt(1/m) on hidden matrices whose std is width-free,
    1/m on output matrices, 1 elsewhere."""
    r = spec.widths.ratio
    hidden = math.sqrt(r) if spec.hidden_init == "constant" else 1.0
    table = {"hidden": hidden, "output": r}
    return jax.tree.map(lambda role: table.get(role, 1.0), roles(params, spec.rules))


def scale_updates(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each leaf's update by its (static) multiplier; chained after an optimizer whose output
    already carries -lr, this is a per-tensor LR multiplier. A multiplier of exactly 1 leaves the update
    untouched (so μP at base width is SP bit for bit)."""

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        return jax.tree.map(lambda u, m: u if m == 1.0 else u * m, updates, multipliers), state

    return optax.GradientTransformation(init_fn, update_fn)


def with_mup(tx: optax.GradientTransformation, cfg: Any, params: Any) -> optax.GradientTransformation:
    """`tx` followed by the μP LR multipliers for this config's model (unchanged under SP)."""
    spec = spec_for(cfg)
    if spec is None:
        return tx
    return optax.chain(tx, scale_updates(lr_multipliers(params, spec)))


def apply_init(model: nnx.Module, cfg: Any) -> nnx.Module:
    """Rescale a freshly built model's parameters in place to μP's init (no-op under SP or at base width)."""
    spec = spec_for(cfg)
    if spec is None or spec.widths.width == spec.widths.base_width:
        return model
    params = nnx.state(model, nnx.Param)
    factors = init_multipliers(params, spec)
    nnx.update(model, jax.tree.map(lambda p, f: p if f == 1.0 else p * f, params, factors))
    return model


def role_table(params: Any, spec: MupSpec) -> list[dict[str, Any]]:
    """One row per parameter: name, shape, role, init and LR multipliers (for `ntjax mup check` and docs)."""
    rows = []
    names = [path_name(p).removesuffix(".value") for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    leaves = jax.tree.leaves(params)
    for name, leaf, role, lr, init in zip(names, leaves, jax.tree.leaves(roles(params, spec.rules)),
                                          jax.tree.leaves(lr_multipliers(params, spec)),
                                          jax.tree.leaves(init_multipliers(params, spec))):
        rows.append({"name": name, "shape": list(leaf.shape), "role": role, "lr_mult": lr, "init_mult": init})
    return rows
