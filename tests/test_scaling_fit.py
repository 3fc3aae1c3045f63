"""The L(N, D) fit on Epoch AI's real Chinchilla points, and on synthetic surfaces with known parameters."""
from pathlib import Path

import numpy as np
import pytest

from ntjax.scaling import allocation, approaches, fit
from ntjax.scaling.points import drop_highest_loss, from_arrays, read_points

CHINCHILLA_CSV = Path(__file__).parent / "fixtures" / "chinchilla" / "svg_extracted_data.csv"
# Besiroglu et al. 2024 (Epoch's notebook outputs, fixtures/chinchilla/PROVENANCE.md): estimate and 95 % CI.
EPOCH = {"A": (482.01, 285.2, 743.6), "B": (2085.43, 1042.4, 5810.3), "E": (1.8169, 1.769, 1.871),
         "alpha": (0.3478, 0.317, 0.373), "beta": (0.3659, 0.331, 0.415)}
EPOCH_GRID_FIT = {"A": 477.84, "B": 2143.86, "E": 1.8172, "alpha": 0.34731, "beta": 0.36718}
EPOCH_OBJECTIVE = 0.0010182740


@pytest.fixture(scope="module")
def chinchilla():
    points = drop_highest_loss(read_points(CHINCHILLA_CSV), 5)
    return points, fit.fit_loss_surface(points.n_params, points.n_tokens, points.loss)


def test_reads_epoch_csv_and_drops_their_outliers():
    raw = read_points(CHINCHILLA_CSV)
    assert len(raw) == 245 and raw.columns["n"] == "Model Size" and raw.columns["c"] == "Training FLOP"
    kept = drop_highest_loss(raw, 5)
    assert len(kept) == 240
    dropped = np.sort(np.setdiff1d(raw.loss, kept.loss))
    np.testing.assert_allclose(dropped, [3.447, 3.766, 3.794, 4.665, 5.006], atol=1e-3)
    np.testing.assert_allclose(kept.n_tokens * kept.n_params * 6, kept.flops, rtol=1e-12)


def test_chinchilla_fit_reproduces_epoch(chinchilla):
    points, s = chinchilla
    assert s.n_points == 240
    # Epoch's grid replica reports this summed Huber objective; ours reaches it to 7 digits.
    assert s.objective == pytest.approx(EPOCH_OBJECTIVE, rel=1e-7)
    assert s.objective <= 0.00101827403  # the notebook's optimum, re-evaluated on this CSV: we are not worse
    for name, (_, lo, hi) in EPOCH.items():
        assert lo <= s.params[name] <= hi, name
    for name, value in EPOCH_GRID_FIT.items():
        assert s.params[name] == pytest.approx(value, rel=2e-3), name
    # The published Hoffmann parameters fit this data far worse (PROVENANCE: 0.0041210).
    hoffmann = fit.huber_objective(allocation.CHINCHILLA, points.n_params, points.n_tokens, points.loss)
    assert hoffmann == pytest.approx(0.0041210, rel=1e-4)
    assert allocation.exponents(s.alpha, s.beta)[0] == pytest.approx(0.513, abs=0.005)


def test_chinchilla_bootstrap_intervals_match_epoch(chinchilla):
    points, _ = chinchilla
    samples = fit.bootstrap_surfaces(points.n_params, points.n_tokens, points.loss, n_boot=400, seed=1)
    assert np.isfinite(samples).all()
    ours = fit.percentile_intervals(samples, ("E", "A", "B", "alpha", "beta"))
    for name, (_, lo, hi) in EPOCH.items():
        # 400 resamples instead of Epoch's 4,000: the endpoints agree to within a fifth of the width.
        width = hi - lo
        assert abs(ours[name][0] - lo) < 0.2 * width and abs(ours[name][1] - hi) < 0.2 * width, (name, ours[name])


def test_chinchilla_approach1_gives_equal_scaling(chinchilla):
    points, _ = chinchilla
    a1 = approaches.approach1(points)
    assert a1 is not None and a1.n_opt.exponent + a1.d_opt.exponent == pytest.approx(1.0, abs=1e-9)
    assert 0.45 < a1.n_opt.exponent < 0.56  # Hoffmann's Approach 1: 0.50
    assert approaches.approach2(points) is None  # Figure-4 points are not IsoFLOP groups


def _isoflop_surface(p: dict, budgets=(1e17, 1e18, 1e19, 1e20, 1e21), per_budget=15):
    """Open-Athena's synthetic design: 15 sizes per budget spanning ±1 decade around the optimum."""
    n, d = [], []
    for c in budgets:
        centre = allocation.compute_optimal(p, c).n_params
        sizes = centre * np.logspace(-1, 1, per_budget)
        n += list(sizes)
        d += list(c / (6 * sizes))
    n, d = np.array(n), np.array(d)
    return from_arrays(n, allocation.surface_loss(p, n, d), n_tokens=d)


def test_synthetic_surface_recovered_exactly():
    truth = dict(allocation.CHINCHILLA)
    pts = _isoflop_surface(truth)
    s = fit.fit_loss_surface(pts.n_params, pts.n_tokens, pts.loss)
    for name, value in truth.items():
        assert s.params[name] == pytest.approx(value, rel=1e-5), name
    a2 = approaches.approach2(pts)
    assert a2 is not None and len(a2.flops) == 5
    assert a2.n_opt.exponent == pytest.approx(0.28 / 0.62, rel=2e-2)


def test_symmetric_surface_gives_equal_exponents():
    p = {"E": 1.69, "A": 400.0, "B": 400.0, "alpha": 0.31, "beta": 0.31}
    assert allocation.exponents(p["alpha"], p["beta"]) == (0.5, 0.5)
    opt = allocation.compute_optimal(p, 1e21)
    assert opt.n_params == pytest.approx(opt.n_tokens, rel=1e-12)


def test_noisy_one_variable_law_recovers_exponent():
    rng = np.random.default_rng(0)
    c = np.geomspace(1e15, 1e20, 40)
    loss = (2.0 + 50.0 * c ** -0.1) * np.exp(rng.normal(0, 0.003, c.size))
    law = fit.fit_power_law(c, loss)
    assert law.k == pytest.approx(0.1, abs=0.01) and law.E == pytest.approx(2.0, abs=0.05)
