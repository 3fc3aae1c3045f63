"""`ntjax mup`: the maximal-update parametrization (μP) tools.

  ntjax mup check   the coordinate check: train ntjax's GPT for a few steps at several widths under SP
                    and μP, and show each layer's activation and update RMS against width (flat under μP)
  ntjax mup roles   which role (input / hidden / output / vector) and which init and LR multipliers each
                    parameter gets under --parametrization mup (check a --spec's MUP_ROLES here)

Train with μP: `ntjax train --parametrization mup --base-width 32 --d-model 256 --lr LR`, where LR was
found by a sweep at width 32 (`ntjax sweep --preset tiny --parametrization mup ...`). See ntjax/core/mup.py.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ntjax.cli import Result, add_json_flag


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mup", help="μP tools: the coordinate check and the parameter roles",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_json_flag(p)
    p.set_defaults(run=_no_subcommand)
    msub = p.add_subparsers(dest="mup_command", metavar="{check,roles}")

    c = msub.add_parser("check", help="coordinate check: per-layer RMS against width under SP and μP")
    # Defaults live in ntjax.scaling.coord_check (not imported here: `ntjax --help` must not load JAX).
    c.add_argument("--widths", type=_ints, metavar="W[,W...]", help="d_model values (default 32,64,128,256)")
    c.add_argument("--steps", type=int, help="Adam steps (default 10)")
    c.add_argument("--lr", type=float, help="constant Adam LR (default 0.01)")
    c.add_argument("--base-width", type=int, help="μP base width (default: the narrowest width)")
    c.add_argument("--layers", type=int, default=2, help="transformer blocks (default 2)")
    c.add_argument("--heads", type=int, default=2, help="attention heads, fixed across widths (default 2)")
    c.add_argument("--parametrization", choices=["sp", "mup", "both"], default="both")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default="runs/mup-check", help="folder for coord_check.json and plots/ "
                                                           "(default runs/mup-check)")
    c.add_argument("--no-plot", action="store_true")
    add_json_flag(c)
    c.set_defaults(run=run_check)

    r = msub.add_parser("roles", help="each parameter's μP role and init / LR multipliers")
    r.add_argument("--preset", default="tiny", help="tiny | default | small (default tiny)")
    r.add_argument("--d-model", type=int, help="the width (default: the preset's)")
    r.add_argument("--base-width", type=int, help="the tuned width (default: the preset's d_model)")
    r.add_argument("--spec", help="a spec file declaring MUP_ROLES (default: ntjax's GPT)")
    add_json_flag(r)
    r.set_defaults(run=run_roles)


def _no_subcommand(args: argparse.Namespace) -> Result:
    from ntjax.errors import NtjaxError
    raise NtjaxError("choose a subcommand: ntjax mup check | ntjax mup roles (see ntjax mup --help)")


def run_check(args: argparse.Namespace) -> Result:
    from ntjax.cli import dumps
    from ntjax.errors import NtjaxError
    from ntjax.scaling import coord_check as cc

    if args.layers < 1 or args.heads < 1:
        raise NtjaxError("--layers and --heads must be at least 1")
    lr = cc.DEFAULT_LR if args.lr is None else args.lr
    steps = cc.DEFAULT_STEPS if args.steps is None else args.steps
    if lr <= 0:
        raise NtjaxError(f"--lr must be positive (got {lr})")
    if args.base_width is not None and args.base_width <= 0:
        raise NtjaxError(f"--base-width must be positive (got {args.base_width})")
    params = ("sp", "mup") if args.parametrization == "both" else (args.parametrization,)
    result = cc.coord_check(args.widths or cc.DEFAULT_WIDTHS, steps, lr=lr, parametrizations=params,
                            base_width=args.base_width, seed=args.seed, n_layers=args.layers, n_heads=args.heads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result["plot"] = None
    if not args.no_plot:
        from ntjax.scaling.mup_plot import plot_coord_check
        result["plot"] = str(plot_coord_check(result, out / "plots" / "coord_check.png"))
    (out / "coord_check.json").write_text(dumps(result) + "\n")
    result["json"] = str(out / "coord_check.json")
    summary = {p: {"coord_ratio": r["coord_ratio"], "update_ratio": r["update_ratio"],
                   "max_activation_slope": max(r["activation_slope"].values())}
               for p, r in result["results"].items()}
    result["summary"] = summary
    w = result["widths"]
    lines = [f"Coordinate check: widths {','.join(map(str, w))} ({w[-1] / w[0]:g}x), {steps} Adam steps at lr "
             f"{lr:g}, base width {result['base_width']}"]
    for p, s in summary.items():
        flat = s["coord_ratio"] <= 2 and s["update_ratio"] <= 2
        lines.append(f"  {p.upper():<4} largest RMS ratio widest/narrowest: activations {s['coord_ratio']:.3g}, "
                     f"updates {s['update_ratio']:.3g}, log-log slope ≤ {s['max_activation_slope']:.2f} "
                     f"-> {'flat in width' if flat else 'grows with width'}")
    if "mup" in summary and summary["mup"]["coord_ratio"] > 2:
        lines.append("  μP curves are not flat: a layer has the wrong role or multiplier (see `ntjax mup roles`)")
    lines.append(f"  per-layer curves: {result['json']}" + (f"; plot: {result['plot']}" if result["plot"] else ""))
    return Result(data=result, human="\n".join(lines))


def run_roles(args: argparse.Namespace) -> Result:
    from flax import nnx

    from ntjax.core import config as config_lib
    from ntjax.core import mup
    from ntjax.core.task import build_task
    from ntjax.errors import NtjaxError

    cfg = config_lib.preset(args.preset)
    model = cfg.model if args.d_model is None else dataclasses.replace(cfg.model, d_model=args.d_model)
    base_width = args.base_width or config_lib.preset(args.preset).model.d_model
    cfg = dataclasses.replace(cfg, model=model, spec=str(Path(args.spec).absolute()) if args.spec else None,
                              parametrization="mup", base_width=base_width)
    cfg = config_lib.resolve(cfg)
    spec = mup.spec_for(cfg)
    if spec is None:
        raise NtjaxError("this model has no width to scale: μP roles need ntjax's GPT or a --spec model")
    task = build_task(cfg)
    rows = mup.role_table(nnx.state(task.model, nnx.Param), spec)
    data = {"width": spec.widths.width, "base_width": spec.widths.base_width, "hidden_init": spec.hidden_init,
            "logit_multiplier": spec.widths.ratio if not cfg.spec else None,
            "attention_multiplier": spec.widths.attn_multiplier if not cfg.spec else None, "params": rows}
    lines = [f"μP roles at width {data['width']} (base {data['base_width']}, m = {spec.widths.mult:g}):"]
    lines += [f"  {r['name']:<40} {str(tuple(r['shape'])):<14} {r['role']:<7} init ×{r['init_mult']:.4g}  "
              f"lr ×{r['lr_mult']:.4g}" for r in rows]
    if not cfg.spec:
        lines.append(f"  tied readout logits ×{spec.widths.ratio:.4g}; attention scores "
                     f"×{spec.widths.attn_multiplier:.4g} on top of 1/sqrt(d_head)")
    return Result(data=data, human="\n".join(lines))
