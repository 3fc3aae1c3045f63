"""The labelled item list of the diagnosis benchmark: schema, the fixed dev/heldout split, assembly.

`labels.json` is one JSON list of items (schema in README.md). Items come from three sources, each of
which describes its own items as dicts without `split`: `make_runs.py` (runs trained here), `curves.py`
(generated curves) and `public/items.json` (hand-labelled public logs). `assemble` merges them, keeps
only items whose files exist, and assigns the split.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
LABELS = ROOT / "labels.json"
SPLIT_SEED = "ntjax-diagnosis-split-2026-12-01"  # fixed: changing it reshuffles dev and heldout

CAUSES = ("lr_too_high", "lr_too_low", "insufficient_warmup", "gradient_explosion", "vanishing_gradients",
          "numerical_precision", "overfitting", "underfitting", "data_pipeline", "batch_size", "weight_decay",
          "attention_logit_growth", "output_logit_divergence", "initialization", "lr_schedule", "label_noise")
FINDING_KINDS = ("spike", "plateau", "divergence", "nan", "overfitting", "oscillation", "no_learning",
                 "underfitting", "slow_convergence", "trivial_solution", "resume_regression")
FAMILIES = ("ntjax", "torch_transformer", "torch_cnn", "torch_mlp", "torch_lstm", "public", "synthetic")
FIELDS = {"id": str, "path": str, "split": str, "family": str, "framework": str, "optimizer": (str, type(None)),
          "task": str, "symptom": str, "cause": (str, type(None)), "acceptable": list, "findings": list,
          "findings_complete": bool, "healthy": bool, "source": str, "reason": str, "batch": str}
FIRST_BATCH = "r1-3"  # the batch of items made before batches were named (rounds 1-3)
# in the order they were added ("r7-dev", "r8-dev", "r9-dev": dev-only probes)
BATCHES = (FIRST_BATCH, "r4", "r5", "r6", "r7-dev", "r7", "r8", "r8-dev", "r9", "r9-dev", "r10")


def split_key(item_id: str) -> str:
    return hashlib.sha256(f"{SPLIT_SEED}:{item_id}".encode()).hexdigest()


def assign_splits(items: list[dict[str, Any]], frozen: dict[str, str] | None = None) -> None:
    """dev/heldout. An item whose id is in `frozen` (the splits stored in labels.json) keeps its split, so
    adding items never moves an existing one. A new item goes to the side of its (family, cause) stratum
    that holds fewer items (counting frozen and earlier new ones; new items taken in the order of the hash
    of their id), and where both sides are even, to the side its own id hash picks. So the split stays
    ~50/50 within every stratum, and each new item's side depends only on its id and the items before it.
    (The 165 items frozen in December 2026 were split by an older rule, `legacy_splits`.)"""
    frozen = frozen or {}
    strata: dict[tuple, list[dict]] = {}
    for it in items:
        strata.setdefault((it["family"], it["cause"] or "healthy"), []).append(it)
    for group in strata.values():
        count = {"dev": 0, "heldout": 0}
        for it in group:
            if it["id"] in frozen:
                it["split"] = frozen[it["id"]]
                count[it["split"]] += 1
        for it in sorted((it for it in group if it["id"] not in frozen), key=lambda it: split_key(it["id"])):
            if count["dev"] != count["heldout"]:
                it["split"] = min(count, key=count.get)
            else:
                it["split"] = "dev" if int(split_key(it["id"]), 16) % 2 == 0 else "heldout"
            count[it["split"]] += 1


def legacy_splits(items: list[dict[str, Any]]) -> None:
    """The rule that split the first 165 items: within each (family, cause) stratum the items ordered by
    the hash of their id alternate dev, heldout, ...; the hash of the stratum's name picks the first. Kept
    to show where labels.json's frozen splits came from; adding an item to a stratum could move others,
    which is why new items use `assign_splits`."""
    strata: dict[tuple, list[dict]] = {}
    for it in items:
        strata.setdefault((it["family"], it["cause"] or "healthy"), []).append(it)
    for key, group in strata.items():
        first = int(split_key("/".join(key)), 16) % 2
        for i, it in enumerate(sorted(group, key=lambda it: split_key(it["id"]))):
            it["split"] = "dev" if (i + first) % 2 == 0 else "heldout"


def validate(items: Iterable[dict[str, Any]]) -> list[str]:
    """Every problem with the item list, as one line each (empty when valid)."""
    problems, seen = [], set()
    for it in items:
        name = it.get("id", "?")
        for field, types in FIELDS.items():
            if field not in it:
                problems.append(f"{name}: missing {field}")
            elif not isinstance(it[field], types):
                problems.append(f"{name}: {field} has type {type(it[field]).__name__}")
        if name in seen:
            problems.append(f"{name}: duplicate id")
        seen.add(name)
        if it.get("split") not in ("dev", "heldout"):
            problems.append(f"{name}: split {it.get('split')!r}")
        if it.get("family") not in FAMILIES:
            problems.append(f"{name}: family {it.get('family')!r}")
        cause = it.get("cause")
        if cause is not None and cause not in CAUSES:
            problems.append(f"{name}: cause {cause!r} is not a contract cause")
        if (cause is None) != bool(it.get("healthy")):
            problems.append(f"{name}: healthy must be true exactly when cause is null")
        for c in it.get("acceptable", []):
            if c not in CAUSES or c == cause:
                problems.append(f"{name}: acceptable cause {c!r}")
        for f in it.get("findings", []):
            if set(f) != {"kind", "metric", "start_step"} or f["kind"] not in FINDING_KINDS:
                problems.append(f"{name}: finding {f}")
        if it.get("healthy") and it.get("findings"):
            problems.append(f"{name}: a healthy item expects no findings")
    return problems


def load(path: Path = LABELS) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())


def frozen_splits(path: Path = LABELS) -> dict[str, str]:
    """The split of every item already in labels.json (kept as is when the item set grows)."""
    return {it["id"]: it["split"] for it in load(path)} if Path(path).exists() else {}


def assemble(sources: Iterable[list[dict[str, Any]]], frozen: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Merge the sources' items whose path exists, assign splits (an item may name its own `split`, e.g. a
    dev-only run; items already in labels.json keep theirs), sort by id, check the schema."""
    items = [{"batch": FIRST_BATCH, **it} for src in sources for it in src if (ROOT / it["path"]).exists()]
    frozen = {**(frozen_splits() if frozen is None else frozen),
              **{it["id"]: it["split"] for it in items if it.get("split") in ("dev", "heldout")}}
    assign_splits(items, frozen)
    items.sort(key=lambda it: it["id"])
    ordered = [{k: it[k] for k in FIELDS} for it in items]
    problems = validate(ordered)
    if problems:
        raise ValueError("invalid labels:\n" + "\n".join(problems[:20]))
    return ordered


def write(items: list[dict[str, Any]], path: Path = LABELS) -> None:
    path.write_text(json.dumps(items, indent=1) + "\n")


def sources() -> list[list[dict[str, Any]]]:
    """Every source's items: runs trained here, generated curves, hand-labelled public logs."""
    import sys
    sys.path.insert(0, str(ROOT))
    import curves
    import make_runs
    path = ROOT / "public" / "items.json"
    public = json.loads(path.read_text()) if path.exists() else []
    return [make_runs.items(), curves.items(), public]


if __name__ == "__main__":
    write(assemble(sources()))
    print(f"wrote {LABELS}")
