"""Compute-optimal allocation against the published numbers (Hoffmann, Kaplan, Muennighoff)."""
import numpy as np
import pytest

from ntjax.scaling import allocation


def test_muennighoff_reproduces_datablations_readme():
    p = allocation.MUENNIGHOFF
    assert allocation.data_constrained_loss(p, 6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, rel=1e-12)
    assert allocation.data_constrained_loss(p, 8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867, rel=1e-12)
    best = allocation.data_constrained_optimal(p, 6 * 8.67e9 * 178e9, 25e9)
    assert best.n_tokens == pytest.approx(227e9, rel=0.01)  # README: ~227B tokens, 9.1 epochs, 6.8B params
    assert best.n_params == pytest.approx(6.8e9, rel=0.01)


def test_unlimited_unique_data_is_the_unconstrained_optimum():
    p = allocation.MUENNIGHOFF
    free = allocation.compute_optimal(p, 1e21)
    constrained = allocation.data_constrained_optimal(p, 1e21, unique_tokens=1e15)
    assert constrained.n_params == pytest.approx(free.n_params, rel=0.01)


def test_chinchilla_and_kaplan_allocations():
    a, b = allocation.exponents(0.34, 0.28)
    assert a == pytest.approx(0.452, abs=1e-3) and a + b == pytest.approx(1.0)
    c = 5.88e23
    opt = allocation.compute_optimal(allocation.CHINCHILLA, c)
    assert 6 * opt.n_params * opt.n_tokens == pytest.approx(c, rel=1e-12)
    # The closed form minimises L along C = 6ND.
    n = opt.n_params * np.array([0.8, 1.25])
    assert np.all(allocation.surface_loss(allocation.CHINCHILLA, n, c / (6 * n)) > opt.loss)
    kaplan = allocation.kaplan_optimal(1e21)
    assert kaplan.n_params == pytest.approx(1.3e9 * (1e21 / 8.64e19) ** 0.73)
    assert kaplan.tokens_per_param < 5 < allocation.chinchilla_rule(1e21).tokens_per_param == 20


def test_compare_includes_data_constrained_only_with_a_limit():
    fitted = {"E": 1.8172, "A": 477.84, "B": 2143.86, "alpha": 0.34731, "beta": 0.36718}
    table = allocation.compare(fitted, 1e22)
    assert set(table) == {"fit", "chinchilla_approach3", "chinchilla_20_tokens_per_param", "kaplan"}
    limited = allocation.compare(fitted, 1e22, unique_tokens=2e10)
    dc = limited["data_constrained"]
    assert dc["n_tokens"] > 2e10 and dc["epochs"] > 1
    assert dc["n_params"] < table["fit"]["n_params"]  # scarce data: a smaller model, more epochs
