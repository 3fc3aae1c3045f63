"""Score the installed diagnosis engine (`ntjax debug` / `ntjax curves`) on the labelled benchmark in
benchmarks/diagnosis/ (labels.json; schema and scoring rules in benchmarks/diagnosis/README.md).

    python benchmarks/diagnosis.py --json [--split dev|heldout|both] [--subset fast] [--plot PNG]

Prints one JSON object: per split, top-1/top-3 cause accuracy, finding recall and precision within the
onset tolerance, warnings on healthy runs, expected calibration error (10 bins) with a reliability
diagram PNG, a per-family breakdown and the misses. Each item runs `ntjax debug PATH --json --symptom S`
in this process through the CLI's own parser and command, so the score is of exactly what the CLI prints.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "diagnosis"
sys.path.insert(0, str(HERE))

import labelset  # noqa: E402

N_BINS = 10
HEALTHY_CONFIDENCE = 0.5  # a healthy item is right when no hypothesis reaches this confidence
TOL_STEPS, TOL_FRACTION = 5, 0.05  # onset tolerance: max(5 steps, 5% of the run's last step)
REPORTED = ("warning", "critical")  # severities that count as a reported finding
# The CI subset: fixed ids spanning every family, faults and healthy runs, both splits; fast to read.
FAST_SUBSET = (
    "syn_healthy_0_jsonl", "syn_healthy_2_hf", "syn_spike_0_lightning", "syn_oscillation_3_jsonl",
    "syn_plateau_3_jsonl", "syn_divergence_0_hf", "syn_nan_0_jsonl", "syn_overfitting_2_jsonl",
    "syn_trivial_solution_3_jsonl", "syn_resume_regression_3_jsonl",
    "ntjax_tiny_lr3_s0", "ntjax_tiny_healthy_s1", "ntjax_mlp_init_large",
    "torch_transformer_adamw_healthy_s0", "torch_transformer_postln_nowarmup_s0", "torch_lstm_adamw_tiny_data",
    "torch_lstm_sgd_healthy_s0", "torch_mlp_adamw_healthy_s1", "torch_mlp_sgd_lr_high_s0", "torch_mlp_adamw_fp16",
    "torch_cnn_sgd_healthy_s0", "torch_cnn_adamw_lr_low",
    "public_hf_whisper_small_braj", "public_lightning_cv_classifier",
)


def role(metric: str) -> str:
    """A metric's role: eval loss, train loss, or its own name."""
    low = metric.lower()
    if "loss" in low:
        return "eval_loss" if any(w in low for w in ("eval", "val", "test")) else "train_loss"
    return low


def run_engine(parser: argparse.ArgumentParser, path: str, symptom: str) -> dict[str, Any]:
    """`ntjax debug PATH --json --symptom SYMPTOM`, in process; library prints go nowhere."""
    args = parser.parse_args(["debug", path, "--json", "--symptom", symptom])
    with contextlib.redirect_stdout(io.StringIO()):
        data = args.run(args).data
    if "findings" not in data:  # an engine whose debug output lacks them: ask `ntjax curves`
        with tempfile.TemporaryDirectory() as tmp:
            c = parser.parse_args(["curves", path, "--json", "--no-plot", "--out", tmp])
            with contextlib.redirect_stdout(io.StringIO()):
                data["findings"] = c.run(c).data.get("findings", [])
    return data


def last_step(path: str) -> int:
    from ntjax.readers import read_run
    table = read_run(path)
    return max((int(s.step[-1]) for s in table.series.values() if len(s.step)), default=0)


def score_item(item: dict[str, Any], out: dict[str, Any], last: int) -> dict[str, Any]:
    """One item's outcome: the predicted causes, top-1/top-3 right, finding matches, healthy warnings."""
    hyps = out.get("hypotheses") or []
    causes = [h.get("cause") for h in hyps]
    top_conf = float(hyps[0].get("confidence", 0.0)) if hyps else None
    if item["healthy"]:
        top1 = top3 = not any(float(h.get("confidence", 0)) >= HEALTHY_CONFIDENCE for h in hyps)
    else:
        top1 = bool(causes) and causes[0] == item["cause"]
        top3 = bool({item["cause"], *item["acceptable"]} & set(causes[:3]))
    tol = max(TOL_STEPS, TOL_FRACTION * last)
    reported = [f for f in out.get("findings", []) if f.get("severity") in REPORTED and f.get("kind") != "healthy"]

    def matches(f: dict, e: dict) -> bool:
        return (f.get("kind") == e["kind"] and role(str(f.get("metric", ""))) == role(e["metric"])
                and f.get("start_step") is not None and abs(float(f["start_step"]) - e["start_step"]) <= tol)

    recalled = [any(matches(f, e) for f in reported) for e in item["findings"]]
    true_pos = [any(matches(f, e) for e in item["findings"]) for f in reported]
    return {"id": item["id"], "family": item["family"], "cause": item["cause"], "healthy": item["healthy"],
            "predicted": causes[:3], "confidence": top_conf, "top1": top1, "top3": top3,
            # calibration: the first hypothesis is a prediction; on a healthy item it is wrong
            "calibration": None if top_conf is None else (top_conf, bool(not item["healthy"] and top1)),
            "expected_findings": len(item["findings"]), "recalled": sum(recalled),
            "reported": len(reported) if item["findings_complete"] else 0,
            "reported_true": sum(true_pos) if item["findings_complete"] else 0,
            "healthy_warnings": [f"{f.get('kind')} in {f.get('metric')} at {f.get('start_step')}" for f in reported]
            if item["healthy"] else [],
            "missed_findings": [e for e, r in zip(item["findings"], recalled) if not r], "tolerance": tol}


