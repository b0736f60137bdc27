# One venv for the whole suite in development; each package still installs on its own.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := shared services/gateway services/chat-worker services/billing services/metrics devtools
STAMP := $(VENV)/.installed
, := ,
# shared's `asyncapi` extra: FastStream, which renders docs/asyncapi.json (python -m lobe.shared.catalog).
EDITABLES := $(patsubst shared,'shared[asyncapi]',$(PACKAGES))

.PHONY: dev test test-unit test-integration lint install system-deps node-deps helm-check clean
.PHONY: coverage e2e-staging workflow-check compose-check tls images image charts-push deploy helm-test smoke rollback
.PHONY: chart-deps image-scan image-sbom image-sign
.PHONY: bench bench-profile bench-scaling bench-litellm soak

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

# Benchmarks (never part of `make test`): each starts its own suite on free ports and writes
# docs/bench/ and its section of docs/performance.md. They first wait (up to 10 minutes) for the
# shared machine to be quiet. See docs/loadtest.md.
bench: install
	$(BIN)/lobe bench standard --wait-quiet 600 --cache-miss --tracing

bench-profile: install
	$(BIN)/lobe bench profile --wait-quiet 600 --cache-miss --tracing

bench-scaling: install
	$(BIN)/lobe bench scaling --wait-quiet 600 --cache-miss --tracing

# The fake upstream, LiteLLM's proxy and the suite side by side. LiteLLM goes into its own venv,
# .bench/litellm-venv, from devtools/bench/litellm-constraints.txt (once; again when the pins change).
bench-litellm: install
	$(BIN)/lobe bench litellm --wait-quiet 600 --cache-miss

# 10 minutes at a steady 50 requests/s; fails when a suite process's private memory grows > 30 MiB.
soak: install
	$(BIN)/lobe bench soak --duration 600 --rate 50 --max-rss-growth-mb 30

