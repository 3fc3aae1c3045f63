"""benchmarks/diagnosis/fit_engine.py: fits the engine's weights on dev items only, writes a weights file
the engine loads, and never opens a held-out item."""
import importlib.util
import json
from pathlib import Path

import curvegen as cg
import numpy as np

from ntjax.diagnostics.detectors import analyse
from ntjax.diagnostics.hypotheses import WEIGHTS_FILE, diagnose, load_weights

ROOT = Path(__file__).resolve().parent.parent


def _fit_module():
    spec = importlib.util.spec_from_file_location("fit_engine", ROOT / "benchmarks" / "diagnosis" / "fit_engine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_csv(path: Path, cols: dict) -> None:
    ev = dict(zip(cols["eval_step"].astype(int), cols["eval"]))
    rows = ["step,loss,lr,val_loss"]
    for s, l, lr in zip(cols["step"].astype(int), cols["train"], cols["lr"]):
        rows.append(f"{s},{l:.6g},{lr:.6g},{ev[s]:.6g}" if s in ev else f"{s},{l:.6g},{lr:.6g},")
    path.write_text("\n".join(rows) + "\n")


def test_fit_on_dev_only(tmp_path, capsys):
    items = []
    cases = [("divergence", 700, "lr_too_high"), ("overfitting", 500, "overfitting"),
             ("slow_convergence", 0, "lr_too_low"), (None, 0, None)]
    for kind, onset, cause in cases:
        for seed in range(3):
            cols = cg.run(cg.SHAPES[seed], seed, 0.03, n=1000)
            if kind:
                cols = cg.inject(kind, cols, onset, seed)
            name = f"{kind or 'healthy'}_{seed}.csv"
            _write_csv(tmp_path / name, cols)
            items.append({"id": name, "path": name, "split": "dev", "cause": cause, "healthy": cause is None,
                          "acceptable": [], "symptom": ""})
    items.append({"id": "secret", "path": "does/not/exist.csv", "split": "heldout", "cause": "lr_too_low"})
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"items": items}))
    out = tmp_path / "weights.json"
    assert _fit_module().main(["--labels", str(labels), "--out", str(out), "--hand", str(WEIGHTS_FILE),
                               "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_dev"] == 12 and summary["skipped"] == 0 and 0.2 <= summary["temperature"] <= 5
    assert summary["oof_top1"] >= 0.75
    fitted = json.loads(out.read_text())
    assert set(fitted["causes"]) == set(load_weights()["causes"]) and "hand" in fitted
    # only linked (cause, signal) pairs exist after the fit
    hand = load_weights()
    for cause, spec in fitted["causes"].items():
        assert set(spec["weights"]) <= set(hand["causes"][cause]["weights"])
        # the user's words are not fitted: the benchmark's symptoms were written by its labeller
        for signal, w in spec["weights"].items():
            if signal.startswith("symptom_"):
                assert w == hand["causes"][cause]["weights"][signal]
    assert any(s.startswith("symptom_") for spec in fitted["causes"].values() for s in spec["weights"])
    tab = cg.table(cg.inject("divergence", cg.run("power_law", 5, 0.03, n=1000), 700, 5))
    d = diagnose(tab, analyse(tab), set(), "x", weights=fitted)
    assert d.hypotheses[0].cause == "lr_too_high" and d.hypotheses[0].confidence > 0.5
    assert np.isfinite(d.p_healthy)
