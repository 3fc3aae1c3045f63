"""`ntjax eval MODEL.pt --torch-model module:function --data FILE`: a PyTorch byte-level LM saved as a
`state_dict`, on the same held-out windows and metrics as an ntjax run.

Only what fits that contract is evaluated: `forward(tokens [B, T])` returning logits `[B, T, 256]` (or a
tuple whose first item is those logits). A model whose forward needs other arguments (an RNN's hidden
state), or that predicts another vocabulary (its own tokenizer), is refused with one line instead of a
traceback or a meaningless loss: evaluate it with `--hf-model` or with `--command` (its own eval code).
"""
from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ntjax.errors import NtjaxError

BYTE_VOCAB = 256


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def evaluate_state_dict(path: str | Path, build: Callable[[], torch.nn.Module], constructor: str, text: str,
                        seq_len: int, n_batches: int = 8, batch_size: int = 8,
                        eval_fraction: float = 0.1) -> dict[str, float]:
    """Load the state_dict into `build()` (weights_only: a checkpoint cannot run code) and evaluate it."""
    from ntjax.core.data import make_data

    model = build()
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as e:
        raise NtjaxError(f"cannot load the state_dict {path} into {constructor}(): {_first_line(e)}") from None
    model.eval()
    losses, accs = [], []
    refuse = (f"{constructor}() cannot be evaluated as a byte-level LM (forward(tokens) -> logits over 256 bytes)"
              "; evaluate it with its own code: ntjax eval --command 'python eval.py ...'")
    with torch.no_grad():
        for batch in make_data(seq_len, 0, eval_fraction, text).eval_batches(n_batches, batch_size):
            tokens = torch.from_numpy(batch).long()
            try:
                out = model(tokens[:, :-1])
            except (TypeError, RuntimeError, ValueError, IndexError) as e:
                raise NtjaxError(f"{refuse}: its forward failed ({type(e).__name__}: {_first_line(e)[:160]})") from None
            logits = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
            if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[:2] != tokens[:, :-1].shape \
                    or logits.shape[-1] != BYTE_VOCAB:
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise NtjaxError(f"{refuse}: it returned {shape} for tokens of shape "
                                 f"{tuple(tokens[:, :-1].shape)}, not [B, T, {BYTE_VOCAB}] logits")
            logits = logits.float()
            targets = tokens[:, 1:]
            losses.append(float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))))
            accs.append(float((logits.argmax(-1) == targets).float().mean()))
    loss = float(np.mean(losses))
    return {"eval/loss": loss, "eval/ppl": math.exp(min(loss, 50.0)), "eval/accuracy": float(np.mean(accs))}
