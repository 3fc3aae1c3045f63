"""What is trained: a model, its loss and its data — the default GPT on the embedded corpus, or a user's
spec module (`--spec my_spec.py`).

A spec module defines:
    build_model(cfg: TrainConfig, rngs: flax.nnx.Rngs) -> nnx.Module
    train_batch(cfg: TrainConfig, index: int) -> array      # deterministic in index: resume and
                                                            # rollback re-read exactly the same data
    eval_batches(cfg: TrainConfig) -> list of arrays        # a fixed held-out set
and optionally
    loss_fn(model, batch) -> (loss, {"accuracy": ..., ...})  # default: next-token cross-entropy on
                                                            # [B, T+1] token batches
    TOKENS_PER_STEP = int                                   # enables tokens/s in the logs
See examples/custom_spec.py.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any, Callable

import numpy as np
from flax import nnx

from ntjax.core.config import TrainConfig
from ntjax.core.data import make_data, unigram_entropy
from ntjax.errors import NtjaxError
from ntjax.core.model import GPT
from ntjax.core.step import LossFn, lm_loss


@dataclasses.dataclass
class Task:
    model: nnx.Module
    loss_fn: LossFn
    train_batch: Callable[[int], Any]
    eval_batches: list[Any]
    data_info: dict[str, Any]  # evidence for config.json and the report
    tokens_per_step: int | None  # for tokens/s and MFU; None when a spec's batches are not token windows


def default_task(cfg: TrainConfig) -> Task:
    """The GPT family on the embedded corpus (or `cfg.data`), the tail held out for eval."""
    data = make_data(cfg.model.seq_len, cfg.seed, cfg.eval_fraction, cfg.data)
    info = {
        "source": cfg.data or "embedded: CPython pydoc_data.topics",
        "tokenizer": "bytes (vocab 256)",
        "train_tokens": int(len(data.train)),
        "eval_tokens": int(len(data.eval)),
        "held_out": f"last {cfg.eval_fraction:.0%} of the text ({len(data.eval):,} tokens), never trained on",
        "unigram_entropy": unigram_entropy(data.train),
    }

    def loss_fn(model, batch, probes=False):
        return lm_loss(model, batch, probes, cfg.z_loss)

    micro = cfg.micro_batch_size or cfg.batch_size
    return Task(model=GPT(cfg.model, nnx.Rngs(cfg.seed)), loss_fn=loss_fn,
                train_batch=lambda i: data.train_batch(i, cfg.batch_size),
                eval_batches=data.eval_batches(cfg.eval_batches, micro), data_info=info,
                tokens_per_step=cfg.tokens_per_step)


def load_spec(path: str | Path) -> Any:
    """Import a spec module from a file path, checking it defines what the trainer needs."""
    from ntjax.core.trust import check_spec

    path = Path(path)
    if path.suffix != ".py":
        raise NtjaxError(f"spec {path} is not a Python file (.py)")
    if not path.is_file():
        raise NtjaxError(f"spec file {path} does not exist")
    check_spec(path)
    spec = importlib.util.spec_from_file_location(f"ntjax_user_spec_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:  # a spec calling sys.exit() must not end ntjax silently with its code
        raise NtjaxError(f"spec {path} called sys.exit({e.code!r}) while being imported") from None
    except Exception as e:  # the user's code: report its failure in one line
        raise NtjaxError(f"spec {path} failed to import: {type(e).__name__}: {e}") from None
    missing = [n for n in ("build_model", "train_batch", "eval_batches") if not hasattr(module, n)]
    if missing:
        raise NtjaxError(f"spec {path} must define {', '.join(missing)} (see examples/custom_spec.py)")
    return module


def spec_task(cfg: TrainConfig) -> Task:
    """A user's model, loss and data from `cfg.spec`."""
    module = load_spec(cfg.spec)
    user_loss = getattr(module, "loss_fn", None)

    def loss_fn(model, batch, probes=False):
        if user_loss is None:
            return lm_loss(model, batch, probes, cfg.z_loss)
        loss, aux = user_loss(model, batch)
        return loss, {"accuracy": aux.get("accuracy", 0.0 * loss), "max_logit": aux.get("max_logit", 0.0 * loss),
                      **{k: v for k, v in aux.items() if k not in ("accuracy", "max_logit")}}

    eval_batches = list(module.eval_batches(cfg))
    if not eval_batches:
        raise NtjaxError(f"spec {cfg.spec}: eval_batches() returned nothing; a run needs a held-out set")
    return Task(model=module.build_model(cfg, nnx.Rngs(cfg.seed)), loss_fn=loss_fn,
                train_batch=lambda i: np.asarray(module.train_batch(cfg, i)), eval_batches=eval_batches,
                data_info={"source": f"spec {cfg.spec}", "eval_batches": len(eval_batches)},
                tokens_per_step=getattr(module, "TOKENS_PER_STEP", None))


def build_task(cfg: TrainConfig) -> Task:
    return spec_task(cfg) if cfg.spec else default_task(cfg)
