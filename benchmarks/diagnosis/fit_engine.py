"""Fit `ntjax debug`'s priors, signal weights and temperature on the diagnosis benchmark's dev part.

The model is `ntjax.diagnostics.hypotheses`: per cause, log-odds against "healthy" = prior + sum_s w_cs * x_s, and
confidence = softmax(log-odds / T). Only the (cause, signal) pairs that the hand-set weights link are
fitted (a signal never starts to count for a cause it has no mechanism for), each pulled toward its
hand-set value by an L2 penalty, so a small dev set refines the weights instead of memorising it. A run
labelled with several acceptable causes counts as right when the probability lands on any of them.
The L2 strength and the temperature are chosen by grouped cross-validation on dev: leave one family out
(ntjax, torch_cnn, torch_mlp, ..., synthetic, public), so what is picked is what carries over to a family
the weights were not fitted on, not to another seed of the same run. The temperature is fitted on
those out-of-family predictions, so it corrects the over-confidence that fitting the weights on the
same runs (or on the same family) would hide.

    python benchmarks/diagnosis/fit_engine.py [--labels benchmarks/diagnosis/labels.json]
                                              [--out ntjax/data/diagnosis_weights.json] [--json]

Only items with split == "dev" are read; held-out items are never opened.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

L2_WEIGHT = 0.3  # pull of each linked weight toward its hand-set value (per unit squared); CV picks from L2_GRID
L2_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
L2_PRIOR = 0.1
HEALTHY = "healthy"


def item_path(item: dict, labels_file: Path) -> Path:
    """An item's run path: absolute, relative to the labels file, or relative to the repository."""
    p = Path(item["path"])
    if p.is_absolute():
        return p
    for base in (labels_file.parent, ROOT):
        if (base / p).exists():
            return base / p
    return ROOT / p


def features(item: dict, labels_file: Path) -> dict[str, float]:
    """The engine's signals on one run, as {signal name: strength}."""
    from ntjax.diagnostics.context import read_context
    from ntjax.diagnostics.detectors import analyse
    from ntjax.diagnostics.evidence import collect, parse_symptoms
    from ntjax.readers import read_run
    table = read_run(item_path(item, labels_file))
    return {s.name: s.value for s in collect(table, analyse(table), read_context(table),
                                             parse_symptoms(item.get("symptom")))}


def targets(item: dict) -> set[str]:
    """The causes counted right for an item (its cause and the acceptable ones; "healthy" when healthy)."""
    if item.get("healthy") or item.get("cause") in (None, "", HEALTHY):
        return {HEALTHY}
    return {item["cause"], *(item.get("acceptable") or [])}


