"""Evaluate a local Hugging Face causal LM folder with its own tokenizer (`ntjax eval --hf-model DIR
--eval-data FILE`): loss, perplexity and next-token accuracy, never a download.

The eval text is tokenized with the folder's tokenizer (a `.jsonl` file: the `text` field of each line,
documents joined by the EOS token when the tokenizer has one), cut into consecutive blocks of `seq_len`
tokens (the last partial block is dropped) and every block predicts its tokens 2..seq_len from the ones
before. Loss is the mean cross-entropy over all predicted tokens, perplexity its exp, accuracy the
fraction of predicted tokens that are the argmax.

Whatever cannot be evaluated correctly is refused with one line (`EvalRefused`): a folder without a
tokenizer, a model that is not a causal LM, a tokenizer whose ids exceed the model's vocabulary, blocks
longer than the model's context, too little text for one block.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


class EvalRefused(Exception):
    """The input cannot be evaluated correctly; the message says why (one line)."""


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # local files only: never reach the Hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def read_eval_text(path: str | Path) -> list[str]:
    """The documents of a `.txt` file (one) or a `.jsonl` file (the `text` field of each line)."""
    p = Path(path)
    if not p.is_file():
        raise EvalRefused(f"no such eval file: {p}")
    raw = p.read_text(encoding="utf-8", errors="strict")
    if p.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise EvalRefused(f"{p} line {i} is not JSON") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise EvalRefused(f"{p} line {i} has no string field 'text'")
            docs.append(obj["text"])
        return docs
    return [raw]


def load(model_dir: str | Path) -> tuple[Any, Any]:
    """The model (eval mode, CPU or the default device) and its own tokenizer, from local files only."""
    _offline()
    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise EvalRefused(f"{d} is not a Hugging Face model folder (no config.json)")
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        raise EvalRefused(f"{d} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}): a model is evaluated "
                          "with its own tokenizer, so save it next to the model (tokenizer.save_pretrained)")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(d, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - one line for any tokenizer that cannot load
        raise EvalRefused(f"cannot load the tokenizer in {d}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(d, local_files_only=True)
    except ValueError as e:  # a config AutoModelForCausalLM has no class for
        raise EvalRefused(f"{d} is not a causal language model ({str(e).splitlines()[0][:200]})") from None
    except Exception as e:  # noqa: BLE001
        raise EvalRefused(f"cannot load the model in {d}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    model.eval()
    return model, tokenizer


def token_stream(tokenizer: Any, docs: list[str]) -> list[int]:
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for i, doc in enumerate(docs):
        if i and eos is not None:
            ids.append(eos)
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
    return ids


def blocks(ids: list[int], seq_len: int) -> list[list[int]]:
    """Consecutive non-overlapping blocks of `seq_len` tokens; the last partial block is dropped."""
    return [ids[i:i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]


def evaluate(model_dir: str | Path, eval_data: str | Path, *, seq_len: int | None = None, batch_size: int = 8,
             max_blocks: int | None = None) -> dict[str, Any]:
    """Loss, perplexity and token accuracy of the model in `model_dir` on `eval_data`."""
    import torch

    model, tokenizer = load(model_dir)
    cfg = model.config
    context = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
    seq_len = seq_len or min(context or 512, 512)
    if context and seq_len > context:
        raise EvalRefused(f"--seq-len {seq_len} exceeds the model's context of {context} tokens")
    vocab = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None \
        else cfg.vocab_size
    if len(tokenizer) > vocab:
        raise EvalRefused(f"the tokenizer has {len(tokenizer)} tokens but the model predicts {vocab}: they do "
                          "not belong together")
    ids = token_stream(tokenizer, read_eval_text(eval_data))
    chunks = blocks(ids, seq_len)
    if not chunks:
        raise EvalRefused(f"{eval_data} holds {len(ids)} tokens, fewer than one block of --seq-len {seq_len}")
    if max_blocks:
        chunks = chunks[:max_blocks]
    total, hits, count = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(chunks), batch_size):
            x = torch.tensor(chunks[i:i + batch_size], dtype=torch.long)
            logits = model(input_ids=x).logits.float()[:, :-1]
            targets = x[:, 1:]
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                   reduction="sum")
            total += float(ce)
            hits += int((logits.argmax(-1) == targets).sum())
            count += targets.numel()
    loss = total / count
    if not math.isfinite(loss):
        raise EvalRefused(f"the model's loss on {eval_data} is not finite ({loss}); its weights hold NaN/Inf")
    return {"metrics": {"eval/loss": loss, "eval/ppl": math.exp(min(loss, 50.0)), "eval/accuracy": hits / count},
            "tokens": count, "blocks": len(chunks), "seq_len": seq_len, "model_class": type(model).__name__,
            "n_params": int(sum(p.numel() for p in model.parameters())), "tokenizer_size": len(tokenizer)}
