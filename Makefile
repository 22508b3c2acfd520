# The two commands a newcomer needs (see README.md):
#   make up     set everything up and bring the dev stack up (a running Docker engine required;
#               the Pulumi CLI and the images are taken from the machine when it has them, built
#               here from Go modules and Debian's packages when it has not)
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
export PULUMI_SKIP_UPDATE_CHECK ?= true
# The backup key that seals and authenticates every backup (README.md, 'What a backup proves'):
# generated once beside the passphrase, unless PERSISTENCE_BACKUP_KEY holds one (CI's secret).
# Keep it with the passphrase: without it no backup of the stack can be restored.
# Exported only to the targets that run the program (the tests choose their own keys).
ifeq ($(PERSISTENCE_BACKUP_KEY),)
PERSISTENCE_BACKUP_KEY_FILE ?= $(dir $(PULUMI_CONFIG_PASSPHRASE_FILE))backup-key
BACKUP_KEY := $(PERSISTENCE_BACKUP_KEY_FILE)
stack-selected up preview drift down rebuild: export PERSISTENCE_BACKUP_KEY_FILE := $(BACKUP_KEY)
else
BACKUP_KEY :=
endif

# The Pulumi CLI: an installed one when the machine has it, otherwise the pinned engine built
# from Go modules into .tools/bin (`make engine`), with its provider plugins registered in a
# PULUMI_HOME of the checkout's own, so nothing is ever downloaded. The venv comes first on PATH
# either way: the language host runs the `python` it finds there.
INSTALLED_PULUMI := $(shell command -v pulumi 2>/dev/null | grep -v '^$(CURDIR)/.tools/bin/')
ifeq ($(INSTALLED_PULUMI),)
PULUMI_CLI := pinned-engine
export PULUMI_HOME ?= $(CURDIR)/.tools/pulumi-home
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION ?= true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK ?= true
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/.tools/bin:$(PATH)
else
PULUMI_CLI := installed-pulumi
export PATH := $(CURDIR)/$(BIN):$(PATH)
endif

# The Pulumi project directory (the checkout; the end-to-end tests point it at their own) and
# where `make env` writes the services' env files.
PROJECT_DIR ?= $(CURDIR)
ENV_DIR ?= $(PROJECT_DIR)/.envs/$(STACK)
PULUMI := pulumi --cwd $(PROJECT_DIR) --non-interactive
# Extra flags for pulumi up/preview/drift/down, e.g. PULUMI_ARGS=--expect-no-changes.
PULUMI_ARGS ?=

.PHONY: setup git-filters salt-refresh up env preview plan pools lag failover down drift rebuild shellenv docs test lint actionlint cloud-sql-proxy proxy-start proxy-stop broker-tunnel-start broker-tunnel-stop broker-rolling-restart unit integration e2e engine perf-test pinned-engine installed-pulumi stack-images stack-selected images bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@# Never re-create an existing venv: that would switch its interpreter under its packages.
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

setup: $(BIN)/.installed git-filters
	@# The CLI's and the Pulumi program's bytecode, refreshed for what changed since: every
	@# command starts without compiling its modules, even where Python may not write bytecode
	@# itself (PYTHONDONTWRITEBYTECODE, as many CI and container environments set).
	@$(BIN)/python -m compileall -q infra __main__.py >/dev/null

# Pulumi writes the salt of the dev passphrase (each developer's own, generated below) into
# Pulumi.dev.yaml as `encryptionsalt:`. Committed, it would refuse every other developer's
# passphrase ("incorrect passphrase"); .gitattributes runs Pulumi.dev.yaml through this filter,
# so git never sees that line. When a pull drops it, Pulumi writes a new salt for the same
# passphrase. The filter is written only when it is missing or different: two makes at once
# never race for .git/config's lock.
SALT_FILTER := sed '/^encryptionsalt:/d'
git-filters:
	@if git -C "$(CURDIR)" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
	  && [ "$$(git -C "$(CURDIR)" config --get filter.pulumi-dev-salt.clean)" != "$(SALT_FILTER)" ]; \
	  then git -C "$(CURDIR)" config filter.pulumi-dev-salt.clean "$(SALT_FILTER)"; fi

# After Pulumi has written that line, git lists the file as modified (its size changed) with an
# empty diff. When the salt is the file's only change, `git add` stores the same content again
# and records the file's new size: `git status` is clean. Any other edit is left for you to stage.
salt-refresh:
	@cd "$(PROJECT_DIR)" && git ls-files --error-unmatch Pulumi.$(STACK).yaml >/dev/null 2>&1 \
	  && git diff --quiet -- Pulumi.$(STACK).yaml && git add -- Pulumi.$(STACK).yaml 2>/dev/null || true

