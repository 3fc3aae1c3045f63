"""The LR range test: its math on synthetic curves, and `ntjax lr-find` on real tiny models (state left
bit-identical, run folder byte-identical, the suggestion trains without diverging)."""
import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest

from ntjax.diagnostics import lr_range as L
from ntjax.viz.lr_range import plot_range_test


def _curve(lr: float) -> float:
    """Falls steepest at 1e-3 (a logistic in log10 LR), flat until 0.3, then blows up."""
    x = math.log10(lr)
    return 3 - 1 / (1 + math.exp(-3 * (x + 3))) + 3 * max(0.0, x + 0.5) ** 2


def test_exponential_lrs_span_the_range_with_a_constant_ratio():
    lrs = L.exponential_lrs(1e-6, 1.0, 61)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    assert np.allclose(lrs[1:] / lrs[:-1], 10 ** 0.1)
    with pytest.raises(ValueError):
        L.exponential_lrs(1e-2, 1e-3, 10)


def test_bias_corrected_ema_has_no_startup_bias_and_averages_noise():
    assert np.allclose(L.smooth([2.5] * 20, 0.9), 2.5)  # no pull towards 0 at the start
    rng = np.random.default_rng(0)
    noisy = 3 + rng.normal(0, 0.5, 400)
    assert np.std(L.smooth(noisy, 0.95)[100:]) < 0.3 * np.std(noisy)


def test_stops_when_smoothed_loss_exceeds_four_times_its_minimum():
    lrs = L.exponential_lrs(1e-4, 1e4, 200)
    test = L.run_range_test(lambda i, lr: 1.0 + lr, lrs, beta=0.5)
    assert test.stop_reason == "diverged"
    assert test.smoothed[-1] > 4 * np.nanmin(test.smoothed) and test.smoothed[-2] <= 4 * np.nanmin(test.smoothed)
    assert len(test.lrs) < 200


def test_stops_at_a_nan_loss():
    test = L.run_range_test(lambda i, lr: math.nan if i == 30 else 2.0, L.exponential_lrs(1e-5, 1, 100))
    assert test.stop_reason == "nonfinite" and len(test.lrs) == 31 and math.isnan(test.smoothed[-1])


def test_suggestions_on_a_known_curve():
    lrs = L.exponential_lrs(1e-6, 10, 200)
    rng = np.random.default_rng(1)
    test = L.run_range_test(lambda i, lr: _curve(lr) + rng.normal(0, 0.02), lrs)
    sug = L.suggest(test)
    assert 1e-3 / 3 < sug.steepest < 1e-3 * 3  # the logistic is steepest at 1e-3
    assert 0.01 < sug.min_loss_lr < 1.0  # the flat bottom before the blow-up at 0.3
    assert sug.recommended == sug.min_over_10 == pytest.approx(sug.min_loss_lr / 10)
    assert sug.rule == "min_over_10" and "min/10" in sug.why
    d = L.to_dict(test, sug)
    assert json.dumps(d, allow_nan=False) and d["steps_run"] == len(test.lrs)


def test_plot_marks_both_suggestions(tmp_path):
    test = L.run_range_test(lambda i, lr: _curve(lr), L.exponential_lrs(1e-6, 10, 100))
    path = plot_range_test(test, L.suggest(test), tmp_path / "p.png")
    assert path.stat().st_size > 10_000


def _leaves(state):
    import jax
    return [np.array(x) for x in jax.tree.leaves(state)]


def _tiny(**changes):
    from ntjax.core import config
    return config.resolve(dataclasses.replace(config.preset("tiny"), **changes))


@pytest.mark.slow
def test_range_test_leaves_a_passed_in_state_bit_identical():
    from ntjax.commands.lr_find import range_test_from_state
    from ntjax.core.state import build_state

    cfg = _tiny()
    task, graphdef, state, _ = build_state(cfg)
    before = _leaves(state)
    test = range_test_from_state(cfg, graphdef, state, task, L.exponential_lrs(1e-5, 1.0, 30))
    assert len(test.lrs) >= 10 and np.isfinite(test.losses[0])
    after = _leaves(state)  # would raise if the step had donated (deleted) the caller's buffers
    assert len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after))


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_lr_find_on_a_run_folder_leaves_it_byte_identical(tmp_path, capsys):
    from ntjax.cli import main
    from ntjax.trainer import train

    run = tmp_path / "run"
    train(_tiny(steps=10, eval_every=10, ckpt_every=10), run, progress=False, report=False)
    before = _digest(run)
    assert main(["lr-find", "--run", str(run), "--steps", "40", "--out", str(tmp_path / "lf"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert _digest(run) == before
    assert data["source"].endswith("at step 10") and (tmp_path / "lf" / "lr_find.png").exists()
    assert data["recommended"] == pytest.approx(data["suggestions"]["min_over_10"])


@pytest.mark.slow
def test_suggested_lr_on_the_tiny_preset_trains_without_diverging(tmp_path, capsys):
    from ntjax.cli import main
    from ntjax.trainer import train

    assert main(["lr-find", "--preset", "tiny", "--out", str(tmp_path / "lf"), "--json"]) == 0
    lr = json.loads(capsys.readouterr().out)["recommended"]
    assert 1e-5 < lr < 1.0
    result = train(_tiny(lr=lr, steps=40, eval_every=20, ckpt_every=40), tmp_path / "at_lr", progress=False,
                   report=False)
    assert not result.diverged
    first, last = result.eval_history[0][1], result.eval_history[-1][1]
    assert math.isfinite(last) and last < first < math.log(256)  # learning, from the uniform-guess loss
