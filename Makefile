# counter-template: developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist workers; the suite is I/O bound (docker, helm, servers).
JOBS ?= auto
OUT ?= build

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create .venv with the template's dev tools

.PHONY: tools
tools: venv ## Build helm + kubeconform and the offline schema cache (machine-level cache)
	PYTHON=$(abspath $(BIN))/python scripts/install-tools.sh

.PHONY: bake
bake: venv ## Bake the default project into $(OUT)/ (answers: make bake ARGS='enable_istio=yes')
	$(BIN)/cookiecutter --no-input --overwrite-if-exists -o $(OUT) . $(ARGS)

.PHONY: bench
bench: venv ## Benchmark the generated service (needs wrk, redis-server; BENCH_ARGS='--duration 5')
	$(BIN)/python bench/run.py $(BENCH_ARGS)

.PHONY: lint
lint: venv ## Lint the template's own Python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: test
test: venv tools lint ## Install what the tests need, then run the whole suite
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

.PHONY: cluster-up
cluster-up: ## Start the local Kubernetes cluster for tests/test_cluster.py (builds it once: ~10 min)
	PYTHON=$(PYTHON) scripts/kube-cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop and delete the local Kubernetes cluster
	scripts/kube-cluster.sh down

.PHONY: node-up
node-up: ## Add a real node that runs pods to the local cluster (root; kubelet, containerd, CNI, CoreDNS)
	scripts/kube-cluster.sh node-up

.PHONY: node-down
node-down: ## Remove the real node: its processes, mounts, links and iptables chains
	scripts/kube-cluster.sh node-down

.PHONY: clean
clean: ## Remove the venv, caches and baked output
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache $(OUT)
