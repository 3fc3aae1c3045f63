"""`ntjax sweep` without training: the search space, the budget and samplers on a real Optuna study in
SQLite (with a cheap analytic objective), results/importance, and the LR sensitivity metric."""
import json
import math

import optuna
import pytest

from ntjax.core.config import preset, to_dict
from ntjax.errors import NtjaxError
from ntjax.sweep import results, sensitivity, space
from ntjax.sweep import study as study_lib


def test_parse_each_kind_and_round_trip():
    lr = space.parse_param("lr=log:1e-4:1e-2")
    assert (lr.kind, lr.low, lr.high) == ("log", 1e-4, 1e-2)
    assert space.parse_param(lr.spec) == lr
    assert space.parse_param("warmup=int:0:100") == space.Param("warmup", "int", 0, 100)
    assert space.parse_param("b2=uniform:0.9:0.999").kind == "uniform"
    assert space.parse_param("batch_size=choice:8,16,32").choices == (8, 16, 32)
    assert space.parse_param("qk_norm=choice:true,false").choices == (True, False)
    assert space.parse_param("schedule=choice:cosine,wsd").choices == ("cosine", "wsd")


@pytest.mark.parametrize("text, words", [
    ("learning_rate=log:1e-4:1e-2", "unknown hyperparameter"),
    ("lr=log:0:1e-2", "LO > 0"),
    ("lr=log:1e-2:1e-4", "LO < HI"),
    ("lr=gauss:1:2", "SPEC must start"),
    ("lr", "NAME=SPEC"),
    ("warmup=int:0.5:10", "whole numbers"),
    ("batch_size=choice:8,x", "not a valid int"),
    ("qk_norm=uniform:0:1", "use choice"),
])
def test_bad_params_are_one_clear_error(text, words):
    with pytest.raises(NtjaxError, match=words):
        space.parse_param(text)


def test_grid_values_and_size():
    lr = space.parse_param("lr=log:1e-4:1e-2")
    assert space.grid_values(lr, 3) == pytest.approx([1e-4, 1e-3, 1e-2])
    with pytest.raises(NtjaxError, match="--grid-points"):
        space.grid_values(lr, None)
    assert space.grid_values(space.parse_param("n_layers=int:1:4"), None) == [1, 2, 3, 4]
    g = space.grid([lr, space.parse_param("warmup=choice:0,10")], 3)
    assert space.grid_size(g) == 6 and len(space.grid_points_list(g)) == 6


def test_apply_params_maps_names_to_train_and_model_fields():
    cfg = space.apply_params(preset("tiny"), {"lr": 1e-3, "d_model": 48.0, "qk_norm": "true", "warmup": 5})
    assert cfg.lr == 1e-3 and cfg.warmup == 5
    assert cfg.model.d_model == 48 and isinstance(cfg.model.d_model, int) and cfg.model.qk_norm is True
    assert space.parse_sets(["weight_decay=0", "schedule=wsd"]) == {"weight_decay": 0.0, "schedule": "wsd"}


def test_space_file(tmp_path):
    f = tmp_path / "space.json"
    f.write_text(json.dumps({"params": {"lr": "log:1e-4:1e-2", "warmup": "int:0:20"}}))
    assert space.load_space_file(f) == ["lr=log:1e-4:1e-2", "warmup=int:0:20"]
    f.write_text("[1, 2]")
    with pytest.raises(NtjaxError):
        space.load_space_file(f)


def test_lr_sensitivity_on_synthetic_numbers():
    # Diverged (inf) and NaN runs count as the initial loss; everything is capped at it.
    s = sensitivity.lr_sensitivity([1e-3, 3e-3, 1e-2, 3e-2, 1e-1], [3.0, 2.5, 2.4, math.inf, math.nan], 5.5)
    assert s.best_loss == 2.4 and s.best_lr == 1e-2 and s.init_loss == 5.5
    assert s.value == pytest.approx((0.6 + 0.1 + 0 + 3.1 + 3.1) / 5)
    # A configuration that reaches nearly its best everywhere is less sensitive (e.g. with qk-layernorm).
    robust = sensitivity.lr_sensitivity([1e-3, 3e-3, 1e-2, 3e-2, 1e-1], [2.6, 2.45, 2.4, 2.5, 2.7], 5.5)
    assert 0 < robust.value < s.value
    assert sensitivity.lr_sensitivity([1e-3, 1e-2], [2.0, 2.0], 5.0).value == 0.0
    assert sensitivity.lr_sensitivity([1e-3], [9.0], 5.0).value == 0.0  # worse than init is capped at init


