"""The benchmarks run as scripts and print one JSON object with their contract fields (no speed is asserted:
timings on a shared CI machine are noise; `benchmarks/RESULTS.md` holds the measured figures)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(name: str, *args: str) -> dict:
    """Run `benchmarks/<name>.py --quick --json ARGS` on CPU; its stdout must be exactly one JSON object."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--json", *args],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_step_overhead_reports_the_contract_fields():
    out = run_benchmark("step_overhead")
    assert all(positive(out[k]) for k in ("bare_steps_per_s", "instrumented_steps_per_s", "ratio"))
    assert out["ratio"] == pytest.approx(out["instrumented_steps_per_s"] / out["bare_steps_per_s"])
    tiny = out["presets"]["tiny"]
    assert all(positive(tiny[k]) for k in ("probe_steps_per_s", "probe_ratio", "amortised_ratio", "cpu_ratio",
                                           "global_only_ratio"))
    # The trainer's mix (one probe step in 50) lies between the every-step and the probe step's speeds.
    lo, hi = sorted([tiny["instrumented_steps_per_s"], tiny["probe_steps_per_s"]])
    assert lo <= tiny["amortised_steps_per_s"] <= hi
    assert tiny["probe_every"] == 50 and out["machine"]["backend"] == "cpu"
    assert len(out["machine"]["load_average"]) == 3


@pytest.mark.slow
def test_logging_sync_compares_each_policy_with_no_logging():
    out = run_benchmark("logging_sync")
    assert all(positive(out[k]) for k in ("no_logging_steps_per_s", "one_step_late_steps_per_s", "ratio",
                                          "every_step_ratio", "every_n_ratio"))
    assert out["ratio"] == pytest.approx(out["one_step_late_steps_per_s"] / out["no_logging_steps_per_s"])
    tiny = out["presets"]["tiny"]
    assert tiny["metrics_per_step"] > 2 * 28  # the per-layer metrics of the tiny model's 28 leaves are read


def test_gpu_mfu_is_skipped_without_a_gpu():
    assert run_benchmark("gpu_mfu")["skipped"] == "no GPU"


@pytest.mark.slow
def test_gpu_mfu_computes_mfu_against_the_given_peak():
    out = run_benchmark("gpu_mfu", "--any-device", "--peak-tflops", "1")
    assert out["peak_flops"] == 1e12 and out["dtype"].startswith("bfloat16")
    for k in ("bare", "instrumented"):
        expected = out[f"{k}_tokens_per_s"] * out["flops_per_token"] / 1e12
        assert out[f"{k}_mfu"] == pytest.approx(expected)
    assert out["mfu"] == out["instrumented_mfu"] and positive(out["ratio"])


def test_peak_is_picked_from_the_device_kind():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from gpu_mfu import peak_key
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert peak_key("NVIDIA H100 80GB HBM3") == "h100"
    assert peak_key("NVIDIA H100 PCIe") == "h100-pcie"
    assert peak_key("NVIDIA A100-SXM4-80GB") == "a100"
    assert peak_key("NVIDIA H100 NVL") is None  # its peak is not the SXM one
    assert peak_key("cpu") is None


def dot_generals(jaxpr):
    """Every dot_general equation of a jaxpr, nested ones (inside pjit, custom_jvp...) included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from dot_generals(inner)


def test_bf16_compute_runs_every_matmul_in_bfloat16_with_float32_gradients():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from gpu_mfu import QUICK, bf16_compute
    finally:
        sys.path.remove(str(BENCHMARKS))
    from ntjax.core.model import GPT
    from ntjax.core.step import lm_loss

    graphdef, params = nnx.split(GPT(QUICK, nnx.Rngs(0)))
    def loss(p, batch):
        return bf16_compute(lm_loss)(nnx.merge(graphdef, p), batch)[0]
    batch = jnp.arange(2 * (QUICK.seq_len + 1), dtype=jnp.int32).reshape(2, -1) % QUICK.vocab_size
    jaxpr = jax.make_jaxpr(jax.grad(loss))(params, batch)
    dots = list(dot_generals(jaxpr.jaxpr))
    assert len(dots) >= 6 * QUICK.n_layers and all(e.outvars[0].aval.dtype == jnp.bfloat16 for e in dots)
    grads = jax.grad(loss)(params, batch)
    assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


@pytest.mark.slow
def test_torch_monitor_overhead_reports_ratios_and_host_bytes():
    pytest.importorskip("torch")
    out = run_benchmark("torch_monitor_overhead")
    assert all(positive(out[k]) for k in ("bare_steps_per_s", "monitored_steps_per_s", "sampling_steps_per_s",
                                          "ratio", "sampling_ratio", "amortised_ratio"))
    assert out["ratio"] == pytest.approx(out["monitored_steps_per_s"] / out["bare_steps_per_s"])
    # The amortised mix (49 ordinary steps, 1 sampled) lies between the two.
    lo, hi = sorted([out["ratio"], out["sampling_ratio"]])
    assert lo <= out["amortised_ratio"] <= hi
    # An unsampled step copies one float32 per parameter tensor and the loss, never the tensors.
    assert out["host_bytes_per_step"] == 4 * (out["n_tensors"] + 1)
    assert out["param_bytes"] == 4 * out["model_parameters"] > 100 * out["host_bytes_per_step"]
def test_mup_transfer_reports_best_lrs_and_coordinate_ratios():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "mup_transfer.py"), "--quick", "--json"],
                          capture_output=True, text=True, env=env, timeout=900)  # compiles 12 small programs
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    widths, grid = out["widths"], out["lr_grid"]
    assert out["lr_grid_step"] == pytest.approx(math.log10(grid[1] / grid[0]))
    for p in ("sp", "mup"):
        assert len(out[f"{p}_best_lr"]) == len(widths) and set(out[f"{p}_best_lr"]) <= set(grid)
        losses = out["losses"][p]
        assert all(positive(x) for w in widths for x in losses[str(w)])
        assert [grid[min(range(len(grid)), key=losses[str(w)].__getitem__)] for w in widths] == out[f"{p}_best_lr"]
    # μP at the base width is SP: identical losses there; wider, they differ
    assert out["losses"]["sp"][str(widths[0])] == out["losses"]["mup"][str(widths[0])]
    assert out["losses"]["sp"][str(widths[1])] != out["losses"]["mup"][str(widths[1])]
    assert positive(out["sp_coord_ratio"]) and positive(out["mup_coord_ratio"])
    assert out["sp_coord_ratio"] > out["mup_coord_ratio"]
