#!/bin/bash
# Entrypoint of persistence-e2e/rabbitmq:3. The contract it honours is in ../README.md; it is the
# part of the official rabbitmq image's entrypoint that the dev stack relies on.
set -Eeuo pipefail

DATA_DIR=/var/lib/rabbitmq

if [ "$1" = rabbitmq-server ] && [ "$(id -u)" = 0 ]; then
	# A new volume or bind mount may be root-owned: the node (uid 999) writes its database there.
	mkdir -p "$DATA_DIR"
	find "$DATA_DIR" \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
	# setpriv (util-linux, always present) execs in place: the node, not a parent shell,
	# receives `docker stop`'s signal.
	exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- "$0" "$@"
fi

if [ "$1" = rabbitmq-server ]; then
	cookie="$HOME/.erlang.cookie"
	if [ ! -e "$cookie" ]; then
		# Made here, before the node starts, because a CLI run (the health check, as root) that
		# finds no cookie writes one itself: owned by root, which the node could then not read.
		# Mode 0400: Erlang refuses a cookie file others can read.
		(
			umask 0277
			head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \n' >"$cookie"
		)
	fi
fi
exec "$@"