# The passphrase that encrypts the stack's secrets, generated once (mode 0600) where
# PULUMI_CONFIG_PASSPHRASE_FILE points (default .pulumi-state/passphrase).
$(PULUMI_CONFIG_PASSPHRASE_FILE):
	@[ -d "$(dir $@)" ] || { mkdir -p "$(dir $@)" && chmod 700 "$(dir $@)"; }
	@umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > "$@"

# The backup key file, generated once (mode 0600): 32 random bytes in URL-safe base64.
ifneq ($(BACKUP_KEY),)
$(BACKUP_KEY):
	@[ -d "$(dir $@)" ] || { mkdir -p "$(dir $@)" && chmod 700 "$(dir $@)"; }
	@umask 077 && $(PYTHON) -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' > "$@"
	@echo "Generated the backup key $@: keep a copy with the passphrase; backups cannot be restored without it"
endif

installed-pulumi:
	@true

# The pinned engine, and its plugins linked into PULUMI_HOME's plugin cache at exactly the
# versions the PyPI SDKs ask for (the engine matches versions there before it would download).
pinned-engine: setup
	@command -v go >/dev/null || { echo "No Pulumi CLI on PATH and no Go to build the pinned one: install either (README.md, 'The two commands')" >&2; exit 1; }
	@tests/e2e/engine/build.sh $(CURDIR)/.tools/bin
	@for plugin in docker random; do \
	  version=$$($(BIN)/python -c "from importlib.metadata import version; print(version('pulumi-$$plugin'))"); \
	  cache="$(PULUMI_HOME)/plugins/resource-$$plugin-v$$version"; \
	  if [ ! -x "$$cache/pulumi-resource-$$plugin" ]; then \
	    mkdir -p "$$cache" && ln -sfn "$(CURDIR)/.tools/plugins/pulumi-resource-$$plugin" "$$cache/pulumi-resource-$$plugin"; \
	    echo "engine: registered the $$plugin plugin v$$version in $(PULUMI_HOME)"; \
	  fi; \
	done

# The images a docker stack runs: present locally, pulled, or else built from Debian's packages
# and tagged with the configured names (infra/images/build.py); nothing for other platforms.
stack-images: setup
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "The Docker engine does not answer: install Docker (docker.io) and start it first" >&2; exit 1; }
	@$(BIN)/python -m infra.images.build --quiet --stack-file $(PROJECT_DIR)/Pulumi.$(STACK).yaml

# The stack, created on first use with the passphrase secrets provider.
stack-selected: setup $(PULUMI_CONFIG_PASSPHRASE_FILE) $(BACKUP_KEY) $(PULUMI_CLI)
	@case "$(PULUMI_BACKEND_URL)" in file://*) mkdir -p "$(patsubst file://%,%,$(PULUMI_BACKEND_URL))";; esac
	@$(PULUMI) stack select $(STACK) --create

up: stack-selected stack-images
	$(PULUMI) up --stack $(STACK) --yes $(PULUMI_ARGS)
	@$(MAKE) --no-print-directory env
	@$(MAKE) --no-print-directory salt-refresh

# Each service's env file (mode 0600) from the running stack's outputs.
env: setup $(PULUMI_CLI)
	@$(PULUMI) stack output service_env --stack $(STACK) --show-secrets --json \
	  | $(BIN)/python -m infra envfiles --out $(ENV_DIR)

preview: stack-selected
	$(PULUMI) preview --stack $(STACK) --diff $(PULUMI_ARGS)
	@$(MAKE) --no-print-directory salt-refresh

# Drift: what `pulumi preview` sees after refreshing from the real world; exit 1 on any change.
# Only the steps `pulumi up` would take are printed (infra/commands/drift.py), not the values the
# provider merely reports back differently after a refresh. The scheduled drift workflow runs
# this per stack, and the end-to-end suite runs it after the disaster.
drift: setup $(PULUMI_CONFIG_PASSPHRASE_FILE) $(BACKUP_KEY) $(PULUMI_CLI)
	@preview=$$(mktemp); trap 'rm -f "$$preview"' EXIT; \
	$(PULUMI) preview --stack $(STACK) --refresh --json $(PULUMI_ARGS) > "$$preview" \
	  || { cat "$$preview"; echo "drift: pulumi preview --refresh failed" >&2; exit 2; }; \
	$(BIN)/python -m infra drift-report < "$$preview"

