# One venv for the whole suite in development; each package still installs on its own.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := shared services/gateway services/chat-worker services/billing services/metrics devtools
STAMP := $(VENV)/.installed
# shared's `asyncapi` extra: FastStream, which renders docs/asyncapi.json (python -m lobe.shared.catalog).
EDITABLES := $(patsubst shared,'shared[asyncapi]',$(PACKAGES))

.PHONY: dev test test-unit test-integration lint install system-deps helm-check bench bench-profile bench-scaling soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when a package's metadata or the pins change.
$(STAMP): $(BIN)/python constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	$(BIN)/pip install -q -c constraints.txt $(addprefix -e ,$(EDITABLES)) -r requirements-dev.txt
	touch $@

install: system-deps $(STAMP)

# Debian packages whose binaries the tests run (tools/system-deps.txt): installed when missing (root).
system-deps:
	@bash tools/system-deps.sh

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
	@# Each package's code against its own pyproject.toml: deptry for third-party imports, then the
	@# lobe.* packages, which deptry sees as one namespace `lobe`.
	@for package in $(PACKAGES); do echo "deptry $$package"; (cd $$package && $(abspath $(BIN))/deptry src) || exit 1; done
	$(BIN)/python -m lobe.devtools.first_party_deps $(PACKAGES)

# Helm lint --strict, helm template and kubernetes-validate for every chart and ci values file.
helm-check: install
	PATH="$(abspath $(BIN)):$$PATH" helm/tools/check.sh

# Benchmarks (never part of `make test`): each starts its own suite on free ports and writes
# docs/bench/ and its section of docs/performance.md. They first wait (up to 10 minutes) for the
# shared machine to be quiet. See docs/loadtest.md.
bench: install
	$(BIN)/lobe bench standard --wait-quiet 600

bench-profile: install
	$(BIN)/lobe bench profile --wait-quiet 600

bench-scaling: install
	$(BIN)/lobe bench scaling --wait-quiet 600

# 10 minutes at a steady 50 requests/s; fails when a suite process's private memory grows > 30 MiB.
soak: install
	$(BIN)/lobe bench soak --duration 600 --rate 50 --max-rss-growth-mb 30

clean:
	rm -rf $(VENV) .lobe
