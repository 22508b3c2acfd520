-- The statements the per-service role model and its hardening are built from.
--
-- Each block is a template for psycopg.sql: {placeholders} are filled only with
-- sql.Identifier (names) or sql.Literal (values) by infra/postgres/statements.py; nothing is
-- ever formatted into these strings as text. Lines starting with "--" are dropped when loading.
--
-- Every statement here works for a NON-superuser admin with CREATEROLE and CREATEDB (Cloud SQL's
-- admin, and platform_admin in dev): PostgreSQL 15 lets such an admin create, alter and grant
-- membership in any non-superuser role, but not change SUPERUSER, REPLICATION or BYPASSRLS (not
-- even to switch them off), so those keywords appear only in CREATE ROLE.

-- name: create_role
-- A service role, created with every forbidden attribute explicitly off. {login} is LOGIN or
-- NOLOGIN; {password} is a SCRAM-SHA-256 verifier (or NULL for the NOLOGIN owner).
CREATE ROLE {role} {login} NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT {limit} PASSWORD {password}

-- name: alter_role_attributes
-- Drift repair: {attributes} is a list of keywords such as NOCREATEDB or CONNECTION LIMIT 5.
ALTER ROLE {role} WITH {attributes}

-- name: set_password
-- Only ever a client-side SCRAM-SHA-256 verifier: the plaintext never reaches the server or its log.
ALTER ROLE {role} PASSWORD {password}

-- name: comment_role
-- Marks the role as ours and records the password version applied, so a re-apply changes nothing.
COMMENT ON ROLE {role} IS {comment}

-- name: set_role_setting
ALTER ROLE {role} SET {setting} = {value}

-- name: reset_role_setting
ALTER ROLE {role} RESET {setting}

-- name: set_role_setting_in_database
-- The migrator becomes the owner role in its database, so what it creates is owned by the owner.
ALTER ROLE {role} IN DATABASE {database} SET {setting} = {value}

-- name: grant_membership
GRANT {group} TO {member}

-- name: revoke_membership
REVOKE {group} FROM {member}

-- name: create_database
-- Cannot run inside a transaction block; the admin must be a member of the owner role first.
-- Created closed: nobody connects until PUBLIC's default CONNECT and TEMP are revoked and the
-- marker is on it (see database_cluster_statements in infra/postgres/converge.py).
CREATE DATABASE {database} OWNER {owner} ALLOW_CONNECTIONS false

-- name: register_database
-- Marks the database as ours, by OID, in the tooling database's registry (run there; see
-- infra/postgres/registry.py): apply, restore and drop touch only databases registered there.
-- A comment would not do: the service's owner role may rewrite its database's comment.
INSERT INTO public.databases (oid, service, purpose)
SELECT d.oid, {service}, {purpose} FROM pg_catalog.pg_database d WHERE d.datname = {database}
ON CONFLICT (oid) DO UPDATE SET purpose = EXCLUDED.purpose
WHERE databases.service = EXCLUDED.service

-- name: database_is_template
-- A template (IS_TEMPLATE, which the owner may set) cannot be dropped: drift, set back.
ALTER DATABASE {database} WITH IS_TEMPLATE {template}

-- name: allow_connections
ALTER DATABASE {database} WITH ALLOW_CONNECTIONS {allowed}

-- name: database_connection_limit
ALTER DATABASE {database} WITH CONNECTION LIMIT {limit}

-- name: reset_database_settings
-- Database-level settings (ALTER DATABASE ... SET) are not part of the role model.
ALTER DATABASE {database} RESET ALL

-- name: reset_role_setting_in_database
ALTER ROLE {role} IN DATABASE {database} RESET {setting}

-- name: alter_database_owner
ALTER DATABASE {database} OWNER TO {owner}

-- name: revoke_database
-- PUBLIC gets CONNECT and TEMPORARY by default; nobody but the service's own roles may connect.
REVOKE {privileges} ON DATABASE {database} FROM {grantee}

-- name: grant_database
GRANT {privileges} ON DATABASE {database} TO {grantee}

-- name: create_extension
-- Run by the admin connection; pgcrypto and uuid-ossp are trusted extensions since PostgreSQL 13.
-- The schema is explicit: the admin's search_path holds only pg_catalog (see driver.py).
CREATE EXTENSION {extension} WITH SCHEMA public

-- name: grant_schema
GRANT {privileges} ON SCHEMA {schema} TO {grantee}

-- name: revoke_schema
REVOKE {privileges} ON SCHEMA {schema} FROM {grantee}

-- name: grant_default
-- Objects the owner role creates later (through the migrator) are usable with no extra step.
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT {privileges} ON {objects} TO {grantee}

-- name: revoke_default
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE {privileges} ON {objects} FROM {grantee}

-- name: grant_relation
GRANT {privileges} ON {kind} {relation} TO {grantee}

-- name: revoke_relation
REVOKE {privileges} ON {kind} {relation} FROM {grantee}

-- name: grant_routines
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA {schema} TO {grantee}

-- name: drop_database
-- Only from `python -m infra db drop --service S --confirm S`: never part of apply.
DROP DATABASE IF EXISTS {database} WITH (FORCE)

-- name: drop_role
DROP ROLE IF EXISTS {role}

-- name: create_tool_login
-- The backup tooling's short-lived login for one service: no attribute beyond LOGIN, expiring on
-- its own even if the run that created it is killed before it drops it.
CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT {limit} PASSWORD {password} VALID UNTIL {until}

-- name: reassign_owned
-- Everything a service login owns in this database goes to the owner role (the admin is made a
-- member of the login for this one statement, in the same transaction).
REASSIGN OWNED BY {role} TO {owner}