# Plain `pulumi` commands from the checkout, with the same backend, passphrase and CLI as make:
#   eval "$$(make -s shellenv)"
# Prints only the exports: run `make up` (or `make engine`) first.
shellenv:
	@echo 'export PULUMI_BACKEND_URL="$(PULUMI_BACKEND_URL)"'
	@echo 'export PULUMI_CONFIG_PASSPHRASE_FILE="$(PULUMI_CONFIG_PASSPHRASE_FILE)"'
	@echo 'export PULUMI_SKIP_UPDATE_CHECK=true'
	@if [ -n "$(BACKUP_KEY)" ]; then echo 'export PERSISTENCE_BACKUP_KEY_FILE="$(PERSISTENCE_BACKUP_KEY_FILE)"'; fi
	@if [ "$(PULUMI_CLI)" = pinned-engine ]; then \
	  echo 'export PULUMI_HOME="$(PULUMI_HOME)"'; \
	  echo 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true'; \
	  echo 'export PATH="$(CURDIR)/$(BIN):$(CURDIR)/.tools/bin:$$PATH"'; \
	else \
	  echo 'export PATH="$(CURDIR)/$(BIN):$$PATH"'; \
	fi

# What the stack declares, from the stack file alone: the real program under Pulumi's mocks (no
# backend, no credentials, no secrets). Pull requests from forks get this instead of a preview.
plan: setup
	$(BIN)/python -m infra plan --stack $(STACK)

# Destroys the stack's resources; the data volumes are kept on purpose (retain_on_delete).
down: setup $(PULUMI_CONFIG_PASSPHRASE_FILE) $(BACKUP_KEY) $(PULUMI_CLI)
	$(PULUMI) destroy --stack $(STACK) --yes $(PULUMI_ARGS)
	@volumes=$$(docker volume ls -q --filter label=persistence.stack=persistence-$(STACK) 2>/dev/null); \
	if [ -n "$$volumes" ]; then \
	  echo "The data volumes are kept, so the next 'make up' finds the data again:"; \
	  echo "$$volumes" | sed 's/^/  /'; \
	  echo "To delete the data for good: docker volume rm" $$volumes; \
	fi

# After a disaster: refresh, pulumi up, restore every service from its newest verified backup.
rebuild: setup $(PULUMI_CONFIG_PASSPHRASE_FILE) $(BACKUP_KEY) $(PULUMI_CLI) stack-images
	$(BIN)/python -m infra rebuild --stack $(STACK) --project-dir $(PROJECT_DIR)

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

# The prod broker's management API for the deploy (rabbitmq-live-config applies the services'
# vhosts, users and queues through it, so no VM restarts): an IAP tunnel from
# 127.0.0.1:$(BROKER_PORT) (gcp.rabbitmq_management_port) to port 15672 of a broker VM. A
# cluster's nodes (the rabbitmq_nodes output) are tried in order and the first that answers
# serves: any live node's management API speaks for the whole cluster, so the deploy and the
# definitions backup go on with a node down. Before the first deploy there is no VM yet: then
# it says so and starts nothing.
BROKER_PORT ?= 15673
broker-tunnel-start:
	@mkdir -p .tools; \
	nodes=$$(pulumi stack output rabbitmq_nodes --json --stack $(STACK) 2>/dev/null | \
	  $(BIN)/python -c 'import json, sys; [print(n["instance"], n["zone"]) for n in json.load(sys.stdin)]' 2>/dev/null) || nodes=""; \
	if [ -z "$$nodes" ]; then \
	  vm=$$(pulumi stack output rabbitmq_instance --stack $(STACK) 2>/dev/null) || vm=""; \
	  zone=$$(pulumi stack output rabbitmq_zone --stack $(STACK) 2>/dev/null) || zone=""; \
	  [ -n "$$vm" ] && nodes="$$vm $$zone"; \
	fi; \
	if [ -z "$$nodes" ]; then echo "no RabbitMQ VM in $(STACK) yet: tunnel not started"; exit 0; fi; \
	echo "$$nodes" | while read -r vm zone; do \
	  gcloud compute start-iap-tunnel "$$vm" 15672 --local-host-port=127.0.0.1:$(BROKER_PORT) \
	    --zone "$$zone" > .tools/broker-tunnel.log 2>&1 & echo $$! > .tools/broker-tunnel.pid; \
	  for _ in $$(seq 30); do \
	    (exec 3<>/dev/tcp/127.0.0.1/$(BROKER_PORT)) 2>/dev/null && { echo "broker tunnel to $$vm listening on 127.0.0.1:$(BROKER_PORT)"; exit 0; }; \
	    kill -0 "$$(cat .tools/broker-tunnel.pid)" 2>/dev/null || break; \
	    sleep 1; \
	  done; \
	  kill "$$(cat .tools/broker-tunnel.pid)" 2>/dev/null || true; rm -f .tools/broker-tunnel.pid; \
	  echo "no tunnel to $$vm, trying the next node" >&2; \
	done && [ -f .tools/broker-tunnel.pid ] && exit 0; \
	echo "the IAP tunnel to the broker did not start:" >&2; cat .tools/broker-tunnel.log >&2; exit 1