class Model:
    """The engine's log-linear model as arrays: "healthy" (prior fixed at 0) then the causes; priors b (C)
    and weights W ((1 + C) x S): `linked` pairs carry a weight, `mask` the ones that are fitted."""

    def __init__(self, weights: dict, signals: list[str]):
        self.causes = list(weights["causes"])
        self.signals = signals
        specs = [weights.get(HEALTHY, {"prior": 0.0, "weights": {}})] + [weights["causes"][c] for c in self.causes]
        K, S = len(specs), len(signals)
        self.b0 = np.array([spec["prior"] for spec in specs[1:]], float)
        self.W0 = np.zeros((K, S))
        self.linked = np.zeros((K, S), bool)
        for i, spec in enumerate(specs):
            for j, s in enumerate(signals):
                w = spec["weights"].get(s)
                if w is not None:
                    self.W0[i, j], self.linked[i, j] = w, True
        # The user's words stay at their hand values: the benchmark's symptoms are written by whoever
        # labelled the run, so a fitted symptom weight learns the labeller's wording, not the runs. So do
        # the pairs the hand file lists under "fixed", each with its reason.
        fixed = np.array([s.startswith("symptom_") for s in signals])[None, :].repeat(K, axis=0)
        names = [HEALTHY] + self.causes
        for cause, pairs in weights.get("fixed", {}).items():
            for s in pairs:
                fixed[names.index(cause), signals.index(s)] = True
        self.mask = self.linked & ~fixed

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        C = len(self.causes)
        W = self.W0.copy()
        W[self.mask] = theta[C:]
        return theta[:C], W

    def pack(self, b: np.ndarray, W: np.ndarray) -> np.ndarray:
        return np.concatenate([b, W[self.mask]])

    def logits(self, X: np.ndarray, b: np.ndarray, W: np.ndarray) -> np.ndarray:
        """(n, 1 + C): "healthy" in column 0 with prior 0."""
        return X @ W.T + np.concatenate([[0.0], b])


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def fit(model: Model, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MAP priors and weights: set-likelihood of the acceptable causes plus the L2 pull to the hand values."""
    def loss(theta):
        b, W = model.unpack(theta)
        p = _softmax(model.logits(X, b, W))
        hit = (p * Y).sum(axis=1)
        nll = -np.sum(np.log(np.maximum(hit, 1e-12)))
        q = p * Y / np.maximum(hit, 1e-12)[:, None]
        g = p - q  # d nll / d logits
        gb = g[:, 1:].sum(axis=0) + 2 * L2_PRIOR * (b - model.b0)
        gW = g.T @ X + 2 * L2_WEIGHT * (W - model.W0)
        reg = L2_PRIOR * np.sum((b - model.b0) ** 2) + L2_WEIGHT * np.sum(((W - model.W0) * model.mask) ** 2)
        return nll + reg, model.pack(gb, gW)
    res = minimize(loss, model.pack(model.b0, model.W0), jac=True, method="L-BFGS-B")
    return model.unpack(res.x)


def fit_temperature(Z: np.ndarray, Y: np.ndarray) -> float:
    """The T minimising the set-NLL of softmax(Z / T) (a 1-D search over a log grid, then refined)."""
    def nll(t):
        p = _softmax(Z / t)
        return -np.sum(np.log(np.maximum((p * Y).sum(axis=1), 1e-12)))
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 60))
    t0 = float(grid[np.argmin([nll(t) for t in grid])])
    fine = np.linspace(t0 * 0.9, t0 * 1.1, 21)
    return float(fine[np.argmin([nll(t) for t in fine])])


def grouped_oof(model: Model, X: np.ndarray, Y: np.ndarray, groups: np.ndarray, l2: float) -> np.ndarray:
    """Out-of-group logits: each group's runs scored by weights fitted on the other groups at L2 `l2`."""
    global L2_WEIGHT
    keep, L2_WEIGHT = L2_WEIGHT, l2
    Z = np.zeros((len(X), Y.shape[1]))
    try:
        for g in np.unique(groups):
            test = groups == g
            b, W = fit(model, X[~test], Y[~test])
            Z[test] = model.logits(X[test], b, W)
    finally:
        L2_WEIGHT = keep
    return Z


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", default=str(ROOT / "benchmarks" / "diagnosis" / "labels.json"))
    ap.add_argument("--out", default=str(ROOT / "ntjax" / "data" / "diagnosis_weights.json"))
    ap.add_argument("--hand", default=None, help="the hand-set weights to start from (default: --out)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    labels_file = Path(args.labels)
    items = json.loads(labels_file.read_text())
    items = items["items"] if isinstance(items, dict) else items
    dev = [it for it in items if it.get("split") == "dev"]
    hand = json.loads(Path(args.hand or args.out).read_text())
    hand = hand.get("hand", hand)  # a fitted file keeps the hand-set values it started from
    feats, kept = [], []
    for it in dev:
        try:
            feats.append(features(it, labels_file))
            kept.append(it)
        except Exception as e:  # an unreadable run is reported, not fitted
            print(f"skip {it['id']}: {e}", file=sys.stderr)
    signals = sorted({s for c in [*hand["causes"].values(), hand.get(HEALTHY, {"weights": {}})]
                      for s in c["weights"]})
    model = Model(hand, signals)
    X = np.array([[f.get(s, 0.0) for s in signals] for f in feats])
    classes = [HEALTHY] + model.causes
    Y = np.array([[1.0 if c in targets(it) else 0.0 for c in classes] for it in kept])
    known = Y.sum(axis=1) > 0  # labels naming causes outside the engine's list cannot be fitted
    X, Y = X[known], Y[known]
    groups = np.array([it.get("family", "?") for it in kept])[known]
    if len(set(groups)) < 3:  # too few families to hold one out: plain 5-fold
        groups = np.arange(len(groups)) % 5
    cv = {}
    for l2 in L2_GRID:
        Z = grouped_oof(model, X, Y, groups, l2)
        t = fit_temperature(Z, Y)
        p = _softmax(Z / t)
        cv[l2] = (float(-np.mean(np.log(np.maximum((p * Y).sum(axis=1), 1e-12)))), t, Z)
    l2 = min(cv, key=lambda k: cv[k][0])  # the out-of-family NLL picks the regularisation
    _, temperature, Z = cv[l2]
    global L2_WEIGHT
    L2_WEIGHT = l2
    b, W = fit(model, X, Y)
    out = {"version": 1, "source": f"fitted by benchmarks/diagnosis/fit_engine.py on {int(known.sum())} dev runs "
                                   f"of {labels_file.name} (L2 {L2_WEIGHT} toward the hand-set weights, chosen "
                                   f"with the temperature by leave-one-family-out cross-validation)",
           "temperature": round(temperature, 4), "n_dev": int(known.sum()), "l2": L2_WEIGHT,
           "cv": {str(k): {"nll": round(v[0], 4), "temperature": round(v[1], 3)} for k, v in cv.items()},
           HEALTHY: {"prior": 0.0, "weights": {s: round(float(W[0, j]), 3) for j, s in enumerate(signals)
                                               if model.linked[0, j]}},
           "causes": {c: {"prior": round(float(b[i]), 3),
                          "weights": {s: round(float(W[i + 1, j]), 3) for j, s in enumerate(signals)
                                      if model.linked[i + 1, j]}} for i, c in enumerate(model.causes)},
           "hand": hand}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    p = _softmax(Z / temperature)
    top = np.argmax(p, axis=1)
    summary = {"n_dev": int(known.sum()), "temperature": temperature, "l2": L2_WEIGHT, "cv": "leave-one-family-out",
               "oof_top1": float(np.mean(Y[np.arange(len(Y)), top] > 0)),
               "oof_nll": float(-np.mean(np.log(np.maximum((p * Y).sum(axis=1), 1e-12)))),
               "skipped": len(dev) - len(kept), "unknown_causes": int((~known).sum()), "out": args.out}
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
