# counter-template: developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist workers; the suite is I/O bound (docker, helm, servers).
JOBS ?= auto
# Where `make bake` writes projects: ignored by git, so a bake never dirties the checkout.
OUT ?= build

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(OUT)/$(OUT)/g' \
		| awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Debian ships venv apart from python3; say so instead of ensurepip's traceback.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || scripts/install-system-packages.sh || { \
		echo "venv: $(PYTHON) has no venv module: sudo apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create .venv with the template's dev tools

.PHONY: tools
tools: venv ## Build helm, kubeconform, actionlint and the offline schema cache (machine-level cache)
	PATH="$$(scripts/install-go.sh):$$PATH" PYTHON=$(abspath $(BIN))/python scripts/install-tools.sh

.PHONY: bake
bake: venv ## Generate the default project into $(OUT)/ (answers: make bake ARGS='enable_istio=yes')
	$(BIN)/python -m hooks.bake --output-dir $(OUT) $(ARGS)

.PHONY: bench
bench: venv ## Benchmark the generated service (needs wrk, redis-server; BENCH_ARGS='--duration 5')
	$(BIN)/python bench/run.py $(BENCH_ARGS)

.PHONY: profile
profile: venv ## Where a request's CPU goes, by layer (py-spy under wrk; PROFILE_ARGS='--server granian')
	$(BIN)/python bench/cpu_profile.py $(PROFILE_ARGS)

.PHONY: lint
lint: venv ## Lint the template's own Python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One command: the set-up script installs and starts what the tests need
# (packages, Go, docker, tools, the cluster) and prints their environment.
.PHONY: test
test: venv lint ## Install and start everything the tests need, then run the whole suite
	env_file="$$(mktemp)" && trap 'rm -f "$$env_file"' EXIT \
		&& PYTHON=$(abspath $(BIN))/python scripts/test-env.sh >"$$env_file" \
		&& source "$$env_file" \
		&& $(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

.PHONY: cluster-up
cluster-up: ## Start this checkout's local Kubernetes cluster (builds it once: ~10 min)
	PATH="$$(scripts/install-go.sh):$$PATH" PYTHON=$(PYTHON) scripts/kube-cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop and delete this checkout's local Kubernetes cluster
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
