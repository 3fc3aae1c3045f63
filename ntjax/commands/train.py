"""`ntjax train`: train with mandatory logging, eval at checkpoints, checkpoints, live monitoring and a
final report. Re-running with the same --out resumes from its latest checkpoint."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ntjax.cli import Result, add_json_flag, add_progress_flag, add_trust_flags
from ntjax.core import runfolder as rf

# CLI flag -> TrainConfig field, for the flags that override a config field one to one.
OVERRIDES = {"steps": "steps", "lr": "lr", "batch_size": "batch_size", "micro_batch_size": "micro_batch_size",
             "warmup": "warmup", "schedule": "schedule", "eval_every": "eval_every", "ckpt_every": "ckpt_every",
             "seed": "seed", "optimizer": "optimizer", "weight_decay": "weight_decay", "clip_norm": "clip_norm",
             "z_loss": "z_loss", "spec": "spec", "data": "data", "on_instability": "on_instability",
             "init_from": "init_from", "lora_rank": "lora_rank", "mesh": "mesh", "probe_every": "probe_every",
             "min_lr_ratio": "min_lr_ratio", "parametrization": "parametrization", "base_width": "base_width"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model with mandatory logging, checkpoints and a report",
                       description=__doc__)
    p.add_argument("--preset", default=None, help="tiny | default | small (default: default)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<preset>); an existing one resumes")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--lr", type=float, help="peak learning rate (default: derived from model size)")
    p.add_argument("--batch-size", type=int, help="effective batch size in sequences")
    p.add_argument("--micro-batch-size", type=int, help="sequences per forward pass (default: what fits)")
    p.add_argument("--warmup", type=int, help="warmup steps (default: derived from model size and beta2)")
    p.add_argument("--schedule", choices=["cosine", "linear", "wsd", "constant"])
    p.add_argument("--min-lr-ratio", type=float, help="final LR as a fraction of the peak")
    p.add_argument("--optimizer", choices=["adamw", "adam", "sgd", "lion", "adafactor", "muon"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--clip-norm", type=float, help="global-norm gradient clipping (0 disables)")
    p.add_argument("--z-loss", type=float, help="z-loss weight (PaLM used 1e-4)")
    p.add_argument("--qk-norm", action="store_true", help="LayerNorm on queries and keys")
    p.add_argument("--d-model", type=int, help="model width (default: the preset's)")
    p.add_argument("--parametrization", choices=["sp", "mup"],
                   help="sp (standard, default) or mup: μP init, per-tensor LR and output multipliers, so an LR "
                        "tuned at --base-width holds at this width (ntjax mup --help)")
    p.add_argument("--base-width", type=int, help="μP: the width the LR was tuned at (default: d_model)")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--ckpt-every", type=int)
    p.add_argument("--probe-every", type=int, help="steps between the expensive probes (activations, attention)")
    p.add_argument("--log", default=None, help="comma list of jsonl,csv,tensorboard,wandb (jsonl always on; "
                                               "'none' is refused)")
    p.add_argument("--seed", type=int)
    p.add_argument("--spec", help="a Python file defining build_model, train_batch, eval_batches (and loss_fn)")
    p.add_argument("--data", help="a text file to train on instead of the embedded corpus")
    p.add_argument("--on-instability", choices=["stop", "skip", "rollback"],
                   help="on a NaN or loss spike: stop, skip the update, or roll back to the last good checkpoint")
    p.add_argument("--init-from", help="start from this run folder's latest checkpoint (fine-tuning)")
    p.add_argument("--lora-rank", type=int, help="train LoRA adapters of this rank instead of all weights")
    p.add_argument("--lora-targets", help="comma list of attn,mlp (or layer names such as qkv, fc)")
    p.add_argument("--mesh", help="device mesh, e.g. data=8 or data=2,fsdp=4")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar and no progress lines")
    add_progress_flag(p)
    add_trust_flags(p, spec=False)
    add_json_flag(p)
    p.set_defaults(run=run)


def build_config(args: argparse.Namespace):
    """The config for this invocation: the run folder's own config when resuming, else the preset; then
    the flags given on the command line on top."""
    from ntjax.core import config as config_lib
    from ntjax.core.logger import parse_backends
    from ntjax.core.runfolder import CONFIG_FILE, read_config

    out = Path(args.out or f"runs/{args.preset or 'default'}")
    resuming = (out / CONFIG_FILE).exists() and (out / rf.CHECKPOINTS_DIR).is_dir()
    cfg = read_config(out) if resuming else config_lib.preset(args.preset or "default")
    if resuming and args.preset and args.preset != cfg.preset:
        from ntjax.errors import NtjaxError
        raise NtjaxError(f"{out} holds a '{cfg.preset}' run; pass --out to start a '{args.preset}' run elsewhere")
    changes = {field: getattr(args, flag) for flag, field in OVERRIDES.items() if getattr(args, flag) is not None}
    for path_field in ("init_from", "spec", "data"):  # the run folder must work from anywhere
        if changes.get(path_field):
            changes[path_field] = str(Path(changes[path_field]).absolute())
    if args.log is not None:
        changes["log"] = parse_backends(args.log)
    if args.lora_targets:
        changes["lora_targets"] = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    if args.qk_norm:
        changes["model"] = dataclasses.replace(cfg.model, qk_norm=True)
    if args.d_model is not None:
        changes["model"] = dataclasses.replace(changes.get("model", cfg.model), d_model=args.d_model)
    return config_lib.resolve(dataclasses.replace(cfg, **changes)), out, resuming


def summary_table(cfg, out: Path, resuming: bool):
    from rich.table import Table

    t = Table(title=f"ntjax train → {out}" + ("  (resuming)" if resuming else ""), show_header=False)
    m = cfg.model
    base_width = cfg.base_width or m.d_model
    rows = [("model", f"GPT d={m.d_model} L={m.n_layers} H={m.n_heads} T={m.seq_len} "
                      f"({m.n_params():,} params, {m.n_params(False):,} non-embedding)" if not cfg.spec else cfg.spec),
            ("data", cfg.data or "embedded corpus (CPython pydoc topics), bytes"),
            ("eval", f"held-out last {cfg.eval_fraction:.0%} every {cfg.eval_every} steps" if not cfg.spec
             else f"spec eval_batches every {cfg.eval_every} steps"),
            ("steps", f"{cfg.steps:,} × batch {cfg.batch_size} (micro {cfg.micro_batch_size}, accumulate "
                      f"{cfg.accum_steps}) = {cfg.steps * cfg.tokens_per_step:,} tokens"),
            ("optimizer", f"{cfg.optimizer} lr {cfg.lr:.3g} ({cfg.schedule}, warmup {cfg.warmup}), betas "
                          f"({cfg.b1}, {cfg.b2}), wd {cfg.weight_decay}, clip {cfg.clip_norm}"),
            ("parametrization", "SP" if cfg.parametrization == "sp" else
             f"μP, base width {base_width} (width multiplier {m.d_model / base_width:g})"),
            ("logging", ", ".join(cfg.log) + f"; probes every {cfg.probe_every} steps"),
            ("checkpoints", f"every {cfg.ckpt_every} steps, keep last {cfg.keep_ckpts} + best"),
            ("on instability", cfg.on_instability)]
    for k, v in rows:
        t.add_row(k, v)
    return t


def run(args: argparse.Namespace) -> Result:
    from rich.console import Console

    from ntjax.errors import NtjaxError
    from ntjax.trainer import train
    from ntjax.viz.progress_lines import line_stream, wants_lines

    cfg, out, resuming = build_config(args)
    console = Console(stderr=True)
    console.print(summary_table(cfg, out, resuming))
    if cfg.data and not cfg.spec and not resuming:
        console.print(f"[yellow]warning:[/] no eval set was given with --data: holding out the last "
                      f"{cfg.eval_fraction:.0%} of {cfg.data} for evaluation (never trained on)")
    if not args.yes and sys.stdin.isatty():
        answer = input("Start training? [Y/n] ").strip().lower()
        if answer not in ("", "y", "yes"):
            raise NtjaxError("cancelled at the confirmation prompt (pass --yes to skip it)")
    every = 0.0 if args.no_progress else args.progress_every
    lines = (every, line_stream(args.json)) if wants_lines(every) else None
    result = train(cfg, out, progress=not (args.no_progress or args.json) and console.is_terminal, console=console,
                   lines=lines)
    from ntjax.core.device_info import device_summary, summary_line
    device = device_summary(out / rf.METRICS_FILE)
    console.print(summary_line(device))
    report = out / rf.REPORT_FILE
    data = {"out_dir": str(out), "resumed_from": result.resumed_from, "final_step": result.final_step,
            "final_train_loss": result.final_train_loss, "best_eval_loss": result.best_eval_loss,
            "best_eval_step": result.best_eval_step, "diverged": result.diverged,
            "tokens_per_s": result.tokens_per_s, "wall_s": result.wall_s, "events": result.events,
            "eval_history": result.eval_history, "device": device, "report": str(report),
            "metrics": str(out / rf.METRICS_FILE),
            "plots": sorted(str(p) for p in (out / rf.PLOTS_DIR).glob("*.png"))}

    def human() -> None:
        print(report.read_text() if report.exists() else data)
        if result.diverged:
            print("The run diverged: see the report's suggested next steps.")

    return Result(data=data, human=human, exit_code=3 if result.diverged else 0)
