"""Read any common training log into one `RunTable`, the format told from the content.

`read_run(path)` reads a file or a run folder; `read_runs(path)` reads every run under a folder.
Formats (`RunTable.format`): ntjax-jsonl, jsonl, csv, tensorboard, wandb, hf-trainer-state,
lightning-csv, keras-csv, text. What cannot be read is listed in `table.problems`, one line each;
input with nothing readable raises `ReadError` (one line: the path and why). Nothing else escapes.

A folder holding several runs (TensorBoard subfolders, W&B's `wandb/` with many runs, a folder of
logs): `read_run` reads the most recently written run and says so in `problems` (which runs exist is
in `meta["runs"]`); `read_runs` returns them all. The event files of one TensorBoard folder are one
run (HF Trainer writes its final eval into a second file there), merged with later writes winning.
"""
from __future__ import annotations

import json
import os

from ntjax.core import runfolder as rf
from ntjax.diagnostics.runtable import RunTable
from ntjax.readers.delimited import read_delimited
from ntjax.readers.detect import HEAD_BYTES, Run, decode, find_runs, sniff
from ntjax.readers.errors import ReadError, fail
from ntjax.readers.hf import is_trainer_state, read_trainer_state, salvage_trainer_state
from ntjax.readers.jsonl import read_json_document, read_jsonl
from ntjax.readers.text import read_text
from ntjax.readers.tfevents import read_event_files
from ntjax.readers.wandb_run import is_summary, read_history_jsonl, read_wandb_file

__all__ = ["FORMATS", "ReadError", "read_run", "read_runs"]

FORMATS = ("ntjax-jsonl", "jsonl", "csv", "tensorboard", "wandb", "hf-trainer-state", "lightning-csv",
           "keras-csv", "text")


def read_run(path: str | os.PathLike) -> RunTable:
    """One run from a log file or a run folder, its format detected from the content."""
    path = os.fspath(path)
    try:
        if os.path.isdir(path):
            runs = find_runs(path)
            if not runs:
                raise fail(path, "no training logs found in this folder (looked for metrics.jsonl, CSV, "
                                 "TensorBoard event files, W&B runs, trainer_state.json, text logs)")
            return _read_one_of(path, runs)
        return _read_file(path)
    except ReadError:
        raise
    except Exception as e:  # the contract: unreadable input is a ReadError, never a traceback
        raise fail(path, f"unexpected {type(e).__name__} while reading ({e})") from e


def read_runs(path: str | os.PathLike) -> list[RunTable]:
    """Every readable run under a folder (one table per run), or the one run a file holds.

    Runs that cannot be read are skipped; when none can, the first reason is raised as a ReadError.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        return [read_run(path)]
    tables, errors = [], []
    for run in find_runs(path):
        try:
            tables.append(_read_found(path, run))
        except ReadError as e:
            errors.append(str(e))
        except Exception as e:  # same contract as read_run
            errors.append(str(fail(run.path, f"unexpected {type(e).__name__} while reading ({e})")))
    if not tables:
        raise ReadError(errors[0] if errors else str(fail(path, "no training logs found in this folder")))
    return tables


def _read_one_of(root: str, runs: list[Run]) -> RunTable:
    """The most recently written readable run of a folder; the others are named in problems."""
    ordered = sorted(runs, key=lambda r: (r.mtime(), r.name), reverse=True)
    first_error = None
    for run in ordered:
        try:
            table = _read_found(root, run)
        except ReadError as e:
            first_error = first_error or e
            continue
        if len(runs) > 1:
            table.meta["runs"] = [r.name for r in runs]
            table.problems.append(f"{root} holds {len(runs)} runs; read the most recently written, "
                                  f"{run.name} (pass its path, or use read_runs, for the others)")
        return table
    assert first_error is not None  # `runs` is never empty here: every candidate failed to read
    raise first_error


def _attach_histograms(table: RunTable, folder: str) -> None:
    """An ntjax run's gradient histograms (logged only to TensorBoard) into meta["histograms"]."""
    if not os.path.isdir(folder):
        return
    events = sorted(os.path.join(folder, n) for n in os.listdir(folder) if "tfevents" in n)
    if not events:
        return
    try:
        hist = read_event_files(folder, events).meta.get("histograms")
    except (ReadError, OSError, ValueError) as e:
        table.problems.append(f"{folder}: histograms unreadable ({e}), skipped")
        return
    if hist:
        table.meta["histograms"] = hist


def _read_found(root: str, run: Run) -> RunTable:
    """Read one discovered run."""
    if run.kind == "ntjax":
        table = _read_file(run.files[0], source=run.path)
        table.format = "ntjax-jsonl"
        _attach_histograms(table, os.path.join(run.path, "tensorboard"))
    elif run.kind == "tensorboard":
        table = read_event_files(run.path, list(run.files))
    elif run.kind == "wandb-dir":
        table = _read_wandb_dir(run)
    else:
        table = _read_file(run.path)
    _attach_config(table, run.path if os.path.isdir(run.path) else os.path.dirname(run.path))
    table.meta["run_name"] = run.name
    return _non_empty(table, run.path)