# -- Delivery: the targets .github/workflows runs, so CI holds no logic of its own (docs/deploy.md) ----
SERVICES := gateway chat-worker billing metrics
CHARTS := $(SERVICES) lobe
HELM := .lobe/tools/helm
# The suite's version is the umbrella chart's appVersion; every build is also tagged by its commit.
VERSION := $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' helm/lobe/Chart.yaml)
GIT_SHA := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
IMAGE_TAG ?= $(GIT_SHA)
# Image and chart registries (host/namespace, no scheme); CI passes its own.
REGISTRY ?= localhost:5000/lobe
CHART_REGISTRY ?= $(REGISTRY)/charts
CHART_VERSION ?= $(VERSION)-g$(GIT_SHA)
# Environments: ENV=staging or ENV=production, one namespace each, values in helm/lobe/values-$(ENV).yaml.
ENV ?=
RELEASE ?= lobe
NAMESPACE ?= lobe-$(ENV)
DEPLOY_TIMEOUT ?= 10m
# Deploy the chart pushed by charts-push when CHART_FROM_REGISTRY=1 (CI), else the one in this tree.
CHART_REF = $(if $(CHART_FROM_REGISTRY),oci://$(CHART_REGISTRY)/lobe --version $(CHART_VERSION),helm/lobe)
# `make image PUSH=1` writes each pushed image's digest (sha256:…) to IMAGE_DIGESTS/lobe-<service>.digest;
# CI hands them from the image jobs to the deploy jobs as an artifact.
IMAGE_DIGESTS ?= .lobe/images
SBOM_DIR ?= .lobe/sbom
image_digest = $(strip $(shell cat $(IMAGE_DIGESTS)/lobe-$(1).digest 2>/dev/null))
# What the release runs is named here, from the same REGISTRY the images were pushed to, for each
# service (a service's image.* wins over global.* in the charts, so no values file can disagree):
# by digest when the push recorded one, else by IMAGE_TAG (a local build).
IMAGE_SETS = $(foreach s,$(SERVICES),--set $(s).image.registry=$(REGISTRY) --set $(s).image.tag=$(IMAGE_TAG) \
  --set $(s).image.digest=$(call image_digest,$(s)))
# The revision serving before a deploy and the one it installed: what `make rollback` returns to
# (tools/release.py). DRY_RUN=1: `helm upgrade --dry-run`, nothing recorded.
RELEASE_STATE = $(PYTHON) tools/release.py --helm $(HELM) --release $(RELEASE) --namespace $(NAMESPACE) \
  --state $(RELEASE_STATE_DIR)/$(NAMESPACE)-$(RELEASE).json --timeout $(DEPLOY_TIMEOUT)
RELEASE_STATE_DIR ?= .lobe/release
HELM_FLAGS ?=
DRY_RUN ?=
REVISION ?=
SMOKE_MODEL ?= mock
TLS_DIR ?= deploy/tls
TLS_HOSTS ?= localhost,127.0.0.1

define require_env
$(if $(filter $(ENV),staging production),,$(error ENV must be staging or production, not '$(ENV)'))
endef

# Unit and integration tests with line coverage: coverage.xml and an HTML report under .lobe/ (CI keeps
# both), and a per-package summary on the terminal and, in GitHub Actions, in the job's summary.
coverage: install
	$(BIN)/pytest -q -p no:cacheprovider --cov=lobe --cov-report=term:skip-covered --cov-report=xml:.lobe/coverage.xml --cov-report=html:.lobe/coverage-html
	$(BIN)/python -m lobe.devtools.coverage_summary .lobe/coverage.xml

# The tests marked `staging` (tests/e2e/test_staging.py) against a deployed suite: STAGING_URL, with
# STAGING_API_KEY from the environment (never the command line); unset, against a local suite.
# CI runs it after each staging deploy and keeps the JUnit report.
e2e-staging: install
	$(BIN)/pytest -q -p no:cacheprovider -m staging tests/e2e --junitxml=.lobe/e2e-staging.xml

# actionlint and the GitHub workflow schema over .github/workflows.
workflow-check: install
	LOBE_BIN=$(abspath $(BIN)) tools/check-workflows.sh

# docker-compose.yml against the Compose specification's schema.
compose-check: install
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

# A local CA and a server certificate for compose's nginx (TLS_DIR, TLS_HOSTS); kept when present.
tls:
	deploy/nginx/make-tls.sh $(TLS_DIR) $(TLS_HOSTS)

$(HELM):
	helm/tools/get-helm.sh

# The four images built here with podman on a Debian bookworm base made from Debian's packages (no
# Docker engine, no registry), as tests/packaging/test_images.py builds and runs them; the base is
# rebuilt only when its recipe changes. `make images SERVICES=gateway` builds one.
images: install
	$(BIN)/python -m lobe.devtools.images $(SERVICES)

# One image per service (CI, Docker): tagged by commit and version; with PUSH=1 pushed to REGISTRY
# with an SBOM and provenance attestation, layers cached in the registry, and the digest the
# registry gave it written to IMAGE_DIGESTS/lobe-<service>.digest (what make deploy runs).

image:
	$(if $(filter $(SERVICE),$(SERVICES)),,$(error SERVICE must be one of: $(SERVICES)))
	$(if $(PUSH),mkdir -p $(IMAGE_DIGESTS))
	docker buildx build -f services/$(SERVICE)/Dockerfile \
	  -t $(REGISTRY)/lobe-$(SERVICE):$(IMAGE_TAG) -t $(REGISTRY)/lobe-$(SERVICE):$(VERSION) \
	  --label org.opencontainers.image.revision=$(GIT_SHA) --label org.opencontainers.image.version=$(VERSION) \
	  --cache-from type=registry,ref=$(REGISTRY)/lobe-$(SERVICE):buildcache \
	  $(if $(PUSH),--push --sbom=true --provenance=mode=max --metadata-file $(IMAGE_DIGESTS)/lobe-$(SERVICE).json \
	  --cache-to type=registry$(,)ref=$(REGISTRY)/lobe-$(SERVICE):buildcache$(,)mode=max,--load) .
	$(if $(PUSH),sed -n 's/.*"containerimage.digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' \
	  $(IMAGE_DIGESTS)/lobe-$(SERVICE).json > $(IMAGE_DIGESTS)/lobe-$(SERVICE).digest && \
	  grep -q '^sha256:' $(IMAGE_DIGESTS)/lobe-$(SERVICE).digest)

# The pushed image by digest (image-scan, image-sbom, image-sign run where trivy and cosign exist: CI).
IMAGE_REF = $(REGISTRY)/lobe-$(SERVICE)@$(call image_digest,$(SERVICE))
define require_pushed
$(if $(call image_digest,$(SERVICE)),,$(error no digest in $(IMAGE_DIGESTS)/lobe-$(SERVICE).digest: make image SERVICE=$(SERVICE) PUSH=1 first))
endef

# Fails on a HIGH or CRITICAL vulnerability that has a fix.
image-scan:
	$(require_pushed)
	trivy image --exit-code 1 --severity HIGH,CRITICAL --ignore-unfixed $(IMAGE_REF)

# A CycloneDX SBOM of the pushed image, kept in SBOM_DIR (CI uploads it and attests it).
image-sbom:
	$(require_pushed)
	mkdir -p $(SBOM_DIR)
	trivy image --format cyclonedx --output $(SBOM_DIR)/lobe-$(SERVICE).cdx.json $(IMAGE_REF)

# Keyless: cosign signs with the CI job's OIDC identity (Fulcio certificate, Rekor transparency log),
# and attaches the SBOM as a signed attestation. Verify: docs/deploy.md, "Verify an image's signature and SBOM".
image-sign:
	$(require_pushed)
	cosign sign --yes $(IMAGE_REF)
	cosign attest --yes --type cyclonedx --predicate $(SBOM_DIR)/lobe-$(SERVICE).cdx.json $(IMAGE_REF)

# Package every chart at CHART_VERSION and push it to oci://CHART_REGISTRY (credentials: docker login).
charts-push: chart-deps
	rm -rf .lobe/charts && mkdir -p .lobe/charts
	@for chart in $(CHARTS); do $(HELM) package helm/$$chart --version $(CHART_VERSION) -d .lobe/charts || exit 1; done
	@for pkg in .lobe/charts/*.tgz; do $(HELM) push $$pkg oci://$(CHART_REGISTRY) || exit 1; done

# Each chart's subcharts into its charts/, offline (they are file:// dependencies): the service
# charts first, since the umbrella chart packages each of them with the lobe-common it carries.
chart-deps: $(HELM)
	@for chart in $(SERVICES) lobe; do $(HELM) dependency update --skip-refresh helm/$$chart >/dev/null || exit 1; done

# Install or upgrade ENV's release; --atomic rolls it back by itself when it does not become ready.
deploy: $(HELM) $(if $(CHART_FROM_REGISTRY),,chart-deps)
	$(require_env)
	$(if $(DRY_RUN),,$(RELEASE_STATE) before)
	$(HELM) upgrade --install $(RELEASE) $(CHART_REF) -n $(NAMESPACE) --create-namespace \
	  -f helm/lobe/values-$(ENV).yaml $(IMAGE_SETS) \
	  --atomic --wait --timeout $(DEPLOY_TIMEOUT) $(if $(DRY_RUN),--dry-run) $(HELM_FLAGS)
	$(if $(DRY_RUN),,$(RELEASE_STATE) after)

# Each chart's test pod against ENV's release.
helm-test: $(HELM)
	$(require_env)
	$(HELM) test $(RELEASE) -n $(NAMESPACE) --logs --timeout 5m

# Back to the revision that served before this workspace's `make deploy`, when that upgrade
# succeeded (CI: the smoke or helm test failed after it); a failed upgrade --atomic undid itself.
# REVISION=N: to that revision instead (an operator's choice, from helm history).
rollback: $(HELM)
	$(require_env)
	$(RELEASE_STATE) rollback $(if $(REVISION),--revision $(REVISION))

# A streamed answer through SMOKE_BASE_URL (the Ingress, or compose's nginx) with the openai SDK;
# the key comes from SMOKE_API_KEY in the environment, never from the command line.
smoke: install
	$(BIN)/python tests/smoke/smoke.py --base-url "$(SMOKE_BASE_URL)" --model $(SMOKE_MODEL) $(if $(SMOKE_CA),--ca $(SMOKE_CA))

clean:
	rm -rf $(VENV) .lobe