def ece(pairs: list[tuple[float, bool]], n_bins: int = N_BINS) -> tuple[float | None, list[dict]]:
    """Expected calibration error over equal-width confidence bins, weighted by bin size."""
    bins = [{"lo": i / n_bins, "hi": (i + 1) / n_bins, "n": 0, "confidence": 0.0, "accuracy": 0.0}
            for i in range(n_bins)]
    for conf, right in pairs:
        b = bins[min(n_bins - 1, max(0, int(conf * n_bins)))]
        b["n"] += 1
        b["confidence"] += conf
        b["accuracy"] += float(right)
    total, err = len(pairs), 0.0
    for b in bins:
        if b["n"]:
            b["confidence"] /= b["n"]
            b["accuracy"] /= b["n"]
            err += b["n"] / total * abs(b["accuracy"] - b["confidence"])
    return (round(err, 4) if total else None), bins


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one split (or one family)."""
    n = len(rows)
    faulty = [r for r in rows if not r["healthy"]]
    healthy = [r for r in rows if r["healthy"]]
    pairs = [r["calibration"] for r in rows if r["calibration"] is not None]
    err, bins = ece(pairs)
    expected = sum(r["expected_findings"] for r in rows)
    reported = sum(r["reported"] for r in rows)
    warned = [r for r in healthy if r["healthy_warnings"]]
    return {
        "n": n, "n_faulty": len(faulty), "n_healthy": len(healthy),
        "top1": _ratio(sum(r["top1"] for r in rows), n), "top3": _ratio(sum(r["top3"] for r in rows), n),
        "top1_faulty": _ratio(sum(r["top1"] for r in faulty), len(faulty)),
        "healthy_correct": _ratio(sum(r["top1"] for r in healthy), len(healthy)),
        "findings": {"expected": expected, "recalled": sum(r["recalled"] for r in rows),
                     "recall": _ratio(sum(r["recalled"] for r in rows), expected),
                     "reported_on_complete_items": reported, "matched": sum(r["reported_true"] for r in rows),
                     "precision": _ratio(sum(r["reported_true"] for r in rows), reported)},
        "healthy_warnings": {"count": len(warned), "items": [{"id": r["id"], "findings": r["healthy_warnings"]}
                                                             for r in warned]},
        "calibration": {"ece": err, "n": len(pairs), "bins": [{k: round(v, 4) if isinstance(v, float) else v
                                                                for k, v in b.items()} for b in bins if b["n"]]},
    }


def _compact(s: dict[str, Any]) -> dict[str, Any]:
    """A summary's headline figures (for a breakdown)."""
    return {"n": s["n"], "top1": s["top1"], "top3": s["top3"], "healthy_correct": s["healthy_correct"],
            "recall": s["findings"]["recall"], "precision": s["findings"]["precision"],
            "healthy_warnings": s["healthy_warnings"]["count"], "ece": s["calibration"]["ece"],
            "ece_n": s["calibration"]["n"]}


