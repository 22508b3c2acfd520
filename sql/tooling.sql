-- The tool's own database (infra/postgres/registry.py): the registry of the databases this tool
-- created, bound to their OIDs, and its advisory locks. Owned by the admin, CONNECT revoked from
-- PUBLIC, so no service login can connect to it, write the registry or take one of the locks.
-- Values are bound as %(name)s parameters; {name} slots take psycopg.sql.Identifier only.

-- name: tooling_database
-- Its owner, whether anyone but the owner may connect (PUBLIC or another grantee), and whether
-- it is open (a creator killed between creating it closed and opening it leaves it closed).
SELECT pg_get_userbyid(d.datdba),
       EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
               WHERE a.privilege_type = 'CONNECT' AND a.grantee <> d.datdba),
       d.datallowconn
FROM pg_database d
WHERE d.datname = %(database)s

-- name: create_tooling_database
-- Created closed: opened only once PUBLIC's CONNECT and TEMP are revoked.
CREATE DATABASE {database} ALLOW_CONNECTIONS false

-- name: revoke_all
REVOKE ALL ON DATABASE {database} FROM PUBLIC

-- name: open_database
ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true

-- name: create_registry
-- One row per database this tool created (or adopted): its OID, so a database dropped and made
-- again by someone else under the same name is not ours; a rename keeps it ours.
CREATE TABLE IF NOT EXISTS public.databases (
    oid oid PRIMARY KEY,
    service text NOT NULL,
    purpose text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
)

-- name: forget_dropped
-- Rows of databases that no longer exist: their OIDs may be reused by someone else's database.
DELETE FROM public.databases r
WHERE NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.oid = r.oid)

-- name: registered
-- The databases registered for the given services or under the given names, by current name.
SELECT d.datname, r.service, r.purpose
FROM public.databases r
JOIN pg_database d ON d.oid = r.oid
WHERE r.service = ANY(%(services)s) OR d.datname = ANY(%(databases)s)

-- name: register
-- Registers the database now under that name; never moves a row to another service.
INSERT INTO public.databases (oid, service, purpose)
SELECT d.oid, %(service)s, %(purpose)s FROM pg_database d WHERE d.datname = %(database)s
ON CONFLICT (oid) DO UPDATE SET purpose = EXCLUDED.purpose
WHERE databases.service = EXCLUDED.service

-- name: database_owner
SELECT pg_get_userbyid(d.datdba), d.datistemplate FROM pg_database d WHERE d.datname = %(database)s

-- name: lock
-- pg_advisory_lock(class, key): the class keeps our locks apart from anyone else's.
SELECT pg_advisory_lock(%(class)s, hashtext(%(key)s))::text

-- name: try_lock
SELECT pg_try_advisory_lock(%(class)s, hashtext(%(key)s))::text

-- name: unlock
SELECT pg_advisory_unlock(%(class)s, hashtext(%(key)s))::text
