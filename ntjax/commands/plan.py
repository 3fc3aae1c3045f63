"""`ntjax plan`: an experiment plan with its compute budget, from a hypothesis and a few numbers.

FLOPs per run = 6·N·D exactly (attention's 12·L·T·d per token is reported beside it); wall time from
--throughput (tokens/s measured in earlier runs) or from --device's dense peak at --mfu. With
--noise-std (run-to-run std of the final loss) and --effect (the difference to detect), the seeds per arm
a t-test needs.

Examples:
  ntjax plan --hypothesis "Lion beats AdamW at equal tokens" --params 124M --tokens 10B --runs 2 --device h100
  ntjax plan --params 3.3M --steps 2000 --batch-size 16 --seq-len 128 --throughput 8000 \\
             --noise-std 0.01 --effect 0.02 --markdown plan.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ntjax.cli import Result, add_json_flag
from ntjax.errors import NtjaxError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="experiment plan with compute budget", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hypothesis", default="", metavar="TEXT", help="what you expect and why, in one sentence")
    p.add_argument("--params", metavar="N", help="parameters per model (124M, 1.3B, 7e9)")
    p.add_argument("--tokens", metavar="D", help="training tokens per run (10B, 3e11)")
    p.add_argument("--steps", type=int, help="optimizer steps per run (with --batch-size and --seq-len)")
    p.add_argument("--batch-size", type=int, help="sequences per step")
    p.add_argument("--seq-len", type=int, help="tokens per sequence (also sizes the attention FLOPs)")
    p.add_argument("--runs", type=int, default=1, help="arms (distinct configurations) to compare (default 1)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default: from --noise-std/--effect, else 3)")
    p.add_argument("--throughput", type=float, metavar="TOK_PER_S", help="measured training tokens/s of one run")
    p.add_argument("--device", help="accelerator for the time estimate: h100, a100, h200, tpu-v5e, ...")
    p.add_argument("--n-devices", type=int, default=1, help="devices per run (default 1)")
    p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation (default 0.4)")
    p.add_argument("--noise-std", type=float, help="run-to-run std of the final loss, from earlier runs")
    p.add_argument("--effect", type=float, help="the smallest loss difference worth detecting")
    p.add_argument("--n-layers", type=int, help="layers (attention FLOPs; estimated from N if absent)")
    p.add_argument("--d-model", type=int, help="model width (attention FLOPs; estimated from N if absent)")
    p.add_argument("--markdown", metavar="FILE", help="also write the plan as lab-notebook markdown")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> Result:
    from ntjax.diagnostics import plan as planning
    if args.runs < 1 or (args.seeds is not None and args.seeds < 1) or args.n_devices < 1:
        raise NtjaxError("--runs, --seeds and --n-devices must be at least 1")
    for flag in ("throughput", "steps", "batch_size", "seq_len", "noise_std", "effect", "n_layers", "d_model"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            raise NtjaxError(f"--{flag.replace('_', '-')} must be positive (got {value:g})")
    if not 0 < args.mfu <= 1:
        raise NtjaxError(f"--mfu must lie in (0, 1] (got {args.mfu:g})")
    if (args.noise_std is None) != (args.effect is None):
        raise NtjaxError("--noise-std and --effect go together")
    inputs = planning.PlanInputs(
        hypothesis=args.hypothesis, params=planning.parse_count(args.params),
        tokens=planning.parse_count(args.tokens), steps=args.steps, batch_size=args.batch_size,
        seq_len=args.seq_len, runs=args.runs, seeds=args.seeds, throughput=args.throughput, mfu=args.mfu,
        device=args.device, n_devices=args.n_devices, noise_std=args.noise_std, effect=args.effect,
        n_layers=args.n_layers, d_model=args.d_model)
    if any(v is not None and not v > 0 for v in (inputs.params, inputs.tokens)):
        raise NtjaxError("--params and --tokens must be positive")
    data = planning.make_plan(inputs)
    text = planning.markdown(data)
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        data["markdown"] = str(path)
    return Result(data, text)
