import dataclasses

import pytest

from ntjax.core import config as C
from ntjax.errors import NtjaxError


def test_presets_resolve_and_param_count_matches_the_model():
    import jax
    from flax import nnx

    from ntjax.core.model import build_model
    for cfg in C.PRESETS.values():
        r = C.resolve(cfg)
        assert r.lr > 0 and 0 <= r.warmup <= r.steps and r.batch_size % r.micro_batch_size == 0
    m = build_model(C.PRESETS["tiny"].model, 0)
    n = sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert n == C.PRESETS["tiny"].model.n_params()


def test_smart_lr_falls_with_size_and_matches_gpt3_anchor():
    assert C.smart_lr(125e6) == pytest.approx(6e-4)
    lrs = [C.smart_lr(n) for n in (1e6, 1e7, 1e8, 1e9, 1e10, 1e11)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[0] > lrs[-1]
    # Within a factor of 1.5 of every GPT-3 table entry (Brown et al. 2020, Table 2.1).
    for n, lr in C.GPT3_LR_TABLE:
        assert 1 / 1.5 < C.smart_lr(n) / lr < 1.5


def test_smart_warmup_grows_with_size_and_respects_adam_floor():
    small, big = C.smart_warmup(1e6, 10_000, 0.95), C.smart_warmup(1e9, 10_000, 0.95)
    assert big > small >= 40  # 2 / (1 - 0.95)
    assert C.smart_warmup(1e9, 100, 0.999) == 25  # never more than a quarter of the run


def test_micro_batch_is_a_divisor_that_fits():
    cfg = C.PRESETS["default"]
    assert C.micro_batch_that_fits(cfg, 1e12) == cfg.batch_size
    small = C.micro_batch_that_fits(cfg, 2e7)
    assert cfg.batch_size % small == 0 and small < cfg.batch_size
    r = C.resolve(cfg, memory_bytes=2e7)
    assert r.accum_steps == cfg.batch_size // small


@pytest.mark.parametrize("change, words", [
    (dict(lr=-1e-3), "learning rate must be positive"),
    (dict(warmup=5000), "warmup"),
    (dict(batch_size=16, micro_batch_size=5), "not divisible"),
    (dict(schedule="triangle"), "unknown schedule"),
    (dict(steps=0), "steps must be positive"),
    (dict(lora_rank=4), "--init-from"),
])
def test_nonsense_is_refused_with_a_clear_message(change, words):
    with pytest.raises(NtjaxError, match=words):
        C.resolve(dataclasses.replace(C.PRESETS["default"], **change))


def test_config_round_trips_through_dict():
    cfg = C.resolve(C.PRESETS["tiny"])
    assert C.from_dict(C.to_dict(cfg)) == cfg
