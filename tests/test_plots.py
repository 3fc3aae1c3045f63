"""PNG plots: the training report (skipping absent series) and the curves figure with every finding drawn."""
import curvegen as cg
import numpy as np

from ntjax.diagnostics.detectors import analyse
from ntjax.diagnostics.runtable import RunTable, make_series
from ntjax.viz.plots import plot_curves, plot_training_report, thin
from ntjax.viz.terminal_plot import render

PNG = b"\x89PNG\r\n\x1a\n"


def _table_with_grads():
    tab = cg.table(cg.run("warmup", 0, 0.03))
    steps = np.arange(0, cg.N_STEPS, 10)
    tab.add(make_series("train/grad_norm", steps, 1 + np.exp(-steps / 500)))
    for i in range(16):
        tab.add(make_series(f"grad_norm/h.{i}.attn.kernel", steps, (i + 1) * 0.01 * np.ones(steps.size)))
    return tab


def test_training_report_writes_every_plot(tmp_path):
    paths = plot_training_report(_table_with_grads(), tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["grad_norm.png", "layer_grad_norms.png", "loss.png", "lr.png"]
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 10_000 for p in paths)


def test_training_report_skips_absent_series(tmp_path):
    tab = RunTable("x", "synthetic")
    tab.add(make_series("train/loss", np.arange(50), np.linspace(5, 3, 50)))
    assert [p.name for p in plot_training_report(tab, tmp_path)] == ["loss.png"]
    assert plot_training_report(RunTable("x", "synthetic"), tmp_path / "none") == []


def test_curves_png_draws_each_finding(tmp_path):
    for kind in ("repeated_spikes", "plateau", "divergence", "nan", "overfitting", "oscillation"):
        tab = cg.table(cg.inject(kind, cg.run("power_law", 0, 0.03), 2000))
        a = analyse(tab)
        out = plot_curves(tab, a.findings, tmp_path / f"{kind}.png")
        assert out.read_bytes()[:8] == PNG


def test_thin_keeps_spikes():
    step = np.arange(1_000_000)
    value = np.ones(step.size)
    value[123_457] = 50.0
    s, v = thin(step, value, limit=2000)
    assert s.size <= 2100 and v.max() == 50.0 and 123_457 in s


def test_terminal_plot_plain_and_empty():
    text = render(cg.table(cg.run("cosine", 0, 0.03)), "t", color=False)
    assert "train/loss" in text and "eval/loss" in text and "\x1b[" not in text
    assert render(RunTable("x", "synthetic")) == ""
