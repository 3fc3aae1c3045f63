"""Hyperparameter search for `ntjax sweep`: the search space (`space`), the Optuna study, objective and
budget (`study`), running workers (`runner`), results, importance and plots (`results`), and the LR
sensitivity of Wortsman et al. 2023 (`sensitivity`)."""
