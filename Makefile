# One venv for the whole suite in development; each package still installs on its own.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := shared services/gateway services/chat-worker services/billing services/metrics devtools
STAMP := $(VENV)/.installed
# shared's `asyncapi` extra: FastStream, which renders docs/asyncapi.json (python -m lobe.shared.catalog).
EDITABLES := $(patsubst shared,'shared[asyncapi]',$(PACKAGES))

.PHONY: dev test test-unit test-integration lint install system-deps node-deps helm-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when a package's metadata or the pins change.
$(STAMP): $(BIN)/python constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	$(BIN)/pip install -q -c constraints.txt $(addprefix -e ,$(EDITABLES)) -r requirements-dev.txt
	touch $@

install: system-deps node-deps $(STAMP)

# Debian packages whose binaries the tests run (tools/system-deps.txt): installed when missing (root).
system-deps:
	@bash tools/system-deps.sh

# npm packages the tests run (devtools/node/package.json: a real OpenID provider), pinned, no lock file.
node-deps:
	@bash tools/node-deps.sh

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

clean:
	rm -rf $(VENV) .lobe
