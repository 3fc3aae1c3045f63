"""`ntjax eval --hf-model DIR --eval-data FILE` and `ntjax eval --command CMD`: evaluating the user's own
model — a local Hugging Face folder with its own tokenizer (the torch code is in
`ntjax.bridges.hf_eval`), and/or the user's own eval command run as an `ntjax run` whose logged `eval/*`
metrics (loss, accuracy, any extra the script names) are collected. What cannot be evaluated correctly is
refused with one line."""
from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError

REPORT_FILE = "eval_report.md"


def hf_metrics(model_dir: str, eval_data: str | None, seq_len: int | None, batch_size: int,
               max_blocks: int | None) -> dict[str, Any]:
    if not eval_data:
        raise NtjaxError("--hf-model needs --eval-data FILE (a local .txt, or .jsonl with a 'text' field)")
    try:
        from ntjax.bridges import hf_eval
    except ImportError as e:
        raise NtjaxError(f"--hf-model needs torch and transformers installed ({e})") from None
    try:
        return hf_eval.evaluate(model_dir, eval_data, seq_len=seq_len, batch_size=batch_size, max_blocks=max_blocks)
    except hf_eval.EvalRefused as e:
        raise NtjaxError(f"cannot evaluate {model_dir} correctly: {e}") from None


def command_metrics(command: str, out: Path, grace: float) -> dict[str, Any]:
    """Run the user's eval command as an ntjax run; the last logged value of every `eval/*` metric."""
    import sys

    from ntjax.readers import ReadError, read_run
    from ntjax.usercmd.launch import launch_and_report, write_run_file

    run_dir = out / f"eval-run-{time.strftime('%Y%m%d-%H%M%S')}"
    argv = shlex.split(command)
    write_run_file(run_dir, argv)
    outcome = launch_and_report(argv, run_dir, grace, "warn",
                                echo=lambda line: print(line, file=sys.stderr, flush=True))
    if outcome.stopped or outcome.exit_code != 0:
        first = outcome.message.splitlines()[0] if outcome.message else f"exit status {outcome.exit_code}"
        raise NtjaxError(f"the eval command did not finish cleanly ({first}); see {run_dir}/console.log")
    src = Path(outcome.metrics_source)
    try:
        table = read_run(src.parent if src.name == "metrics.jsonl" else src)
    except ReadError as e:
        raise NtjaxError(str(e)) from None
    metrics = {n: float(s.value[-1]) for n, s in table.series.items() if n.startswith("eval/") and len(s)}
    if not metrics:
        raise NtjaxError(f"the eval command logged no eval metric (logged: {', '.join(table.names())}); log them "
                         "with monitor.log_eval(step, {'loss': ..., 'accuracy': ...})")
    steps = [int(s.step[-1]) for n, s in table.series.items() if n.startswith("eval/") and len(s)]
    return {"run_dir": str(run_dir), "metrics": metrics, "step": max(steps)}


def render(out: dict[str, Any]) -> str:
    lines = ["# Evaluation report", ""]
    if out.get("hf_model"):
        h = out["hf"]
        lines += [f"- Model: {out['hf_model']} ({h['model_class']}, {h['n_params']:,} parameters), its own tokenizer "
                  f"({h['tokenizer_size']} tokens)",
                  f"- Data: {out['eval_data']}: {h['blocks']} blocks of {h['seq_len']} tokens, {h['tokens']:,} "
                  "predicted tokens", ""]
    if out.get("command"):
        lines += [f"- Eval command: `{out['command']['command']}` (run folder {out['command']['run_dir']})", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" for k, v in out["metrics"].items()]
    return "\n".join(lines + ["", out["verdict"], ""]) + "\n"


def run_user_eval(args) -> dict[str, Any]:
    """The JSON object of `ntjax eval --hf-model/--command`; writes eval_report.md into --out."""
    out: dict[str, Any] = {"checkpoint": None, "step": None, "metrics": {}, "hf_model": args.hf_model,
                           "eval_data": args.eval_data, "regressions": [], "regressed": False}
    folder = Path(args.out or f"runs/eval-{Path(args.hf_model or 'command').name}")
    if args.hf_model:
        h = hf_metrics(args.hf_model, args.eval_data, args.hf_seq_len, 8, args.batches)
        out["hf"] = {k: v for k, v in h.items() if k != "metrics"}
        out["metrics"].update(h["metrics"])
    if args.user_command:
        c = command_metrics(args.user_command, folder, args.grace)
        c["command"] = args.user_command
        out["command"] = c
        out["step"] = c["step"]
        for k, v in c["metrics"].items():  # the model's own numbers come first; the command's under its name
            out["metrics"].setdefault(k, v)
        if args.hf_model:
            out["metrics_command"] = c["metrics"]
    m = out["metrics"]
    parts = [f"{k} {v:.4f}" for k, v in m.items()]
    out["verdict"] = "OK: " + ", ".join(parts)
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / REPORT_FILE
    report.write_text(render(out))
    out["report"] = str(report)
    return out
