"""Where did the first NaN/Inf come from? Re-run the offending step with the probes on and read the
per-layer numbers in the order the computation made them: parameters, forward activations block by
block, the loss, then gradients from the output back to the input."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import jax


def _block_index(name: str) -> int:
    m = re.search(r"blocks\.(\d+)", name)
    return int(m.group(1)) if m else -1


def localise_nonfinite(probe_step: Callable, state_before: Any, batch: Any) -> str:
    """A one-line answer naming the first non-finite layer of the step that went wrong.

    `probe_step` is the probing variant of the train step, `state_before` the state the bad step started
    from (the step is pure, so re-running it changes nothing).
    """
    params = {k: v for k, v in jax.tree_util.tree_flatten_with_path(state_before.params)[0]}
    for path, leaf in params.items():
        if not bool(jax.numpy.all(jax.numpy.isfinite(leaf))):
            return f"parameter {jax.tree_util.keystr(path)} was already non-finite before the step"
    _, m = probe_step(state_before, batch)
    m.pop("hist", None)
    m = {k: float(v) for k, v in jax.device_get(m).items()}
    forward = sorted((k for k in m if k.startswith(("act_mean/", "act_std/", "attn_max_logit/"))),
                     key=lambda k: (_block_index(k), k))
    for k in forward:
        if not math.isfinite(m[k]):
            return f"forward activation {k.split('/', 1)[1]} ({k.split('/', 1)[0]} = {m[k]})"
    if not math.isfinite(m["train/loss"]):
        return f"the loss ({m['train/loss']}) with finite activations: logits or the loss function (log of 0?)"
    backward = sorted((k for k in m if k.startswith("grad_norm/")), key=lambda k: (-_block_index(k), k))
    for k in backward:
        if not math.isfinite(m[k]):
            return f"backward gradient of {k.split('/', 1)[1]} (norm = {m[k]})"
    return "not reproduced on re-run: the step is finite when repeated (a transient numerical fault)"
