"""Instability handling on real runs: an injected loss spike is skipped, an injected NaN is rolled back
(and located), and both runs end close to a clean run."""
import dataclasses
import json
import textwrap

import pytest

from ntjax.core import config as C
from ntjax.trainer import train

SPEC = """
import jax.numpy as jnp
from ntjax.core.data import make_data
from ntjax.core.model import GPT
from ntjax.core.step import lm_loss

BAD_INDEXES, FACTOR = {bad}, {factor}
_data = {{}}


def _d(cfg):
    return _data.setdefault(cfg.seed, make_data(cfg.model.seq_len, cfg.seed, cfg.eval_fraction))


def build_model(cfg, rngs):
    return GPT(cfg.model, rngs)


def train_batch(cfg, index):
    batch = _d(cfg).train_batch(index, cfg.batch_size)
    if index in BAD_INDEXES:
        batch[0, 0] = 0  # a NUL byte never occurs in the corpus: it marks the poisoned batch
    return batch


def eval_batches(cfg):
    return _d(cfg).eval_batches(cfg.eval_batches, cfg.batch_size)


def loss_fn(model, batch):
    loss, aux = lm_loss(model, batch)
    return loss * jnp.where(batch[0, 0] == 0, FACTOR, 1.0), aux
"""


def run(tmp_path, name, policy, bad=(), factor=1.0, **changes):
    spec = tmp_path / f"{name}_spec.py"
    spec.write_text(textwrap.dedent(SPEC.format(bad=set(bad) or "set()", factor=f"float({str(factor)!r})")))
    cfg = dataclasses.replace(C.PRESETS["tiny"], steps=90, spec=str(spec), on_instability=policy,
                              spike_window=16, eval_every=30, ckpt_every=30, **changes)
    return train(cfg, tmp_path / name, progress=False)


def events(run_dir):
    path = run_dir / "events.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return run(tmp_path_factory.mktemp("clean"), "clean", "stop")


@pytest.mark.slow
def test_spike_is_skipped_and_the_run_recovers(tmp_path, clean):
    result = run(tmp_path, "spiky", "skip", bad=(50,), factor=40.0)
    evs = events(tmp_path / "spiky")
    skips = [e for e in evs if e["kind"] == "skip"]
    assert [e["step"] for e in skips] == [51], evs  # batch index 50 is step 51
    assert not result.diverged
    assert result.best_eval_loss == pytest.approx(clean.best_eval_loss, rel=0.03)


@pytest.mark.slow
def test_nan_is_located_rolled_back_and_the_run_recovers(tmp_path, clean):
    # A 90-step run has no time to make up a halved LR; lower it by 0.8 instead.
    result = run(tmp_path, "nan", "rollback", bad=(40,), factor=float("nan"), rollback_lr_factor=0.8)
    evs = events(tmp_path / "nan")
    kinds = [e["kind"] for e in evs]
    assert "nan_origin" in kinds and "rollback" in kinds, evs
    origin = next(e for e in evs if e["kind"] == "nan_origin")
    assert origin["step"] == 41 and "loss" in origin["message"]
    rollback = next(e for e in evs if e["kind"] == "rollback")
    assert "to checkpoint 30" in rollback["message"] and "LR x0.8" in rollback["message"]
    assert not result.diverged and result.final_step == 90
    lines = [json.loads(l) for l in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    steps = [l["step"] for l in lines if "train/loss" in l]
    assert steps == list(range(1, 91))  # the abandoned steps were rewound, none duplicated
    assert result.best_eval_loss == pytest.approx(clean.best_eval_loss, rel=0.05)
    assert any(e["kind"] == "rollback" for e in result.events)


@pytest.mark.slow
def test_nan_with_stop_policy_stops_and_says_where(tmp_path):
    result = run(tmp_path, "stop", "stop", bad=(20,), factor=float("nan"))
    assert result.diverged and result.final_step <= 22
    assert any(e["kind"] == "nan_origin" for e in events(tmp_path / "stop"))
