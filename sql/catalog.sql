-- Catalog queries the convergence engine reads the current state with (infra/postgres/catalog.py).
-- Values are bound as %(name)s parameters; every query is readable by a non-superuser admin.
-- Privileges come back as 'grantee:PRIVILEGE' text, grantee 'PUBLIC' for the public pseudo-role.

-- name: roles
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       coalesce(shobj_description(r.oid, 'pg_authid'), '') AS comment
FROM pg_roles r
WHERE r.rolname = ANY(%(names)s)

-- name: managed_owner_roles
-- Roles we created, to list services that are on the server but no longer in the config.
SELECT r.rolname
FROM pg_roles r
WHERE shobj_description(r.oid, 'pg_authid') LIKE 'managed-by=persistence%%'
  AND r.rolname LIKE '%%\_owner'
ORDER BY r.rolname

-- name: memberships
-- Every group our roles belong to, and every member of our roles (the admin, strangers).
SELECT m.rolname AS member, g.rolname AS grp
FROM pg_auth_members a
JOIN pg_roles g ON g.oid = a.roleid
JOIN pg_roles m ON m.oid = a.member
WHERE m.rolname = ANY(%(names)s) OR g.rolname = ANY(%(names)s)

-- name: role_settings
SELECT r.rolname, coalesce(d.datname, '') AS datname, s.setconfig
FROM pg_db_role_setting s
JOIN pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_database d ON d.oid = s.setdatabase
WHERE r.rolname = ANY(%(names)s)

-- name: databases
SELECT d.datname, pg_get_userbyid(d.datdba) AS owner,
       ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                    || ':' || a.privilege_type
             FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a) AS grants,
       coalesce(shobj_description(d.oid, 'pg_database'), '') AS comment,
       d.datallowconn, d.datconnlimit,
       coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                 WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}') AS settings
FROM pg_database d
WHERE d.datname = ANY(%(names)s)

-- name: extensions
SELECT extname FROM pg_extension

-- name: schemas
-- Schemas the service's owner role can grant on (its own, and public via pg_database_owner).
SELECT n.nspname,
       ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                    || ':' || a.privilege_type
             FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a) AS grants
FROM pg_namespace n
WHERE n.nspname NOT LIKE 'pg\_%%' AND n.nspname <> 'information_schema'
  AND pg_get_userbyid(n.nspowner) IN (%(owner)s, 'pg_database_owner')
ORDER BY n.nspname

-- name: default_privileges
-- Global (not per-schema) default privileges of the owner role, per object type.
SELECT d.defaclobjtype,
       ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                    || ':' || a.privilege_type
             FROM aclexplode(d.defaclacl) a) AS grants
FROM pg_default_acl d
WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %(owner)s) AND d.defaclnamespace = 0

-- name: relations
-- Tables, views and sequences the owner role owns (not members of an extension).
SELECT n.nspname, c.relname, c.relkind,
       ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                    || ':' || a.privilege_type
             FROM aclexplode(coalesce(c.relacl, acldefault(
                 CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a) AS grants
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY n.nspname, c.relname

-- name: routine_schemas_missing_execute
-- Schemas holding a routine of the owner's that the app role cannot execute.
SELECT DISTINCT n.nspname
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND NOT has_function_privilege(%(app)s, p.oid, 'EXECUTE')
ORDER BY n.nspname

-- name: owned_by_logins
-- The service's logins that own something in this database (a table the migrator made after
-- RESET ROLE, a large object the app made): the owner role must own everything.
SELECT r.rolname
FROM pg_shdepend d
JOIN pg_roles r ON r.oid = d.refobjid
WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND d.deptype = 'o' AND d.refclassid = 'pg_authid'::regclass AND r.rolname = ANY(%(names)s)
GROUP BY r.rolname
ORDER BY r.rolname
