# The dev backup container: pg_dump/pg_restore 15, valkey-cli and valkey-check-rdb (Valkey 8.0,
# the server's own tools: they read its RDB version 11), and this repository's CLI running
# `python -m infra backup-loop` (backup, verify, prune on backup.schedule).
# Built from the repository root (.dockerignore keeps the context to what the CLI needs):
#   docker build -f infra/platforms/docker/backup.Dockerfile .
ARG BASE_IMAGE=postgres:15.10-bookworm
FROM ${BASE_IMAGE}
# valkey-tools from <suite>-backports, on the Debian mirror the base image's apt already uses (a
# one-line sources.list in the images built here from the machine's mirror, deb822
# debian.sources in the official one), never a fixed address.
RUN set -eux; \
    . /etc/os-release; \
    mirror="$(sed -n "s|^deb \([^ ]*\) ${VERSION_CODENAME} main\$|\1|p" /etc/apt/sources.list \
      2>/dev/null | head -n1)"; \
    [ -n "$mirror" ] || mirror="$(sed -n 's|^URIs: *\([^ ]*/debian\)/\?$|\1|p' \
      /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)"; \
    test -n "$mirror"; \
    echo "deb ${mirror} ${VERSION_CODENAME}-backports main" > /etc/apt/sources.list.d/backports.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3 python3-venv; \
    apt-get install -y --no-install-recommends -t "${VERSION_CODENAME}-backports" valkey-tools; \
    rm -rf /var/lib/apt/lists/*; \
    valkey-cli --version | grep -q '^valkey-cli 8\.0\.'
WORKDIR /app
# Dependencies first, in their own layer: a change to the sources does not reinstall them.
COPY requirements.txt ./
RUN python3 -m venv /venv \
 && grep -v '^-e ' requirements.txt > /tmp/dependencies.txt \
 && /venv/bin/pip install --no-cache-dir -r /tmp/dependencies.txt
COPY pyproject.toml ./
COPY infra ./infra
COPY sql ./sql
COPY templates ./templates
# The bytecode too: the container's user may not write it into /app, so every process the image
# starts (the backup loop, the router a failover re-points) would compile its modules first.
RUN /venv/bin/pip install --no-cache-dir --no-deps -e . \
 && /venv/bin/python -m compileall -q /app/infra
# The container runs as the user who runs `pulumi up` (see backup.py), so the host folder
# mounted at /backups stays theirs. Docker resolves that uid in this image's passwd (for the
# primary group and for uploads owned by it), so the image gets an entry for it.
ARG UID=999
ARG GID=999
RUN getent group "${GID}" >/dev/null || groupadd --gid "${GID}" persistence \
 && getent passwd "${UID}" >/dev/null \
    || useradd --uid "${UID}" --gid "${GID}" --no-create-home --home-dir /app persistence
ENV PERSISTENCE_PG_BIN=/usr/lib/postgresql/15/bin PYTHONUNBUFFERED=1
USER ${UID}
ENTRYPOINT ["/venv/bin/python", "-m", "infra"]
