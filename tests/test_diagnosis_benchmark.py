"""The diagnosis benchmark (benchmarks/diagnosis/, issue 12): its labels are valid, its split is fixed and
stratified, every log it names is readable, and its scorer gives complete, in-range, deterministic figures
for the installed engine on the fixed fast subset."""
from __future__ import annotations

import copy
import importlib.util
import json
import math
import sys
from collections import Counter
from pathlib import Path

import pytest

from ntjax.readers import read_run

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH / "diagnosis"))
import labelset  # noqa: E402

# Logs the current readers cannot read yet: issue 12 asks for console captures (W&B output.log).
KNOWN_UNREADABLE = {"public_wandb_output_trash_classification"}


def _scorer():
    spec = importlib.util.spec_from_file_location("diagnosis_scorer", BENCH / "diagnosis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def items():
    return labelset.load()


@pytest.fixture(scope="module")
def fast_report(tmp_path_factory):
    png = tmp_path_factory.mktemp("diag") / "reliability.png"
    return _scorer().evaluate("both", "fast", png)


def test_labels_follow_the_schema(items):
    assert len(items) >= 150
    assert labelset.validate(items) == []
    assert [it["id"] for it in items] == sorted(it["id"] for it in items)
    families = Counter(it["family"] for it in items)
    assert set(families) == set(labelset.FAMILIES)
    healthy = Counter(it["family"] for it in items if it["healthy"])
    assert all(healthy[f] >= 2 for f in families), healthy  # healthy runs of every family


def test_split_is_the_fixed_stratified_one(items):
    dev_only = [it for it in items if "_dev_s" in it["id"]]  # make_runs.DEV_SEEDS copies, split=dev by design
    assert dev_only and all(it["split"] == "dev" for it in dev_only)
    first = [it for it in items if "_dev_s" not in it["id"] and it["batch"] == labelset.FIRST_BATCH]
    again = copy.deepcopy(first)
    for it in again:
        it.pop("split")
    labelset.legacy_splits(again)  # the rule that split the first 165 items, frozen in labels.json
    assert [it["split"] for it in again] == [it["split"] for it in first]
    strata = Counter((it["family"], it["cause"] or "healthy", it["split"]) for it in first)
    for fam, cause in {(f, c) for f, c, _ in strata}:
        assert abs(strata[(fam, cause, "dev")] - strata[(fam, cause, "heldout")]) <= 1
    dev = sum(it["split"] == "dev" for it in first)
    assert 0.45 <= dev / len(first) <= 0.55
    # each later batch was split by assign_splits with every earlier batch frozen: recomputing gives the same
    assert {it["batch"] for it in items} <= set(labelset.BATCHES)
    for k, batch in enumerate(labelset.BATCHES[1:], start=1):
        # the batch's dev-only copies name their own split (and came after it was split)
        earlier = [it for it in items if it["batch"] in labelset.BATCHES[:k]]
        later = [it for it in items if it["batch"] == batch and "_dev_s" not in it["id"]]
        if not later:  # a batch of dev-only probes (r7-dev): nothing was split
            assert all(it["split"] == "dev" for it in items if it["batch"] == batch), batch
            continue
        redo = copy.deepcopy(later)
        for it in redo:
            it.pop("split")
        labelset.assign_splits(copy.deepcopy(earlier) + redo, {it["id"]: it["split"] for it in earlier})
        assert [it["split"] for it in redo] == [it["split"] for it in later], batch
    every = Counter((it["family"], it["cause"] or "healthy", it["split"]) for it in items)
    copies = Counter((it["family"], it["cause"] or "healthy") for it in dev_only)
    for fam, cause in {(f, c) for f, c, _ in every}:  # balanced, but for the dev-only copies
        assert abs(every[(fam, cause, "dev")] - every[(fam, cause, "heldout")]) <= 1 + copies[(fam, cause)]


def test_adding_items_never_moves_the_existing_split(items):
    frozen = {it["id"]: it["split"] for it in items}
    grown = copy.deepcopy(items) + [dict(copy.deepcopy(items[0]), id=f"zz_new_{i}") for i in range(5)]
    for it in grown:
        it.pop("split")
    labelset.assign_splits(grown, frozen)
    assert all(it["split"] == frozen[it["id"]] for it in grown if it["id"] in frozen)
    new = [it["split"] for it in grown if it["id"] not in frozen]
    assert abs(new.count("dev") - new.count("heldout")) <= 1  # balanced within their stratum
    alone = [dict(copy.deepcopy(items[0]), id="zz_new_0")]
    alone[0].pop("split")
    labelset.assign_splits(alone, {})
    assert alone[0]["split"] == ("dev" if int(labelset.split_key("zz_new_0"), 16) % 2 == 0 else "heldout")


def test_every_log_is_readable(items):
    for it in items:
        path = labelset.ROOT / it["path"]
        assert path.exists(), it["id"]
        if it["id"] in KNOWN_UNREADABLE:
            continue
        table = read_run(path)
        losses = [n for n in table.series if n in ("train/loss", "eval/loss")]
        assert losses and any(len(table.series[n].step) for n in losses), it["id"]
        last = max(int(s.step[-1]) for s in table.series.values() if len(s.step))
        for f in it["findings"]:
            assert 0 <= f["start_step"] <= last, (it["id"], f)


def test_console_captures_are_readable(items):
    for it in items:
        if it["id"] in KNOWN_UNREADABLE:
            assert "train/loss" in read_run(labelset.ROOT / it["path"]).series


def test_fast_subset_is_fixed_and_spans_both_splits(items):
    by_id = {it["id"]: it for it in items}
    fast = _scorer().FAST_SUBSET
    assert set(fast) <= set(by_id)
    assert {by_id[i]["split"] for i in fast} == {"dev", "heldout"}
    assert any(by_id[i]["healthy"] for i in fast) and any(by_id[i]["findings"] for i in fast)


def _in_unit(x):
    return x is None or (isinstance(x, float | int) and 0.0 <= x <= 1.0)


def test_scorer_reports_every_figure_in_range(fast_report):
    r = fast_report
    json.dumps(r, allow_nan=False)  # one strict JSON object
    assert r["n_items"] == len(_scorer().FAST_SUBSET)
    assert set(r["splits"]) == {"dev", "heldout"}
    assert Path(r["reliability_png"]).stat().st_size > 1000
    for s in r["splits"].values():
        assert s["n"] == s["n_faulty"] + s["n_healthy"] > 0
        for key in ("top1", "top3", "top1_faulty", "healthy_correct"):
            assert _in_unit(s[key]), key
        assert s["top3"] >= s["top1"]
        f = s["findings"]
        assert _in_unit(f["recall"]) and _in_unit(f["precision"])
        assert 0 <= f["recalled"] <= f["expected"] and 0 <= f["matched"] <= f["reported_on_complete_items"]
        assert s["healthy_warnings"]["count"] == len(s["healthy_warnings"]["items"]) <= s["n_healthy"]
        cal = s["calibration"]
        assert _in_unit(cal["ece"]) and sum(b["n"] for b in cal["bins"]) == cal["n"] <= s["n"]
        assert sum(b["n"] for b in s["by_family"].values()) == s["n"]
        assert len(s["misses"]) == round(s["n"] * (1 - s["top1"]))
    assert r["errors"] == []


def test_scorer_is_deterministic(items):
    from ntjax.cli import build_parser
    scorer, parser = _scorer(), build_parser()
    chosen = [it for it in items if it["id"] in scorer.FAST_SUBSET][:4]
    for it in chosen:
        path = str(labelset.ROOT / it["path"])
        rows = [scorer.score_item(it, scorer.run_engine(parser, path, it["symptom"]), scorer.last_step(path))
                for _ in range(2)]
        assert rows[0] == rows[1], it["id"]


def test_scoring_rules_on_known_outputs():
    """The rules of README.md on hand-written engine outputs: top-1/top-3 with acceptable causes,
    onset tolerance, healthy items, calibration."""
    s = _scorer()
    item = {"id": "x", "family": "synthetic", "cause": "lr_too_high", "acceptable": ["gradient_explosion"],
            "healthy": False, "findings": [{"kind": "spike", "metric": "train/loss", "start_step": 200}],
            "findings_complete": True}
    out = {"hypotheses": [{"cause": "batch_size", "confidence": 0.7},
                          {"cause": "gradient_explosion", "confidence": 0.5}],
           "findings": [{"kind": "spike", "metric": "loss", "start_step": 215, "severity": "warning"},
                        {"kind": "plateau", "metric": "train/loss", "start_step": 10, "severity": "info"},
                        {"kind": "oscillation", "metric": "train/loss", "start_step": 50, "severity": "warning"}]}
    row = s.score_item(item, out, last=400)  # tolerance max(5, 20) = 20 steps
    assert (row["top1"], row["top3"], row["recalled"], row["reported"], row["reported_true"]) == (False, True, 1, 2, 1)
    assert row["calibration"] == (0.7, False)
    assert s.score_item(item, out, last=200)["recalled"] == 0  # tolerance 10: 215 is too far
    healthy = {**item, "cause": None, "acceptable": [], "healthy": True, "findings": []}
    quiet = {"hypotheses": [{"cause": "lr_too_low", "confidence": 0.3}], "findings": []}
    row = s.score_item(healthy, quiet, 400)
    assert row["top1"] and row["calibration"] == (0.3, False)
    assert s.score_item(healthy, out, 400)["healthy_warnings"] == ["spike in loss at 215",
                                                                   "oscillation in train/loss at 50"]
    err, bins = s.ece([(0.85, True)] * 8 + [(0.85, False)] * 2 + [(0.25, False)] * 10)
    assert math.isclose(err, 0.5 * 0.05 + 0.5 * 0.25)
    assert s.role("val_loss") == "eval_loss" and s.role("train/loss") == "train_loss"


def test_engine_holds_its_level_on_the_fast_subset(fast_report):
    """A regression guard at today's level on the CI subset (24 items): held-out top-1 0.91, recall 1.0,
    no healthy run warned, ECE 0.12. Issue 12's floor (ECE <= 0.1 and top-1 >= 0.9 on the whole held-out
    part) is not met yet and is measured by `benchmarks/diagnosis.py`, not here: 11 items cannot show it."""
    held, dev = fast_report["splits"]["heldout"], fast_report["splits"]["dev"]
    assert held["top1"] >= 0.9 and dev["top1"] >= 0.9
    assert dev["healthy_warnings"]["count"] + held["healthy_warnings"]["count"] == 0
    assert held["findings"]["recall"] >= 0.9
    assert held["calibration"]["ece"] <= 0.15