def _attach_config(table: RunTable, folder: str) -> None:
    """A run folder's config (ntjax/bridges `config.json`, Lightning `hparams.yaml`) into meta."""
    config_json = os.path.join(folder, rf.CONFIG_FILE)
    if os.path.isfile(config_json) and "config" not in table.meta:
        try:
            with open(config_json, encoding="utf-8") as f:
                table.meta["config"] = json.load(f)
        except (OSError, ValueError) as e:
            table.problems.append(f"config.json: unreadable ({e}), skipped")
    hparams = os.path.join(folder, "hparams.yaml")
    if os.path.isfile(hparams):
        table.meta["hparams"] = _yaml(hparams, table.problems)


def _yaml(path: str, problems: list[str]):
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{os.path.basename(path)}: unreadable ({type(e).__name__}), skipped")
        return None


def _read_wandb_dir(run: Run) -> RunTable:
    """A W&B run folder: the `.wandb` file if any, else the history JSONL, else the console log."""
    by_name = {os.path.basename(f): f for f in run.files}
    meta: dict = {}
    problems: list[str] = []
    if "wandb-summary.json" in by_name:
        try:
            with open(by_name["wandb-summary.json"], encoding="utf-8") as f:
                meta["summary"] = json.load(f)
        except (OSError, ValueError) as e:
            problems.append(f"wandb-summary.json: unreadable ({type(e).__name__}), skipped")
    config_yaml = os.path.join(run.path, "files", "config.yaml")
    if os.path.isfile(config_yaml):
        config = _yaml(config_yaml, problems)
        if isinstance(config, dict):  # W&B stores {key: {"value": v}}
            meta["config"] = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in config.items()
                              if k != "_wandb"}
    wandb_bin = [f for f in run.files if f.endswith(".wandb")]
    if wandb_bin:
        table = read_wandb_file(run.path, wandb_bin[0], meta)
    elif "wandb-history.jsonl" in by_name:
        table = read_history_jsonl(run.path, _read_bytes(by_name["wandb-history.jsonl"]), meta)
    elif "output.log" in by_name:
        table = read_text(run.path, decode(_read_bytes(by_name["output.log"])) or "", fmt="wandb")
        table.meta.update(meta)
    else:
        table = read_json_document(run.path, meta.get("summary", {}), fmt="wandb")
        table.meta.update(meta)
    table.problems[:0] = problems
    return table


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise fail(path, "no such file or folder") from None
    except OSError as e:
        raise fail(path, e.strerror or str(e)) from None


def _read_file(path: str, source: str | None = None) -> RunTable:
    """One log file, its family sniffed from its first bytes."""
    source = source or path
    data = _read_bytes(path)
    if not data[:HEAD_BYTES].strip() and not data.strip():  # (the head first: no copy of a large log)
        raise fail(path, "the file is empty")
    name = os.path.basename(path)
    kind = sniff(data[:HEAD_BYTES], name)
    if kind == "tensorboard":
        table = read_event_files(source, [path])
    elif kind == "wandb-file":
        table = read_wandb_file(source, path)
    elif kind == "binary":
        raise fail(path, "binary data, not a log format ntjax reads (JSONL, CSV, TensorBoard, W&B, "
                         "trainer_state.json, text)")
    elif kind == "json":
        table = _read_json(source, data, name)
    else:
        text = decode(data)
        if text is None:
            raise fail(path, "binary data after the first bytes, not a text log")
        text = text.lstrip("\ufeff")
        table = read_delimited(source, text) if kind == "delimited" else read_text(source, text)
    return _non_empty(table, path)


def _read_json(source: str, data: bytes, name: str) -> RunTable:
    """A whole JSON document (trainer_state, W&B summary, list of rows), else JSON lines."""
    try:
        if _first_line_is_whole(data):  # JSON lines: no need to decode the whole file to find out
            raise ValueError("JSON lines")
        doc = json.loads(data[3:] if data.startswith(b"\xef\xbb\xbf") else data)
    except (ValueError, RecursionError):
        if b'"log_history"' in data[:HEAD_BYTES]:  # a torn trainer_state.json: read what is whole
            salvaged = salvage_trainer_state(source, data)
            if salvaged is not None:
                return salvaged
        return read_history_jsonl(source, data) if name == "wandb-history.jsonl" else read_jsonl(source, data)
    if is_trainer_state(doc):
        return read_trainer_state(source, doc)
    if is_summary(doc, name):
        return read_json_document(source, doc, fmt="wandb", meta={"summary": doc})
    fmt = "wandb" if name == "wandb-history.jsonl" else "ntjax-jsonl" if name == rf.METRICS_FILE else "jsonl"
    return read_json_document(source, doc, fmt=fmt)


def _first_line_is_whole(data: bytes) -> bool:
    """The first line is a complete JSON value with more text after it: JSON lines, never one document
    (which `json.loads` would reject as extra data anyway)."""
    end = data.find(b"\n")
    if end < 0 or not data[end:end + HEAD_BYTES].strip():
        return False
    try:
        json.loads(data[:end])
    except (ValueError, RecursionError):
        return False
    return True


def _non_empty(table: RunTable, path: str) -> RunTable:
    """A table with at least one series, else the ReadError that says why nothing was read."""
    if table.series:
        return table
    why = table.problems[0] if table.problems else "no metric values found (not a training log ntjax reads?)"
    raise fail(path, why)
