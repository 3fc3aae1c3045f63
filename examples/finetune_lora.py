"""Fine-tune a trained ntjax model on shifted data, fully and with LoRA, and measure what each forgot.

    python examples/finetune_lora.py --out runs/ft --preset tiny      # ~2 minutes on a laptop CPU
    python examples/finetune_lora.py --out runs/ft --base runs/default --preset default --rank 8

The same with the command line:

    ntjax train --preset tiny --out runs/ft/base --yes
    ntjax train --preset tiny --out runs/ft/lora --init-from runs/ft/base --data runs/ft/shifted.txt \
        --lora-rank 4 --lora-targets attn,mlp --yes
    ntjax eval --forgetting runs/ft/base runs/ft/lora

The shifted corpus is the docstrings of public stdlib functions and classes: still English about Python,
but another register than the pydoc topics the base was trained on.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
from pathlib import Path

from ntjax.core import config as C
from ntjax.core.runfolder import load_checkpoint
from ntjax.evaluation import forgetting
from ntjax.trainer import train

MODULES = ("argparse", "collections", "json", "os", "re", "textwrap", "string", "itertools", "functools",
           "pathlib", "subprocess", "logging", "datetime", "decimal", "statistics", "random", "shutil")


def write_shifted_corpus(path: Path) -> Path:
    parts = []
    for name in MODULES:
        module = importlib.import_module(name)
        for key, value in sorted(vars(module).items()):
            if not key.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value)):
                doc = inspect.getdoc(value)
                if doc:
                    parts.append(f"{name}.{key}\n{doc}")
    path.write_text("\n\n".join(parts))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/finetune")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--base", help="an existing run folder to fine-tune (default: train one)")
    parser.add_argument("--base-steps", type=int, default=240, help="steps for the base run it trains")
    parser.add_argument("--steps", type=int, default=60, help="fine-tuning steps")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--targets", default="attn,mlp")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = C.preset(args.preset)
    base = Path(args.base) if args.base else out / "base"
    if not args.base:
        train(dataclasses.replace(cfg, steps=args.base_steps), base, progress=False)
    data = str(write_shifted_corpus(out / "shifted.txt"))
    tune = dataclasses.replace(cfg, steps=args.steps, init_from=str(base.absolute()), data=data)
    runs = {"full": tune,
            f"lora_r{args.rank}": dataclasses.replace(tune, lora_rank=args.rank,
                                                      lora_targets=tuple(args.targets.split(",")))}
    base_run = load_checkpoint(base)
    for name, run_cfg in runs.items():
        train(run_cfg, out / name, progress=False)
        report = forgetting(base_run, load_checkpoint(out / name))
        print(f"{name}: {report['verdict']}")
        print(json.dumps({k: report["original"][k] for k in ("loss_delta", "loss_delta_ci95", "fraction_worse")}))


if __name__ == "__main__":
    main()
