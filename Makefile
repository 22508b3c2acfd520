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

.PHONY: setup up env preview plan down rebuild docs test lint actionlint cloud-sql-proxy proxy-start proxy-stop unit integration e2e engine images bench clean

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

# The Pulumi project directory (the checkout; the end-to-end tests point it at their own).
PROJECT_DIR ?= $(CURDIR)

preview: setup .pulumi-state/passphrase
	pulumi preview --cwd $(PROJECT_DIR) --stack $(STACK) --diff

# Drift: what `pulumi preview` sees after refreshing from the real world; exit 1 on any change.
# The scheduled drift workflow runs this per stack, and the end-to-end suite runs it last.
drift: setup
	pulumi preview --cwd $(PROJECT_DIR) --stack $(STACK) --refresh --expect-no-changes --diff

# What the stack declares, from the stack file alone: the real program under Pulumi's mocks (no
# backend, no credentials, no secrets). Pull requests from forks get this instead of a preview.
plan: setup
	$(BIN)/python -m infra plan --stack $(STACK)

down: setup
	pulumi destroy --stack $(STACK) --yes

# After a disaster: refresh, pulumi up, restore every service from its newest verified backup.
rebuild: setup .pulumi-state/passphrase
	$(BIN)/python -m infra rebuild --stack $(STACK)

# README.md's configuration reference, generated from infra/config/model.py (the declared
# defaults, rules and docs); a unit test fails when it is out of date.
docs: setup
	$(BIN)/python -m infra docs

lint: setup actionlint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(ACTIONLINT)

# actionlint checks .github/workflows/ (expressions, job graph, shell via shellcheck when present).
# Pinned and built from the Go module proxy into .tools/bin like the engine; skipped when the
# binary there already reports the pinned version.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(CURDIR)/.tools/bin/actionlint
actionlint:
	@if [ "$$($(ACTIONLINT) -version 2>/dev/null | head -n1)" != "$(ACTIONLINT_VERSION)" ]; then \
	  echo "building actionlint $(ACTIONLINT_VERSION) into .tools/bin"; \
	  GOBIN=$(CURDIR)/.tools/bin go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); \
	fi

# The Cloud SQL Auth Proxy the prod deploy and drift jobs reach the private instance through,
# pinned and built from the Go module proxy like actionlint (skipped when already at the pin).
CLOUD_SQL_PROXY_VERSION := v2.27.0
CLOUD_SQL_PROXY := $(CURDIR)/.tools/bin/cloud-sql-proxy
PROXY_PORT ?= 6432
cloud-sql-proxy:
	@if [ "$$($(CLOUD_SQL_PROXY) --version 2>/dev/null | awk '{print "v" $$NF}')" != "$(CLOUD_SQL_PROXY_VERSION)" ]; then \
	  echo "building cloud-sql-proxy $(CLOUD_SQL_PROXY_VERSION) into .tools/bin"; \
	  GOBIN=$(CURDIR)/.tools/bin go install github.com/GoogleCloudPlatform/cloud-sql-proxy/v2@$(CLOUD_SQL_PROXY_VERSION); \
	fi

# Start the proxy in the background on 127.0.0.1:$(PROXY_PORT) (gcp.provisioning_port) for the
# stack's instance, and wait until it listens. Before the first deploy there is no instance yet:
# then it says so and starts nothing. Credentials: the job's (google-github-actions/auth).
proxy-start: cloud-sql-proxy
	@name=$$(pulumi stack output postgres_connection_name --stack $(STACK) 2>/dev/null) || name=""; \
	if [ -z "$$name" ]; then echo "no Cloud SQL instance in $(STACK) yet: proxy not started"; exit 0; fi; \
	$(CLOUD_SQL_PROXY) --private-ip --address 127.0.0.1 --port $(PROXY_PORT) "$$name" \
	  > .tools/cloud-sql-proxy.log 2>&1 & echo $$! > .tools/cloud-sql-proxy.pid; \
	for _ in $$(seq 60); do \
	  (exec 3<>/dev/tcp/127.0.0.1/$(PROXY_PORT)) 2>/dev/null && { echo "proxy listening on 127.0.0.1:$(PROXY_PORT)"; exit 0; }; \
	  sleep 1; \
	done; \
	echo "the Cloud SQL Auth Proxy did not start:" >&2; cat .tools/cloud-sql-proxy.log >&2; exit 1

proxy-stop:
	@if [ -f .tools/cloud-sql-proxy.pid ]; then kill "$$(cat .tools/cloud-sql-proxy.pid)" 2>/dev/null || true; rm -f .tools/cloud-sql-proxy.pid; fi

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

# The dev stack's life cycle under the real engine and a local Docker engine, in one process
# (-n 0): the tests share fixed container names.
e2e: setup engine
	$(BIN)/pytest -n 0 tests/e2e

integration: setup
	$(BIN)/pytest tests/integration

# Unit and integration tests in two workers (pytest-xdist, see pyproject.toml), then the
# end-to-end tests on their own, in one process.
test: lint engine
	$(BIN)/pytest tests/unit tests/integration
	$(BIN)/pytest -n 0 tests/e2e

bench: setup
	$(BIN)/python -m benchmarks.bench_converge
	$(BIN)/python -m benchmarks.bench_backup
	$(BIN)/python -m benchmarks.bench_program

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
