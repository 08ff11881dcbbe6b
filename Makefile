# The two set-up commands: `make up` and `make test`. Everything else is optional.
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/pretix-cluster
PYTEST := $(VENV)/bin/pytest

.PHONY: docker up test loadtest bench bench-long chaos unit integration lint format down purge status

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

docker:
	./scripts/ensure-docker.sh

up: $(VENV)/.installed
	./scripts/ensure-docker.sh
	$(CLI) up

status: $(VENV)/.installed
	$(CLI) status

down: $(VENV)/.installed
	$(CLI) down

purge: $(VENV)/.installed
	$(CLI) down --purge --yes

test: $(VENV)/.installed
	./scripts/ensure-docker.sh
	$(VENV)/bin/ruff check src tests
	$(PYTEST) tests/unit
	$(PYTEST) -m integration --durations=15 tests/integration
	# After the single-machine cluster is gone: three lab machines, the cluster across them.
	$(PYTEST) -m integration --durations=10 tests/lab

# A load run against the running cluster (cluster.toml): phases 0.5x..10x of the target.
loadtest: $(VENV)/.installed
	$(CLI) loadtest --shape phases --target 800 --duration 3m

# The benchmark (not part of `make test`): a single-node baseline stack and the cluster of
# cluster.toml under the same load, back to back; brings both up as needed (the one not
# measured is paused), leaves the cluster running. Results in results/bench-<stamp>/.
# `bench`: the shop flow, 5 minutes per system (~14 minutes on 2 cores).
bench: $(VENV)/.installed
	./scripts/ensure-docker.sh
	$(CLI) bench

# The long run: shop and API flows, 8 minutes each, profiled (py-spy flame graphs,
# pg_stat_statements), then the quota lock's hold per synchronous_commit mode (~50 minutes).
bench-long: $(VENV)/.installed
	./scripts/ensure-docker.sh
	$(CLI) bench --scenarios shop,api --duration 8m --profile --lock-hold 90s

# Every chaos scenario against the running cluster of cluster.toml (it disturbs it on purpose;
# scenario 11 restarts the Docker daemon). Results in results/chaos-<stamp>/.
chaos: $(VENV)/.installed
	./scripts/ensure-docker.sh
	$(CLI) chaos run all

unit: $(VENV)/.installed
	$(PYTEST) tests/unit

integration: $(VENV)/.installed
	$(PYTEST) -m integration --durations=15 tests/integration
	$(PYTEST) -m integration --durations=10 tests/lab

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests
