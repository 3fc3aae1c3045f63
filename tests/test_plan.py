"""`ntjax plan`: the budget arithmetic, the seed count, and the command's JSON and markdown."""
import json
import subprocess
import sys

import pytest

from ntjax.diagnostics import plan
from ntjax.errors import NtjaxError


def _ntjax(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntjax.cli", *args], capture_output=True, text=True, timeout=120)


def test_gpt2_124m_on_10b_tokens_is_7_44e18_flops():
    out = _ntjax("plan", "--params", "124M", "--tokens", "10B", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["flops_per_run"] == pytest.approx(7.44e18, rel=1e-12)
    assert data["total_flops"] == pytest.approx(7.44e18 * 3)  # 1 arm x 3 seeds by default
    for key in ("wall_time_hours", "checklist", "pitfalls"):
        assert key in data
    assert data["wall_time_hours"] is None  # neither throughput nor device given


def test_steps_batch_seq_and_device_time():
    p = plan.make_plan(plan.PlanInputs(params=124e6, steps=19073, batch_size=512, seq_len=1024, runs=2, seeds=1,
                                       device="h100", mfu=0.5, n_layers=12, d_model=768,
                                       hypothesis="AdamW vs Lion optimizer"))
    tokens = 19073 * 512 * 1024
    assert p["flops_per_run"] == 6 * 124e6 * tokens
    assert p["attention_flops_per_run"] == 12 * 12 * 1024 * 768 * tokens
    hours = (p["flops_per_run"] + p["attention_flops_per_run"]) / (989e12 * 0.5) / 3600
    assert p["wall_time_hours_per_run"] == pytest.approx(hours)
    assert p["wall_time_hours"] == pytest.approx(2 * hours)
    assert p["experiment_type"] == "optimizer"
    assert any("LR only for the baseline" in x for x in p["pitfalls"])
    assert any("unequal tokens" in x for x in p["pitfalls"])


def test_throughput_sets_wall_time():
    p = plan.make_plan(plan.PlanInputs(params=3.3e6, tokens=1e8, throughput=8000.0, seeds=2, runs=3))
    assert p["wall_time_hours"] == pytest.approx(1e8 / 8000 * 6 / 3600)


def test_seeds_needed_follows_the_t_test():
    # Effect of 2 standard deviations: the normal approximation says 4 per arm, the t-test needs 6.
    assert plan.seeds_needed(0.01, 0.02) == 6
    assert plan.seeds_needed(0.01, 0.005) > plan.seeds_needed(0.01, 0.01) > plan.seeds_needed(0.01, 0.03)
    p = plan.make_plan(plan.PlanInputs(params=1e6, tokens=1e7, noise_std=0.01, effect=0.02))
    assert p["seeds"]["per_arm"] == 6 and p["runs_total"] == 6


def test_parse_count_and_classify():
    assert plan.parse_count("124M") == 124e6 and plan.parse_count("1.5e9") == 1.5e9
    assert plan.parse_count("10B") == 1e10
    with pytest.raises(NtjaxError):
        plan.parse_count("lots")
    assert plan.classify("Does a WSD schedule beat cosine?") == "learning_rate"
    assert plan.classify("compute-optimal scaling of our model") == "scaling"
    assert plan.classify("hello") == "general"


def test_markdown_file_and_bad_input(tmp_path):
    md = tmp_path / "notebook" / "plan.md"
    out = _ntjax("plan", "--hypothesis", "dedup improves loss", "--params", "50M", "--tokens", "1B",
                 "--markdown", str(md), "--json")
    assert out.returncode == 0, out.stderr
    text = md.read_text()
    assert text.startswith("# Experiment plan: dedup improves loss") and "- [ ]" not in text
    assert "1. [ ]" in text and "| FLOPs per run (6ND) | 3e+17 |" in text
    bad = _ntjax("plan", "--params", "50M")
    assert bad.returncode == 2 and bad.stdout == "" and "--tokens" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
