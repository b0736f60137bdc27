# One venv for the whole suite in development; each package still installs on its own.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := shared services/gateway services/chat-worker services/billing services/metrics devtools
STAMP := $(VENV)/.installed

.PHONY: dev test test-unit test-integration lint install helm-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when a package's metadata or the pins change.
$(STAMP): $(BIN)/python constraints.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	$(BIN)/pip install -q -c constraints.txt $(addprefix -e ,$(PACKAGES)) -r requirements-dev.txt
	touch $@

install: $(STAMP)

dev: install
	$(BIN)/lobe dev

test: install
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: install
	$(BIN)/pytest -q -m "not integration"

test-integration: install
	$(BIN)/pytest -q -m integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared/src services/*/src devtools/src
	$(BIN)/mypy --strict -p lobe.shared

# Helm lint --strict, helm template and kubernetes-validate for every chart and ci values file.
helm-check: install
	PATH="$(abspath $(BIN)):$$PATH" helm/tools/check.sh

clean:
	rm -rf $(VENV) .lobe
