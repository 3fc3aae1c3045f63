"""Evaluate a PyTorch model saved as a `state_dict` with ntjax's eval windows and metrics (`ntjax eval
--torch-model`). Torch lives in the bridges; the rest of ntjax never imports it."""
from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ntjax.core.data import make_data
from ntjax.errors import NtjaxError


def import_constructor(spec: str) -> Callable:
    """`module:function` or `path/to/file.py:function` -> the function (the user's model constructor)."""
    import importlib
    import importlib.util

    module_name, _, fn_name = spec.rpartition(":")
    if not module_name or not fn_name:
        raise NtjaxError(f"--torch-model must look like module:function or file.py:function (got {spec!r})")
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location(f"ntjax_torch_model_{Path(module_name).stem}",
                                                            module_name)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, OSError) as e:
        raise NtjaxError(f"cannot import {module_name}: {e}") from None
    if not callable(getattr(module, fn_name, None)):
        raise NtjaxError(f"{module_name} defines no function {fn_name}")
    return getattr(module, fn_name)


def evaluate_state_dict(path: str | Path, constructor: str, text: str, seq_len: int,
                        n_batches: int = 8, batch_size: int = 8, eval_fraction: float = 0.1) -> dict[str, float]:
    """Evaluate a PyTorch byte-level LM (tokens [B, T] -> logits [B, T, V]) saved as a `state_dict` on the
    held-out tail of `text`: the same windows and metrics as an ntjax run. Loads with `weights_only=True`
    (a checkpoint cannot run code)."""
    model = import_constructor(constructor)()
    try:  # weights_only refuses pickled code (an UnpicklingError), not just unknown keys
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise NtjaxError(f"cannot load the state_dict {path} into {constructor}(): {first}") from None
    model.eval()
    losses, accs = [], []
    with torch.no_grad():
        for batch in make_data(seq_len, 0, eval_fraction, text).eval_batches(n_batches, batch_size):
            tokens = torch.from_numpy(batch).long()
            out = model(tokens[:, :-1])
            logits = (out[0] if isinstance(out, (tuple, list)) else out).float()
            targets = tokens[:, 1:]
            losses.append(float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))))
            accs.append(float((logits.argmax(-1) == targets).float().mean()))
    loss = float(np.mean(losses))
    return {"eval/loss": loss, "eval/ppl": math.exp(min(loss, 50.0)), "eval/accuracy": float(np.mean(accs))}