def _recipe(strategy, params=("lr=log:1e-4:1e-1",), grid_points=None):
    base = json.loads(json.dumps(to_dict(preset("tiny"))))
    return study_lib.Recipe(params=tuple(params), strategy=strategy, grid_points=grid_points, base=base)


def _bowl(trial):
    """An analytic stand-in for a training run's final loss: best at lr = 3e-3, warmup helps a little."""
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    warmup = trial.params.get("warmup", 0)
    return (math.log10(lr) - math.log10(3e-3)) ** 2 + 2.0 - 0.001 * warmup


def _run(tmp_path, recipe, max_runs, objective=_bowl):
    storage = study_lib.open_storage(study_lib.default_storage(tmp_path), heartbeat_s=1)
    study, _ = study_lib.open_study(recipe, storage, "s", max_runs=max_runs)
    study_lib.run_worker(study, objective, study_lib.Budget(max_runs))
    return study


def test_grid_runs_every_point_once(tmp_path):
    recipe = _recipe("grid", ("lr=log:1e-4:1e-1", "warmup=choice:0,10"), grid_points=4)

    def objective(trial):
        trial.suggest_categorical("warmup", [0, 10])
        return _bowl(trial)

    study = _run(tmp_path, recipe, max_runs=8, objective=objective)
    points = sorted((t.params["lr"], t.params["warmup"]) for t in study.trials)
    assert len(study.trials) == 8 and len(set(points)) == 8
    assert all(t.state.name == "COMPLETE" for t in study.trials)


@pytest.mark.parametrize("strategy, sampler", [("random", optuna.samplers.RandomSampler),
                                               ("bayes", optuna.samplers.TPESampler)])
def test_random_and_bayes_run_exactly_the_budget_and_continue_on_restart(tmp_path, strategy, sampler):
    study = _run(tmp_path, _recipe(strategy), max_runs=6)
    assert isinstance(study.sampler, sampler) and len(study.trials) == 6
    first = {t.number: t.params for t in study.trials}
    study = _run(tmp_path, _recipe(strategy), max_runs=9)  # the same sweep, a bigger budget
    assert len(study.trials) == 9
    assert {t.number: t.params for t in study.trials[:6]} == first  # nothing re-run
    assert len({t.params["lr"] for t in study.trials}) == 9  # a restart draws new points
    if strategy == "bayes":
        best = min(study.trials, key=lambda t: t.value)
        assert abs(math.log10(best.params["lr"] / 3e-3)) < math.log10(3)


def test_a_changed_recipe_is_refused(tmp_path):
    _run(tmp_path, _recipe("random"), max_runs=1)
    with pytest.raises(NtjaxError, match="different settings"):
        _run(tmp_path, _recipe("random", ("lr=log:1e-5:1e-1",)), max_runs=2)


def test_results_summary_table_importance_and_plots(tmp_path):
    recipe = _recipe("random", ("lr=log:1e-4:1e-1", "warmup=int:0:50"))

    def objective(trial):
        trial.suggest_int("warmup", 0, 50)
        value = _bowl(trial)
        if trial.params["lr"] > 5e-2:
            trial.set_user_attr("diverged", "non-finite loss by step 7")
            return math.inf
        return value

    study = _run(tmp_path, recipe, max_runs=12, objective=objective)
    data = results.summary(study, "eval/loss")
    assert len(data["trials"]) == 12 and set(data["importance"]) == {"lr", "warmup"}
    assert data["importance"]["lr"] > data["importance"]["warmup"]
    finite = [t["value"] for t in data["trials"] if math.isfinite(t["value"])]
    assert data["best"]["value"] == min(finite)
    rows = results.sorted_trials(study)
    assert [t.value for t in rows if math.isfinite(t.value)] == sorted(finite)
    data["plots"] = results.write_plots(study, data, tmp_path / "plots")
    assert {p.rsplit("/", 1)[1] for p in data["plots"]} == {"progress.png", "importance.png", "params.png"}
    from rich.console import Console
    Console(file=open(tmp_path / "table.txt", "w"), width=200).print(results.table(study, "eval/loss"))
    assert "eval/loss" in (tmp_path / "table.txt").read_text()


def test_importance_with_too_few_trials_is_explained(tmp_path):
    study = _run(tmp_path, _recipe("random"), max_runs=1)
    imp, note = results.importance(study)
    assert imp == {} and "at least 2" in note
