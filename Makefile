# Two commands do everything on a fresh machine:
#   make demo   installs the CLI in .venv and runs `reengage demo` against a local emulator
#   make test   installs the dev tools (and SAM CLI in its own venv), then lints, type-checks,
#               validates the template, builds it and runs every test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
LAMBDA_VENV := .venv-lambda
CHECKOV_VENV := .venv-checkov
PIP := pip install --quiet --disable-pip-version-check
export SAM_CLI_TELEMETRY := 0

.PHONY: demo test lint typecheck infra-tests deploy-check unit integration build build-host bench clean

$(VENV)/.installed: pyproject.toml shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP) --upgrade pip
	$(BIN)/$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/$(PIP) -e '.[dev]'
	touch $@

# SAM CLI pins exact versions of boto3, click, cfn-lint...: it gets a venv of its own.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/$(PIP) aws-sam-cli==1.170.0
	touch $@

# checkov has its own pins too.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/$(PIP) checkov==3.3.30
	touch $@

# What the Lambda Python runtime ships (boto3 and its dependencies), nothing more:
# the built functions are imported here to prove the layer carries everything else.
$(LAMBDA_VENV)/.installed:
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/$(PIP) 'boto3>=1.34,<1.45'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/reengage demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy shared/reengage cli/reengage_cli tests benchmarks
	for fn in functions/*/; do MYPYPATH=shared $(BIN)/mypy $$fn/app.py || exit 1; done

infra-tests: $(VENV)/.dev $(SAM_VENV)/.installed
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint

build: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam build

# The template deploys arm64 (the layer holds aarch64 wheels), which an x86_64 machine cannot load.
# The tests and benchmarks that run the built functions use this twin: the same template, built
# for this machine's architecture (tests/infra/test_arm64_build.py checks both hold the same packages).
HOST_ARCH := $(shell uname -m | sed 's/aarch64/arm64/')
build-host: $(SAM_VENV)/.installed
	mkdir -p .aws-sam
	sed 's/^\(    Architectures\|      CompatibleArchitectures\): \[arm64\]$$/\1: [$(HOST_ARCH)]/; s/^      BuildArchitecture: arm64$$/      BuildArchitecture: $(HOST_ARCH)/' \
		template.yaml > .aws-sam/template-host.yaml
	$(SAM_VENV)/bin/sam build --template-file .aws-sam/template-host.yaml --base-dir . --build-dir .aws-sam/build-host

# Deploy-readiness gate: every checkov finding on the built template is fixed or suppressed in
# template.yaml (Metadata: checkov: skip) with a one-line reason. Offline (--skip-download).
deploy-check: build $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -f .aws-sam/build/template.yaml --framework cloudformation \
		--skip-download --compact --quiet

unit: $(VENV)/.dev
	$(BIN)/pytest tests/unit

integration: $(VENV)/.dev
	$(BIN)/pytest tests/integration

test: lint typecheck infra-tests build build-host deploy-check $(LAMBDA_VENV)/.installed
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/selection.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LAMBDA_VENV) $(CHECKOV_VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache
