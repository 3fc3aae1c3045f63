"""Train the default preset from Python, the same run `ntjax train` makes, then read its findings.

    python examples/train_default.py --out runs/example --steps 300

The library entry points are `ntjax.core.config.preset`, `ntjax.trainer.train` and `ntjax.readers.read_run`;
the run folder is the same as the CLI's (metrics.jsonl, config.json, checkpoints/, plots/, report.md).
"""
import argparse
import dataclasses

from ntjax.core import config
from ntjax.diagnostics.detectors import analyse
from ntjax.readers import read_run
from ntjax.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--log", default="jsonl,tensorboard", help="comma list of logging backends")
    args = parser.parse_args()

    cfg = config.preset(args.preset)
    cfg = dataclasses.replace(cfg, steps=args.steps or cfg.steps, log=tuple(args.log.split(",")))
    result = train(cfg, args.out)
    print(f"final train loss {result.final_train_loss:.4f}; best eval loss {result.best_eval_loss:.4f} "
          f"at step {result.best_eval_step}; {result.tokens_per_s:,.0f} tokens/s; report: {args.out}/report.md")
    analysis = analyse(read_run(args.out))
    print(analysis.verdict)
    for finding in analysis.findings:
        print(f"- [{finding.severity}] {finding.kind}: {finding.evidence}")


if __name__ == "__main__":
    main()
