import math

import pytest

from ntjax.core.schedules import make_schedule

PEAK, STEPS, WARM, MIN = 1e-3, 100, 10, 0.1


def lr(name, step):
    return float(make_schedule(name, PEAK, STEPS, WARM, MIN, decay_fraction=0.2)(step))


def test_warmup_is_linear_from_zero():
    for name in ("cosine", "linear", "wsd", "constant"):
        assert lr(name, 0) == 0.0
        assert lr(name, 5) == pytest.approx(PEAK * 5 / 10)
        assert lr(name, 10) == pytest.approx(PEAK)


def test_cosine_by_hand():
    # After warmup: peak * (MIN + (1 - MIN) * (1 + cos(pi * t / 90)) / 2) with t = step - 10.
    for step in (10, 40, 55, 80, 100):
        t = step - WARM
        want = PEAK * (MIN + (1 - MIN) * 0.5 * (1 + math.cos(math.pi * t / 90)))
        assert lr("cosine", step) == pytest.approx(want, rel=1e-5)


def test_linear_by_hand():
    for step in (10, 55, 100):
        want = PEAK + (PEAK * MIN - PEAK) * (step - WARM) / 90
        assert lr("linear", step) == pytest.approx(want, rel=1e-5)


def test_wsd_holds_then_decays_over_the_last_fifth():
    assert lr("wsd", 79) == pytest.approx(PEAK) and lr("wsd", 80) == pytest.approx(PEAK)
    assert lr("wsd", 90) == pytest.approx(PEAK - (PEAK - PEAK * MIN) * 10 / 20, rel=1e-5)
    assert lr("wsd", 100) == pytest.approx(PEAK * MIN, rel=1e-5)


def test_constant_and_no_warmup():
    assert lr("constant", 99) == pytest.approx(PEAK)
    assert float(make_schedule("constant", PEAK, STEPS, 0)(0)) == pytest.approx(PEAK)
