# The two commands a newcomer needs (see README.md):
#   make up     set everything up and bring the dev stack up (Docker + Pulumi CLI required)
#   make test   run the linters and the whole test suite (real servers from Debian's packages)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev

# State lives in a local file backend inside the checkout unless you point elsewhere
# (prod: PULUMI_BACKEND_URL=gs://<state-bucket>). The passphrase file encrypts dev secrets.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE_FILE ?= $(CURDIR)/.pulumi-state/passphrase

.PHONY: setup up env preview down rebuild test lint unit integration e2e engine images bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@# Never re-create an existing venv: that would switch its interpreter under its packages.
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

setup: $(BIN)/.installed

.pulumi-state/passphrase:
	@mkdir -p .pulumi-state && chmod 700 .pulumi-state
	@umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@

up: setup .pulumi-state/passphrase
	@command -v pulumi >/dev/null || { echo "Install the Pulumi CLI: https://www.pulumi.com/docs/install/" >&2; exit 1; }
	@command -v docker >/dev/null || { echo "Install Docker and start its engine first" >&2; exit 1; }
	pulumi stack select $(STACK) --create --non-interactive
	pulumi up --stack $(STACK) --yes
	@$(MAKE) --no-print-directory env

# Each service's env file (mode 0600) from the running dev stack's outputs.
env: setup
	pulumi stack output service_env --stack $(STACK) --show-secrets --json \
	  | $(BIN)/python -m infra envfiles --out .envs/$(STACK)

preview: setup .pulumi-state/passphrase
	pulumi preview --stack $(STACK) --diff

down: setup
	pulumi destroy --stack $(STACK) --yes

# After a disaster: refresh, pulumi up, restore every service from its newest verified backup.
rebuild: setup .pulumi-state/passphrase
	$(BIN)/python -m infra rebuild --stack $(STACK)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit

# The pinned Pulumi engine (CLI, Python language host, docker and random plugins), built from Go
# modules into .tools/bin; cached, rebuilt only when tests/e2e/engine/ changes. Users install
# Pulumi the normal way; this is how the tests, and anyone offline, get a pinned engine.
engine:
	tests/e2e/engine/build.sh $(CURDIR)/.tools/bin

# The e2e server images, built from Debian's packages on a debootstrap base (nothing is pulled).
images: setup
	$(BIN)/python -m tests.e2e.images.build

# The dev stack's life cycle under the real engine and a local Docker engine.
e2e: setup engine
	$(BIN)/pytest tests/e2e

integration: setup
	$(BIN)/pytest tests/integration

test: lint engine
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m benchmarks.bench_converge
	$(BIN)/python -m benchmarks.bench_backup

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
