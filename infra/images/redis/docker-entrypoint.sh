#!/bin/bash
# Entrypoint of persistence-e2e/redis:7. The contract it honours is in ../README.md; it is the part
# of the official redis image's entrypoint that the dev stack relies on.
set -Eeuo pipefail

# `docker run image /path/redis.conf` or `docker run image --port 1234` means redis-server, as in
# the official image.
if [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	# A new volume or bind mount may be root-owned: the server (uid 999) must write its AOF and
	# RDB files in the working directory (the data directory).
	find . \! -user redis -exec chown redis:redis '{}' +
	# setpriv (util-linux, always present) execs in place: the server becomes PID 1 and
	# receives `docker stop`'s signal itself.
	exec setpriv --reuid=redis --regid=redis --init-groups -- "$0" "$@"
fi

if [ "$1" = redis-server ]; then
	# Files the server creates (AOF, RDB, rewritten ACL file) are private to it.
	umask 0077
fi
exec "$@"
