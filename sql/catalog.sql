-- Catalog queries the convergence engine reads the current state with (infra/postgres/catalog.py).
-- Values are bound as %(name)s parameters; every query is readable by a non-superuser admin.
-- Privileges come back as 'grantee:PRIVILEGE' text, grantee 'PUBLIC' for the public pseudo-role.
-- Each read is one round trip: the cluster once per run, each service's database once.

-- name: cluster
-- Roles, memberships (our roles as members and as groups), role settings and databases for the
-- given names, as one JSON document.
SELECT json_build_object(
  'roles', (SELECT coalesce(json_agg(json_build_array(
                r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                coalesce(shobj_description(r.oid, 'pg_authid'), ''))), '[]')
            FROM pg_roles r WHERE r.rolname = ANY(%(names)s)),
  'memberships', (SELECT coalesce(json_agg(json_build_array(m.rolname, g.rolname)), '[]')
                  FROM pg_auth_members a
                  JOIN pg_roles g ON g.oid = a.roleid
                  JOIN pg_roles m ON m.oid = a.member
                  WHERE m.rolname = ANY(%(names)s) OR g.rolname = ANY(%(names)s)),
  'role_settings', (SELECT coalesce(json_agg(json_build_array(
                        r.rolname, coalesce(d.datname, ''), s.setconfig)), '[]')
                    FROM pg_db_role_setting s
                    JOIN pg_roles r ON r.oid = s.setrole
                    LEFT JOIN pg_database d ON d.oid = s.setdatabase
                    WHERE r.rolname = ANY(%(names)s)),
  'databases', (SELECT coalesce(json_agg(json_build_array(
                    d.datname, pg_get_userbyid(d.datdba),
                    ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                      ELSE pg_get_userbyid(a.grantee) END
                                 || ':' || a.privilege_type
                          FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a),
                    coalesce(shobj_description(d.oid, 'pg_database'), ''),
                    d.datallowconn, d.datconnlimit,
                    coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                              WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'),
                    d.datistemplate)), '[]')
                FROM pg_database d WHERE d.datname = ANY(%(databases)s))
)

-- name: managed_owner_roles
-- Roles we created, to list services that are on the server but no longer in the config.
-- The marker and the owner suffix are parameters, never literals here (infra/postgres/model.py,
-- infra/naming.py).
SELECT r.rolname
FROM pg_roles r
WHERE starts_with(coalesce(shobj_description(r.oid, 'pg_authid'), ''), %(marker)s)
  AND r.rolname LIKE %(owner_like)s
ORDER BY r.rolname

-- name: database
-- Everything inside the service's database, as one JSON document. What the owner role owns is
-- found through pg_shdepend's index on the owner (never a scan of pg_class or pg_proc).
WITH owner AS (SELECT oid FROM pg_roles WHERE rolname = %(owner)s),
owned AS (
  SELECT d.classid, d.objid
  FROM pg_shdepend d, owner o
  WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = o.oid AND d.deptype = 'o'
    AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT json_build_object(
  'extensions', (SELECT coalesce(json_agg(extname), '[]') FROM pg_extension),
  -- Schemas the owner role can grant on (its own, and public via pg_database_owner).
  'schemas', (SELECT coalesce(json_agg(json_build_array(n.nspname,
                  ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                    ELSE pg_get_userbyid(a.grantee) END
                               || ':' || a.privilege_type
                        FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a))
                  ORDER BY n.nspname), '[]')
              FROM pg_namespace n
              WHERE n.nspname NOT LIKE 'pg\_%%' AND n.nspname <> 'information_schema'
                AND pg_get_userbyid(n.nspowner) IN (%(owner)s, 'pg_database_owner')),
  -- Global (not per-schema) default privileges of the owner role, per object type.
  'default_privileges', (SELECT coalesce(json_agg(json_build_array(d.defaclobjtype,
                  ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                    ELSE pg_get_userbyid(a.grantee) END
                               || ':' || a.privilege_type
                        FROM aclexplode(d.defaclacl) a))), '[]')
              FROM pg_default_acl d, owner o
              WHERE d.defaclrole = o.oid AND d.defaclnamespace = 0),
  -- Tables, views and sequences the owner role owns (not members of an extension).
  'relations', (SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname, c.relkind,
                  ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                    ELSE pg_get_userbyid(a.grantee) END
                               || ':' || a.privilege_type
                        FROM aclexplode(coalesce(c.relacl, acldefault(
                            CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                            c.relowner))) a))
                  ORDER BY n.nspname, c.relname), '[]')
              FROM owned o
              JOIN pg_class c ON o.classid = 'pg_class'::regclass AND c.oid = o.objid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                AND NOT EXISTS (SELECT 1 FROM pg_depend e
                                WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                                  AND e.deptype = 'e')),
  -- The owner's routines, and whether the app role may execute each.
  'routines', (SELECT coalesce(json_agg(json_build_array(n.nspname, p.oid::text,
                  has_function_privilege(%(app)s, p.oid, 'EXECUTE'))
                  ORDER BY n.nspname, p.oid), '[]')
              FROM owned o
              JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND p.oid = o.objid
              JOIN pg_namespace n ON n.oid = p.pronamespace),
  -- The service's logins that own something in this database (a table the migrator made after
  -- RESET ROLE, a large object the app made): the owner role must own everything.
  'owned_by_logins', (SELECT coalesce(json_agg(DISTINCT r.rolname), '[]')
              FROM pg_shdepend d
              JOIN pg_roles r ON r.oid = d.refobjid
              WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND d.deptype = 'o' AND d.refclassid = 'pg_authid'::regclass
                AND r.rolname = ANY(%(names)s))
)
