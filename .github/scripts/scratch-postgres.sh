#!/usr/bin/env bash
# An empty, throw-away PostgreSQL 15 for the DR drill, on a loopback port of the runner, with
# the non-superuser admin the tooling always runs as (LOGIN CREATEROLE CREATEDB, as on Cloud
# SQL). Exports PERSISTENCE_ADMIN_URL (with the password: the backup commands take a missing one
# from the secrets file, not PGPASSWORD) and PGPASSWORD through $GITHUB_ENV; the password is
# masked in the log and never on a command line.
# Usage: scratch-postgres.sh ADMIN_USER   (PERSISTENCE_PG_BIN: default /usr/lib/postgresql/15/bin)
set -euo pipefail
admin=${1:?usage: scratch-postgres.sh ADMIN_USER}
bin=${PERSISTENCE_PG_BIN:-/usr/lib/postgresql/15/bin}
root=${RUNNER_TEMP:?RUNNER_TEMP is not set}/scratch-postgres
port=${SCRATCH_POSTGRES_PORT:-55432}
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
echo "::add-mask::$password"

rm -rf "$root" && mkdir -p "$root" && chmod 700 "$root"
"$bin/initdb" --pgdata "$root/data" --username postgres --auth-local trust \
  --auth-host scram-sha-256 --encoding UTF8 --no-instructions >/dev/null
"$bin/pg_ctl" --pgdata "$root/data" --log "$root/server.log" --wait \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root" start
# The password reaches psql through its environment (\getenv), never argv or the server log.
SCRATCH_PASSWORD=$password "$bin/psql" --host "$root" --port "$port" --username postgres \
  --dbname postgres --quiet --set ON_ERROR_STOP=1 --set admin="$admin" --file - <<'SQL'
\getenv password SCRATCH_PASSWORD
SET log_statement = none;
CREATE ROLE :"admin" LOGIN CREATEROLE CREATEDB PASSWORD :'password';
SQL
{
  echo "PERSISTENCE_ADMIN_URL=postgresql://$admin:$password@127.0.0.1:$port/postgres"
  echo "PGPASSWORD=$password"
} >> "${GITHUB_ENV:?GITHUB_ENV is not set}"
echo "scratch PostgreSQL on 127.0.0.1:$port, admin $admin"
