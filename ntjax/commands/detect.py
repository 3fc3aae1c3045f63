"""`ntjax detect SCRIPT`: which framework a training script uses, and the bridge lines to add."""
from __future__ import annotations

import argparse
import dataclasses

from ntjax.cli import Result, add_json_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect", help="which framework a training script uses, and how to monitor it",
        description="Read a training script's imports (and those of the local modules it imports, one level "
                    "deep) without running it; name the framework (JAX/Flax, PyTorch plain/Lightning/HF "
                    "Trainer, TensorFlow/Keras, or a mix) and print the lines that make it write metrics.jsonl. For a "
                    "plain PyTorch loop the lines use the script's own names (model, optimizer or none, loss, "
                    "step counter, eval result) and say where each goes (after backward, before clipping).")
    parser.add_argument("script", help="path to a Python training script")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def _human(d: dict) -> str:
    label = {"pytorch": "PyTorch", "tensorflow": "TensorFlow/Keras", "jax": "JAX/Flax"}
    fw = " + ".join(label[f] for f in d["frameworks"]) or "no known framework"
    lines = [f"{d['script']}: {fw}" + (f" ({', '.join(d['flavours'])})" if d["flavours"] else "")]
    if d["monitored"]:
        lines.append("  already imports an ntjax bridge: its run folder reads with `ntjax curves DIR`")
    if len(d["files_read"]) > 1:
        lines.append("  also read: " + ", ".join(d["files_read"][1:]))
    for b in d["bridges"]:
        lines.append(f"\n{b['flavour']}: use {b['bridge']}")
        lines.extend("    " + line for line in b["lines"])
    if not d["bridges"]:
        lines.append("No JAX, PyTorch or TensorFlow import found; `ntjax curves LOGFILE` reads logs of any trainer.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Result:
    from ntjax.diagnostics.framework import detect
    data = dataclasses.asdict(detect(args.script))
    return Result(data=data, human=_human(data))
