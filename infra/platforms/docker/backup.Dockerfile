# The dev stack's backup container: pg_dump/pg_restore 15, redis-cli, and this repository's CLI
# running `python -m infra backup-loop` (backup, verify, prune on backup.schedule).
# Built from the repository root (backup.Dockerfile.dockerignore keeps the context small):
#   docker build -f infra/platforms/docker/backup.Dockerfile .
ARG BASE_IMAGE=postgres:15.10-bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv redis-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# requirements.txt installs the project itself (-e .), so the sources come first.
COPY pyproject.toml requirements.txt Pulumi.yaml Pulumi.*.yaml ./
COPY infra ./infra
COPY sql ./sql
COPY templates ./templates
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.txt
# The named volume mounted here inherits this ownership on first use.
RUN mkdir -p /backups && chown 999:999 /backups && chmod 0700 /backups
ENV PERSISTENCE_PG_BIN=/usr/lib/postgresql/15/bin PYTHONUNBUFFERED=1
USER 999
ENTRYPOINT ["/venv/bin/python", "-m", "infra"]
