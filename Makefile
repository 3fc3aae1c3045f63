# Two commands for a fresh machine: `make train` (the main job) and `make test` (the suite).
# Both create .venv and install into it when it is missing or stale.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= cli,torch,test,tensorflow,callbacks
# The exact known-good versions (pyproject.toml holds the ranges users get).
CONSTRAINTS := constraints.txt
PIP_FLAGS ?= --quiet

.PHONY: train test check install clean-venv bench check-plugin claude-cli

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

## The main job: train the default preset with full monitoring, then diagnose it.
train: $(STAMP)
	$(BIN)/ntjax train --yes --out runs/default
	$(BIN)/ntjax debug runs/default

## Lint, types and the architecture contract (layers in pyproject.toml; cycles in tests/test_architecture.py).
check: $(STAMP)
	$(BIN)/ruff check ntjax bridges tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/pyright --pythonpath $(BIN)/python

## The test suite (what CI runs): the checks above, then pytest.
test: $(STAMP) claude-cli check
	$(BIN)/python -m pytest -n 2 --dist worksteal -q $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b --json || exit 1; done

clean-venv:
	rm -rf $(VENV)

## The real Claude Code client (pinned in tests/claude-cli/package-lock.json) for the plugin tests.
## It lives under tests/ because the client runs `npm ci` on a package.json at a plugin's root on install.
claude-cli: tests/claude-cli/node_modules/.bin/claude

tests/claude-cli/node_modules/.bin/claude: tests/claude-cli/package.json tests/claude-cli/package-lock.json
	npm ci --prefix tests/claude-cli --no-audit --no-fund
	@touch $@
