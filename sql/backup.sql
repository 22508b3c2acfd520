-- What the backup tooling runs (infra/backup/pg.py, restore.py, dump.py): catalog snapshots,
-- scratch databases and renames (locks: sql/tooling.sql). Values are bound as %(name)s parameters; {name} slots
-- are filled with psycopg.sql.Identifier or Literal only. Every session that runs these pins
-- search_path to pg_catalog, pg_temp (infra/postgres/driver.py), so no name here can be
-- shadowed by an object a service planted.

-- name: tables
-- Every table and materialized view of the service's own schemas, for exact row counts.
SELECT n.nspname, c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT starts_with(n.nspname, 'pg_')
ORDER BY 1, 2

-- name: count_rows
SELECT count(*) FROM {table}

-- name: sequences
SELECT schemaname, sequencename
FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2

-- name: sequence_position
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}

-- name: large_objects
SELECT count(*) FROM pg_largeobject_metadata

-- name: server_version
SHOW server_version

-- name: set_role
SET ROLE {role}

-- name: snapshot
-- The dump's transaction: pg_dump --snapshot reads exactly what the row counts saw.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: export_snapshot
SELECT pg_export_snapshot()

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(database)s

-- name: database_names
SELECT datname FROM pg_database WHERE starts_with(datname, %(prefix)s) ORDER BY 1

-- name: restore_databases
-- The live database, the restore's copy and the copies renamed aside (recover()).
SELECT datname, datallowconn
FROM pg_database
WHERE datname = %(database)s OR datname = %(incoming)s OR starts_with(datname, %(old)s)

-- name: service_databases
-- Every database named after a service: its own and the ones derived from its name
-- (``<db>__...``: "__" cannot occur in a service name), with whether it accepts connections and
-- its owner; and the tooling database's row, if it exists (infra.backup.leftovers).
SELECT d.datname, d.datallowconn, pg_get_userbyid(d.datdba)
FROM pg_database d
WHERE d.datname = ANY(%(databases)s)
   OR split_part(d.datname, '__', 1) = ANY(%(databases)s)
   OR d.datname = %(tooling)s

-- name: holds_data
-- Any table, view, sequence, foreign table or large object of its own (extension members
-- aside): read from the catalog only, so the admin needs no privilege on them.
SELECT EXISTS (
         SELECT 1
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND NOT starts_with(n.nspname, 'pg_')
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.deptype = 'e'))
       OR EXISTS (SELECT 1 FROM pg_largeobject_metadata)

-- name: can_end_sessions
SELECT current_user, rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')
FROM pg_roles
WHERE rolname = current_user

-- name: drop_database
DROP DATABASE IF EXISTS {database} WITH (FORCE)

-- name: not_template
-- A template cannot be dropped; the service's owner role may have made it one.
ALTER DATABASE {database} WITH IS_TEMPLATE false

-- name: create_database
-- Created closed; opened only once PUBLIC's rights are revoked.
CREATE DATABASE {database} ALLOW_CONNECTIONS false

-- name: create_owned_database
CREATE DATABASE {database} OWNER {owner} ALLOW_CONNECTIONS false

-- name: revoke_public
REVOKE ALL ON DATABASE {database} FROM PUBLIC

-- name: allow_connections
ALTER DATABASE {database} WITH ALLOW_CONNECTIONS {allowed}

-- name: end_sessions
-- Only client sessions of non-superuser roles (a non-superuser admin may not signal others),
-- waiting up to 5 s for each to exit.
SELECT pg_terminate_backend(a.pid, 5000)
FROM pg_stat_activity a
JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.datname = %(database)s
  AND a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend'
  AND NOT r.rolsuper

-- name: rename_database
ALTER DATABASE {old} RENAME TO {new}