def reliability_png(per_split: dict[str, list[tuple[float, bool]]], path: Path) -> str:
    """A reliability diagram per split: accuracy against stated confidence, bar width = bin, counts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(per_split), figsize=(5 * len(per_split), 4.6), squeeze=False)
    for ax, (name, pairs) in zip(axes[0], per_split.items()):
        err, bins = ece(pairs)
        filled = [b for b in bins if b["n"]]
        ax.bar([b["lo"] for b in filled], [b["accuracy"] for b in filled], width=1 / N_BINS, align="edge",
               edgecolor="black", color="#4c72b0", label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o", color="#dd8452",
                label="bin: mean confidence, fraction right")
        for b in filled:
            ax.text(b["lo"] + 0.5 / N_BINS, min(0.95, b["accuracy"] + 0.02), str(b["n"]), ha="center", fontsize=8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="stated confidence of the top cause", ylabel="fraction right",
               title=f"{name}: ECE {err if err is not None else 'n/a'} ({len(pairs)} predictions)")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def evaluate(split: str = "both", subset: str | None = None, plot: Path | None = None,
             labels: Path = labelset.LABELS) -> dict[str, Any]:
    """Run the engine on the chosen items and return the report (the JSON object `--json` prints)."""
    from ntjax.cli import build_parser
    t0 = time.time()
    items = labelset.load(labels)
    if subset == "fast":
        wanted = set(FAST_SUBSET)
        items = [it for it in items if it["id"] in wanted]
    splits = ("dev", "heldout") if split == "both" else (split,)
    items = [it for it in items if it["split"] in splits]
    parser = build_parser()
    rows, errors = [], []
    for it in items:
        path = str(HERE / it["path"])
        try:
            out = run_engine(parser, path, it["symptom"])
            row = score_item(it, out, last_step(path))
        except (Exception, SystemExit) as e:  # a crash on an item is a miss, reported with its message
            errors.append({"id": it["id"], "error": f"{type(e).__name__}: {e}"[:300]})
            row = score_item(it, {"hypotheses": [], "findings": []}, 0)
            row["top1"] = row["top3"] = False
        row["split"], row["batch"] = it["split"], it.get("batch", labelset.FIRST_BATCH)
        rows.append(row)
    report: dict[str, Any] = {
        "n_items": len(rows), "subset": subset or "all",
        "rules": {"onset_tolerance": f"max({TOL_STEPS} steps, {TOL_FRACTION:.0%} of the run's last step)",
                  "reported_severities": list(REPORTED), "healthy_right_when": f"no hypothesis >= {HEALTHY_CONFIDENCE}",
                  "ece_bins": N_BINS, "calibration_prediction": "the first hypothesis of each item"},
        "splits": {}, "errors": errors,
    }
    for s in splits:
        part = [r for r in rows if r["split"] == s]
        summary = summarise(part)
        families = sorted({r["family"] for r in part})
        summary["by_family"] = {f: {k: v for k, v in summarise([r for r in part if r["family"] == f]).items()
                                    if k in ("n", "top1", "top3", "healthy_correct")} | {
                                    "recall": summarise([r for r in part if r["family"] == f])["findings"]["recall"]}
                                for f in families}
        # by the round that added the items: a held-out batch made after the last tuning is scored here first
        summary["by_batch"] = {b: _compact(summarise([r for r in part if r["batch"] == b]))
                               for b in labelset.BATCHES if any(r["batch"] == b for r in part)}
        summary["misses"] = [{"id": r["id"], "cause": r["cause"], "predicted": r["predicted"],
                              "confidence": r["confidence"]} for r in part if not r["top1"]]
        summary["missed_findings"] = [{"id": r["id"], **e} for r in part for e in r["missed_findings"]]
        report["splits"][s] = summary
    png = plot or Path(tempfile.gettempdir()) / "ntjax-diagnosis-benchmark" / "reliability.png"
    report["reliability_png"] = reliability_png(
        {s: [r["calibration"] for r in rows if r["split"] == s and r["calibration"] is not None] for s in splits}, png)
    report["seconds"] = round(time.time() - t0, 1)
    return report


def human(report: dict[str, Any]) -> str:
    lines = [f"diagnosis benchmark: {report['n_items']} items ({report['subset']}), {report['seconds']} s"]
    for name, s in report["splits"].items():
        f = s["findings"]
        lines.append(f"{name:8s} n={s['n']:3d} top1={s['top1']} top3={s['top3']} "
                     f"recall={f['recall']} precision={f['precision']} "
                     f"healthy_warnings={s['healthy_warnings']['count']} "
                     f"ECE={s['calibration']['ece']}")
        for batch, b in s.get("by_batch", {}).items():
            lines.append(f"    batch {batch:6s}   n={b['n']:3d} top1={b['top1']} top3={b['top3']} recall={b['recall']} "
                         f"healthy_warnings={b['healthy_warnings']} ECE={b['ece']}")
        for fam, b in s["by_family"].items():
            lines.append(f"    {fam:18s} n={b['n']:3d} top1={b['top1']} top3={b['top3']} recall={b['recall']}")
    lines.append(f"reliability diagram: {report['reliability_png']}")
    if report["errors"]:
        lines.append(f"errors: {len(report['errors'])} (first: {report['errors'][0]})")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--split", choices=("dev", "heldout", "both"), default="both")
    p.add_argument("--subset", choices=("fast",), help="the fixed CI subset (FAST_SUBSET)")
    p.add_argument("--quick", action="store_true", help="same as --subset fast (the other benchmarks' flag)")
    p.add_argument("--plot", type=Path, help="where to write the reliability diagram PNG")
    args = p.parse_args()
    report = evaluate(args.split, "fast" if args.quick else args.subset, args.plot)
    print(json.dumps(report, allow_nan=False) if args.json else human(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
