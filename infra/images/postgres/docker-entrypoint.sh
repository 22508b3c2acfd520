#!/bin/bash
# Entrypoint of persistence-e2e/postgres:15. The contract it honours is in ../README.md; it is the
# part of the official postgres image's entrypoint that the dev stack relies on.
set -Eeuo pipefail
shopt -s nullglob

SOCKET_DIR=/var/run/postgresql
SUPERUSER=postgres
# Present only between initdb and the end of the init scripts (see initialise).
INIT_MARKER_NAME=docker-init.incomplete

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# VAR or VAR_FILE (never both), like the official image's file_env. The file's trailing
# newlines are dropped, as there.
file_env() {
	local var="$1" file_var="${1}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		die "both $var and $file_var are set: use one"
	fi
	local value="${!var:-}"
	if [ -n "${!file_var:-}" ]; then
		[ -r "${!file_var}" ] || die "$file_var=${!file_var} is not readable by uid $(id -u)"
		value="$(<"${!file_var}")"
	fi
	export "$var"="$value"
	unset "$file_var"
}

# Options the official image has and this one does not: refuse them rather than ignore them.
refuse_unsupported() {
	if [ -n "${POSTGRES_USER:-}" ] && [ "$POSTGRES_USER" != "$SUPERUSER" ]; then
		die "POSTGRES_USER=$POSTGRES_USER is not supported: the superuser is always $SUPERUSER"
	fi
	if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
		die "POSTGRES_DB=$POSTGRES_DB is not supported: create databases in an init script"
	fi
}

run_init_scripts() {
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			log "running $f"
			psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc -f "$f"
			;;
		*.sql.gz)
			log "running $f"
			gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc
			;;
		*) log "ignoring $f" ;;
		esac
	done
}

# initdb, then the init scripts through a temporary server, then stop it. Runs as postgres.
initialise() {
	file_env POSTGRES_PASSWORD
	refuse_unsupported
	if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
		die "the database is uninitialised and no superuser password is set:" \
			"set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
	fi

	log "initialising $PGDATA"
	# POSTGRES_INITDB_ARGS is a list of words, as in the official image.
	# shellcheck disable=SC2086
	if [ -n "$POSTGRES_PASSWORD" ]; then
		# A process substitution: the password is in no file and no argv.
		initdb --username="$SUPERUSER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
			${POSTGRES_INITDB_ARGS:-}
	else
		initdb --username="$SUPERUSER" ${POSTGRES_INITDB_ARGS:-}
	fi
	# From here until the init scripts are done, a restart must start over (see main).
	touch "$PGDATA/$INIT_MARKER_NAME"

	# What the official image changes in the generated files, for runs without config_file=.
	sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$PGDATA/postgresql.conf"
	printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
		>>"$PGDATA/pg_hba.conf"

	# The temporary server takes the same options as the real one (so config_file= and its
	# hba_file apply), then: no TCP address at all, and a private socket directory instead of
	# /var/run/postgresql. Neither a TCP client nor the health check (pg_isready on
	# /var/run/postgresql) can reach the server before the init scripts are done.
	local init_socket_dir server_options=""
	init_socket_dir="$(mktemp -d /tmp/postgres-init.XXXXXX)"
	if [ $# -gt 1 ]; then
		# pg_ctl hands -o to a shell: quote every word.
		server_options="$(printf '%q ' "${@:2}")"
	fi
	pg_ctl -D "$PGDATA" -w -t 300 start -o "$server_options \
		-c listen_addresses='' -c unix_socket_directories='$init_socket_dir' -p 5432"

	PGHOST="$init_socket_dir" PGPORT=5432 PGUSER="$SUPERUSER" PGDATABASE=postgres \
		PGPASSWORD="$POSTGRES_PASSWORD" run_init_scripts

	pg_ctl -D "$PGDATA" -m fast -w -t 300 stop
	rm -rf "$init_socket_dir"
	rm -f "$PGDATA/$INIT_MARKER_NAME"
	# The removal must be durable before the real server accepts anyone (see main).
	sync "$PGDATA"
	unset POSTGRES_PASSWORD
	log "initialisation done"
}

main() {
	# `docker run image -c x=y` means `postgres -c x=y`, as in the official image.
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi
	if [ "$1" != postgres ]; then
		exec "$@"
	fi
	: "${PGDATA:?PGDATA must be set}"

	if [ "$(id -u)" = 0 ]; then
		# A new volume or bind mount may be root-owned; the server must own PGDATA, mode 0700.
		mkdir -p "$PGDATA" "$SOCKET_DIR"
		find "$PGDATA" \! -user "$SUPERUSER" -exec chown "$SUPERUSER:$SUPERUSER" '{}' +
		chmod 0700 "$PGDATA"
		chown "$SUPERUSER:$SUPERUSER" "$SOCKET_DIR"
		chmod 2775 "$SOCKET_DIR"
		# setpriv (util-linux, always present) execs in place: the server becomes PID 1 and
		# receives `docker stop`'s signal itself.
		exec setpriv --reuid="$SUPERUSER" --regid="$SUPERUSER" --init-groups -- "$0" "$@"
	fi

	if [ -e "$PGDATA/$INIT_MARKER_NAME" ]; then
		# The marker exists only while the temporary server runs, and that server accepts no
		# client other than the init scripts: the data is only initdb's plus a partial run of
		# the scripts, and nobody has used it. Starting over is the only way to run them once.
		log "the previous initialisation of $PGDATA was interrupted: starting it again"
		find "$PGDATA" -mindepth 1 -delete
	fi
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		initialise "$@"
	else
		log "$PGDATA holds a database cluster: skipping initialisation"
	fi
	exec "$@"
}

main "$@"
