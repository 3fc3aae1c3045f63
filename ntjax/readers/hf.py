"""Hugging Face `trainer_state.json`: `log_history` rows keyed by `step`.

Train rows carry `loss`, `learning_rate`, `grad_norm`, `epoch`; eval rows carry `eval_*`. The closing
row Trainer writes after training (`train_runtime`, `train_loss` = the run's *average* loss) is a
summary, not a point of the curve: it goes to `meta["summary"]` so it cannot overwrite the last loss.
Everything outside `log_history` (best_metric, best_model_checkpoint, global_step...) goes to
`meta["trainer_state"]`.
"""
from __future__ import annotations

import json

from ntjax.diagnostics.runtable import RunTable
from ntjax.readers.jsonl import rows_table

_SUMMARY_KEYS = ("train_runtime", "total_flos")


def is_trainer_state(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("log_history"), list)


def read_trainer_state(source: str, doc: dict) -> RunTable:
    """One run from a parsed `trainer_state.json`."""
    history = doc["log_history"]
    rows = [r for r in history if isinstance(r, dict) and not any(k in r for k in _SUMMARY_KEYS)]
    summary = next((r for r in history if isinstance(r, dict) and any(k in r for k in _SUMMARY_KEYS)), None)
    skipped = sum(not isinstance(r, dict) for r in history)
    problems = [f"{skipped} log_history entries are not objects, skipped"] if skipped else []
    meta = {"trainer_state": {k: v for k, v in doc.items() if k != "log_history" and not isinstance(v, list)}}
    if summary is not None:
        meta["summary"] = summary
    return rows_table(source, "hf-trainer-state", rows, problems, meta)


def salvage_trainer_state(source: str, data: bytes) -> RunTable | None:
    """The whole `log_history` entries of a torn or damaged `trainer_state.json`; None if there are none."""
    text = data.decode("utf-8", "replace")
    start = text.find("[", text.find('"log_history"'))
    if start < 0:
        return None
    decoder = json.JSONDecoder()
    entries, pos = [], start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            entry, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        entries.append(entry)
    if not entries:
        return None
    table = read_trainer_state(source, {"log_history": entries})
    table.problems.insert(0, f"trainer_state.json is not valid JSON (torn or damaged): read the {len(entries)} "
                             f"whole log_history entries before byte {len(text[:pos].encode())}")
    return table
