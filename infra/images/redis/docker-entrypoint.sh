#!/bin/bash
# Entrypoint of persistence-e2e/valkey:8.0. The contract it honours is in ../README.md; it is the
# part of the official valkey/valkey image's entrypoint that the dev stack relies on.
set -Eeuo pipefail

# `docker run image /path/redis.conf` or `docker run image --port 1234` means valkey-server, as
# in the official image.
if [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
	set -- valkey-server "$@"
fi

if [ "$1" = valkey-server ] && [ "$(id -u)" = 0 ]; then
	# A new volume or bind mount may be root-owned, and one written by an earlier server image
	# is kept as it is: the server (uid 999) must write its AOF and RDB files in the working
	# directory (the data directory).
	find . \! -user valkey -exec chown valkey:valkey '{}' +
	# setpriv (util-linux, always present) execs in place: the server becomes PID 1 and
	# receives `docker stop`'s signal itself.
	exec setpriv --reuid=valkey --regid=valkey --init-groups -- "$0" "$@"
fi

if [ "$1" = valkey-server ]; then
	# Files the server creates (AOF, RDB, rewritten ACL file) are private to it.
	umask 0077
fi
exec "$@"