# Per service: client and server connections at the dev pooler, clients waiting, longest wait.
pools: setup $(PULUMI_CLI)
	@POOLER_CONSOLE_URL="$$($(PULUMI) stack output pooler_console_url --show-secrets --stack $(STACK))" && \
	export POOLER_CONSOLE_URL && \
	$(BIN)/python -m infra db pools --stack $(PROJECT_DIR)/Pulumi.$(STACK).yaml

# Dev failover: promote the most advanced replica, fence the old primary, re-point the router
# and the pooler, record postgres.primary in the stack file (python -m infra db promote).
# Then `make up` seeds a new replica from the new primary. FORCE=1: a planned switchover.
failover: setup $(PULUMI_CONFIG_PASSPHRASE_FILE) $(PULUMI_CLI)
	$(BIN)/python -m infra db promote --stack $(PROJECT_DIR)/Pulumi.$(STACK).yaml $(if $(FORCE),--force,)

# Each read replica's replay lag (bytes, seconds); exit 1 when one is missing or past the limit.
lag: setup $(PULUMI_CLI)
	@PERSISTENCE_ADMIN_URL="$$($(PULUMI) stack output postgres_admin_url --show-secrets --stack $(STACK))" && \
	export PERSISTENCE_ADMIN_URL && \
	$(BIN)/python -m infra db lag --stack $(PROJECT_DIR)/Pulumi.$(STACK).yaml

# A prod cluster's rolling restart (upgrades, config changes): one node at a time, waiting for
# every quorum queue to be back at full membership in between (python -m infra broker
# rolling-restart; README, RabbitMQ in prod).
broker-rolling-restart: setup
	@RABBITMQ_ADMIN_PASSWORD="$$(pulumi stack output rabbitmq_admin_password --show-secrets --stack $(STACK))" && \
	export RABBITMQ_ADMIN_PASSWORD && \
	pulumi stack output rabbitmq_nodes --json --stack $(STACK) | \
	  $(BIN)/python -m infra broker rolling-restart --stack $(STACK)

broker-tunnel-stop:
	@if [ -f .tools/broker-tunnel.pid ]; then kill "$$(cat .tools/broker-tunnel.pid)" 2>/dev/null || true; rm -f .tools/broker-tunnel.pid; fi

unit: setup
	$(BIN)/pytest tests/unit

# The pinned Pulumi engine (CLI, Python language host, docker and random plugins), built from Go
# modules into .tools/bin; cached, rebuilt only when tests/e2e/engine/ changes. Users install
# Pulumi the normal way; this is how the tests, and anyone offline, get a pinned engine.
engine:
	tests/e2e/engine/build.sh $(CURDIR)/.tools/bin

# The stand-in server images, built from Debian's packages on a debootstrap base (nothing is
# pulled); `make up` builds the ones a stack needs by itself when they cannot be pulled.
images: setup
	$(BIN)/python -m infra.images.build

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

# PerfTest, RabbitMQ's own load generator (com.rabbitmq:perf-test, pinned in
# benchmarks/perftest/pom.xml), the reference client of bench_broker: Maven copies its jar and
# runtime dependencies from Maven Central into .tools/perf-test/ (git-ignored), the classpath the
# benchmark runs it from. Once; again when the pom changes. Needs Java 11+ and Maven.
PERF_TEST_DIR := .tools/perf-test
perf-test: $(PERF_TEST_DIR)/.installed
$(PERF_TEST_DIR)/.installed: benchmarks/perftest/pom.xml
	@command -v java >/dev/null && command -v mvn >/dev/null || { echo "PerfTest needs Java and Maven: apt-get install -y openjdk-17-jre-headless maven" >&2; exit 1; }
	rm -rf $(PERF_TEST_DIR) && mkdir -p $(PERF_TEST_DIR)
	mvn -q -B -Dstyle.color=never -f benchmarks/perftest/pom.xml dependency:copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(PERF_TEST_DIR)
	@touch $@

bench: setup engine perf-test
	$(BIN)/python -m benchmarks.bench_converge
	$(BIN)/python -m benchmarks.bench_backup
	$(BIN)/python -m benchmarks.bench_rebuild
	$(BIN)/python -m benchmarks.bench_program
	$(BIN)/python -m benchmarks.bench_broker
	$(BIN)/python -m benchmarks.bench_pooler
	$(BIN)/python -m benchmarks.bench_replicas

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
