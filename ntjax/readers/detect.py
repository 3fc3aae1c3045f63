"""What a path holds, decided from content: a file's format from its first bytes, and the runs inside a
folder (ntjax run folders, W&B runs, HF checkpoints, TensorBoard log dirs, Lightning versions, loose
log files).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

from ntjax.core import runfolder as rf
from ntjax.readers.delimited import looks_delimited
from ntjax.readers.tfevents import is_event_file
from ntjax.readers.wandb_run import is_wandb_file

HEAD_BYTES = 65536  # enough of a file to tell its format
MAX_CONTROL_FRACTION = 0.01  # more control bytes than this in the head: binary, not a text log
MAX_DEPTH = 6  # folder levels searched for runs
# Tab, newlines, form feed, and what console captures hold: backspace and ESC (ANSI colours, tqdm bars).
_CONTROL = bytes(b for b in range(32) if b not in (8, 9, 10, 12, 13, 27))
LOG_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".log", ".txt", ".out")
# Files beside logs that are not logs (configs, W&B bookkeeping, package metadata).
NOT_LOGS = frozenset({rf.CONFIG_FILE, "wandb-metadata.json", "requirements.txt", "debug.log", "debug-internal.log",
                      "package.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                      "generation_config.json", "vocab.json", "training_args.json",
                      "run.json", "events.jsonl"})  # `ntjax run`'s command record and warnings
WANDB_FILES = ("wandb-history.jsonl", "wandb-summary.json", "output.log")


def sniff(head: bytes, name: str) -> str:
    """The family of a file from its first bytes: tensorboard, wandb-file, binary, json, delimited, text."""
    if is_event_file(head) or "tfevents" in name:
        return "tensorboard"
    if is_wandb_file(head):
        return "wandb-file"
    if is_binary(head):
        # A JSONL log with a junk or NUL block (a power cut, a bad sector) is still a log: read its lines.
        return "json" if has_json_lines(head) else "binary"
    text = decode(head) or ""
    first = text.lstrip("\ufeff \t\r\n\x00")[:1]
    if first in ("{", "[") or has_json_lines(head, needed=3):
        return "json"
    return "delimited" if looks_delimited(text) else "text"


def has_json_lines(head: bytes, needed: int = 2) -> bool:
    """At least `needed` whole lines of `head` are JSON objects (NUL padding stripped)."""
    found = 0
    for line in head.split(b"\n")[:-1]:  # the last piece may be cut by the head's end
        line = line.strip(b"\x00 \t\r")
        if line.startswith(b"{") and line.endswith(b"}"):
            try:
                if isinstance(json.loads(line), dict):
                    found += 1
            except (ValueError, RecursionError):
                continue
            if found >= needed:
                return True
    return False


def is_binary(head: bytes) -> bool:
    """Too many control bytes or invalid UTF-8 sequences for a text log (UTF-16 with a BOM is text)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    control = sum(head.count(bytes([b])) for b in _CONTROL)
    invalid = head.decode("utf-8", "replace").count("\ufffd")
    return max(control, invalid) > MAX_CONTROL_FRACTION * len(head) + 1


def decode(data: bytes) -> str | None:
    """Bytes as text (UTF-8, or UTF-16 with a BOM as Windows shells write it); None when binary."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    if is_binary(data[:HEAD_BYTES]):
        return None
    return data.decode("utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run inside a folder: how to read it and the files it uses."""

    kind: str  # ntjax, wandb-dir, hf, tensorboard, file
    path: str  # the run folder (or the file for kind "file"/"hf")
    files: tuple[str, ...] = ()
    name: str = ""

    def mtime(self) -> float:
        """When the run was last written: the newest of its files."""
        paths = self.files or (self.path,)
        return max((os.path.getmtime(p) for p in paths if os.path.exists(p)), default=0.0)


def _checkpoint_number(name: str) -> int:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else -1


def _run_here(folder: str, names: list[str], dirs: list[str]) -> Run | None:
    """The run a folder itself is, if any (its files decide)."""
    join = lambda *p: os.path.join(folder, *p)  # noqa: E731
    if rf.METRICS_FILE in names:
        return Run("ntjax", folder, (join(rf.METRICS_FILE),))
    wandb_bin = sorted(n for n in names if n.endswith(".wandb"))
    wandb_files = [join(n) for n in WANDB_FILES if n in names]
    if "files" in dirs:
        wandb_files += [join("files", n) for n in WANDB_FILES if os.path.isfile(join("files", n))]
    if wandb_bin or (wandb_files and (os.path.basename(folder).startswith(("run-", "offline-run-"))
                                      or any("wandb-" in f for f in wandb_files))):
        return Run("wandb-dir", folder, tuple(join(n) for n in wandb_bin) + tuple(wandb_files))
    if "trainer_state.json" in names:
        return Run("hf", join("trainer_state.json"), (join("trainer_state.json"),))
    checkpoints = [d for d in dirs if d.startswith("checkpoint-") and os.path.isfile(join(d, "trainer_state.json"))]
    if checkpoints:  # the latest checkpoint's state holds the whole history
        state = join(max(checkpoints, key=_checkpoint_number), "trainer_state.json")
        return Run("hf", state, (state,))
    if "metrics.csv" in names:
        return Run("file", join("metrics.csv"), (join("metrics.csv"),))
    return None


def find_runs(root: str) -> list[Run]:
    """Every run under `root`, named by its path relative to `root`, in path order."""
    runs: list[Run] = []
    root = os.path.abspath(root)
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        depth = os.path.relpath(folder, root).count(os.sep) + (folder != root)
        if depth >= MAX_DEPTH:
            dirs[:] = []
        names = sorted(names)
        run = _run_here(folder, names, dirs)
        if run is not None:
            runs.append(run)
            dirs[:] = []  # a run's subfolders (checkpoints, plots, W&B files) are part of it
            continue
        events = [os.path.join(folder, n) for n in names if "tfevents" in n]
        if events:
            runs.append(Run("tensorboard", folder, tuple(events)))
        runs += [Run("file", os.path.join(folder, n), (os.path.join(folder, n),)) for n in names
                 if n.lower().endswith(LOG_SUFFIXES) and n not in NOT_LOGS and "tfevents" not in n]
    return [dataclasses.replace(r, name=_run_name(r.path, root)) for r in runs]


def _run_name(path: str, root: str) -> str:
    """A run's path relative to the folder searched; the folder's own name when it is the run."""
    rel = os.path.relpath(path, root)
    return os.path.basename(root) if rel == "." else rel
