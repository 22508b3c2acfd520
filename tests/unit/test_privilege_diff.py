"""The role engine's diff with no server: wanted and current values in, statements out.

Modelled on ldap2pg's ``tests/unit/test_privileges.py::test_diff``. The server tests
(tests/integration/test_postgres_*.py) prove the statements do what they say; these prove the
diff asks for the right ones, and for nothing outside what the tool manages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from infra.config.model import ServiceSpec
from infra.postgres.catalog import ClusterState, DatabaseRow, RoleState, fresh_database
from infra.postgres.converge import (
    cluster_statements,
    current_cluster,
    database_statements,
    foreign_objects,
    scope_of,
    wanted_cluster,
)
from infra.postgres.model import MARKER, ServiceModel, service_model
from infra.postgres.render import STEPS, render
from infra.postgres.values import (
    DatabaseAttribute,
    DatabaseSetting,
    Membership,
    Privilege,
    RoleAttribute,
    RoleSetting,
    Value,
    diff,
)

ADMIN = "platform_admin"
MODEL: ServiceModel = service_model(
    ServiceSpec(name="svc", extensions=("pgcrypto",)),
    {"migrator": "m-pw", "app": "a-pw", "readonly": "r-pw"},
    version=1,
)
SCOPE = scope_of(MODEL)
TABLE = ("public", "entries")


def texts(wanted: Iterable[Value], current: Iterable[Value]) -> list[str]:
    return [s.text for s in render(diff(wanted, current, SCOPE), MODEL, ADMIN)]


def table(grantee: str, privilege: str, database: str = "svc") -> Privilege:
    return Privilege(database, "TABLE", TABLE, grantee, privilege)


def test_a_missing_privilege_is_granted_in_its_database() -> None:
    changes = diff({table("svc_app", "SELECT")}, set(), SCOPE)
    [statement] = render(changes, MODEL, ADMIN)
    assert statement.text == 'GRANT SELECT ON TABLE "public"."entries" TO "svc_app"'
    assert statement.database == "svc"
    assert statement.transactional


def test_extra_privileges_are_revoked_in_one_statement_before_grants() -> None:
    current = {
        table("svc_app", "SELECT"),
        table("svc_app", "TRUNCATE"),
        table("svc_app", "TRIGGER"),
    }
    wanted = {table("svc_app", "SELECT"), table("svc_readonly", "SELECT")}
    assert texts(wanted, current) == [
        'REVOKE TRIGGER, TRUNCATE ON TABLE "public"."entries" FROM "svc_app"',
        'GRANT SELECT ON TABLE "public"."entries" TO "svc_readonly"',
    ]


def test_equal_sets_need_nothing() -> None:
    values: set[Value] = {table("svc_app", "SELECT"), Membership("svc_owner", ADMIN)}
    changes = diff(values, set(values), SCOPE)
    assert not changes
    assert render(changes, MODEL, ADMIN) == []


def test_a_changed_owner_is_replaced_not_revoked() -> None:
    wanted = {DatabaseAttribute("svc", "owner", "svc_owner")}
    current = {DatabaseAttribute("svc", "owner", "intruder")}
    assert texts(wanted, current) == ['ALTER DATABASE "svc" OWNER TO "svc_owner"']


def test_memberships_grant_the_admin_and_revoke_strangers_but_keep_the_tool_login() -> None:
    wanted = {Membership("svc_owner", ADMIN), Membership("svc_owner", "svc_migrator")}
    current = {
        Membership("svc_owner", "svc_migrator"),
        Membership("svc_owner", "other_migrator"),
        Membership("svc_owner", "svc__tool"),
    }
    assert texts(wanted, current) == [
        'REVOKE "svc_owner" FROM "other_migrator"',
        'GRANT "svc_owner" TO "platform_admin"',
    ]


def test_attributes_changed_by_hand_are_set_back_in_one_alter_role() -> None:
    wanted = {
        RoleAttribute("svc_app", "createdb", "false"),
        RoleAttribute("svc_app", "createrole", "false"),
        RoleAttribute("svc_app", "connection_limit", "10"),
    }
    current = {
        RoleAttribute("svc_app", "createdb", "true"),
        RoleAttribute("svc_app", "createrole", "true"),
        RoleAttribute("svc_app", "connection_limit", "10"),
    }
    assert texts(wanted, current) == ['ALTER ROLE "svc_app" WITH NOCREATEDB NOCREATEROLE']


def test_settings_are_reset_when_extra_and_set_when_missing_or_changed() -> None:
    wanted = {
        RoleSetting("svc_app", "statement_timeout", "30000"),
        RoleSetting("svc_migrator", "role", "svc_owner", database="svc"),
    }
    current: set[Value] = {
        RoleSetting("svc_app", "statement_timeout", "0"),
        RoleSetting("svc_app", "search_path", "evil"),
        DatabaseSetting("svc", "search_path", "evil"),
        DatabaseSetting("svc", "work_mem", "1GB"),
    }
    assert texts(wanted, current) == [
        'ALTER ROLE "svc_app" RESET "search_path"',
        'ALTER ROLE "svc_app" SET "statement_timeout" = \'30000\'',
        'ALTER DATABASE "svc" RESET ALL',
        'ALTER ROLE "svc_migrator" IN DATABASE "svc" SET "role" = \'svc_owner\'',
    ]


def test_default_privileges_are_diffed_like_any_other() -> None:
    default = ("svc_owner", "r")
    wanted = {Privilege("svc", "DEFAULT", default, "svc_readonly", "SELECT")}
    current = {Privilege("svc", "DEFAULT", default, "svc_app", "TRUNCATE")}
    assert texts(wanted, current) == [
        'ALTER DEFAULT PRIVILEGES FOR ROLE "svc_owner" REVOKE TRUNCATE ON TABLES FROM "svc_app"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "svc_owner" GRANT SELECT ON TABLES TO "svc_readonly"',
    ]


def test_nothing_outside_the_managed_scope_is_revoked() -> None:
    current: set[Value] = {
        table("svc_app", "SELECT", database="someone_elses_db"),
        Privilege("postgres", "DATABASE", ("postgres",), "svc_app", "CONNECT"),
        RoleSetting("stranger", "search_path", "x"),
        RoleSetting("svc_app", "search_path", "x", database="someone_elses_db"),
        RoleAttribute("stranger", "createdb", "true"),
        Membership("stranger_group", "stranger"),
        DatabaseSetting("someone_elses_db", "work_mem", "1GB"),
    }
    assert texts(set(), current) == []


def test_from_empty_roles_come_first_and_the_database_opens_last() -> None:
    statements = cluster_statements(MODEL, ClusterState(), ADMIN)
    text = [s.text for s in statements]
    # Everything over the admin's connection but the registration, in the tooling database.
    assert [s.database for s in statements if s.database is not None] == ["persistence_tooling"]
    creates = [t for t in text if t.startswith("CREATE ROLE")]
    assert text[: len(creates)] == creates
    assert len(creates) == len(MODEL.roles)
    assert any(t.startswith('CREATE ROLE "svc_owner" NOLOGIN') for t in creates)
    create = text.index('CREATE DATABASE "svc" OWNER "svc_owner" ALLOW_CONNECTIONS false')
    assert not statements[create].transactional
    assert text.index('GRANT "svc_owner" TO "platform_admin"') < create
    assert text.index('REVOKE CONNECT, TEMPORARY ON DATABASE "svc" FROM PUBLIC') > create
    assert text[-2].startswith("INSERT INTO public.databases (oid, service, purpose)")
    assert text[-1] == 'ALTER DATABASE "svc" WITH ALLOW_CONNECTIONS true'
    # CREATE ROLE sets the password and attributes: nothing re-sets them.
    assert not any(
        t.startswith(('ALTER ROLE "svc_app" PASSWORD', 'ALTER ROLE "svc_app" WITH')) for t in text
    )
    inside = database_statements(MODEL, fresh_database("svc_owner"), ADMIN)
    assert {s.database for s in inside} == {"svc"}
    assert inside[0].text == 'CREATE EXTENSION "pgcrypto" WITH SCHEMA public'


def converged_cluster() -> ClusterState:
    """The cluster as a converged service leaves it."""
    roles = {
        role.name: RoleState(
            role.name,
            False,
            True,
            False,
            False,
            role.login,
            False,
            False,
            role.connection_limit,
            MODEL.comment_for(role),
        )
        for role in MODEL.roles
    }
    settings = {(role.name, ""): dict(role.settings) for role in MODEL.roles if role.settings}
    settings[("svc_migrator", "svc")] = {"role": "svc_owner"}
    owner = "svc_owner"
    grants = {(owner, "CONNECT"), (owner, "CREATE"), (owner, "TEMPORARY")}
    grants |= {(login.name, "CONNECT") for login in MODEL.logins}
    return ClusterState(
        roles=roles,
        groups={ADMIN: frozenset({owner}), "svc_migrator": frozenset({owner})},
        settings=settings,
        databases={"svc": DatabaseRow("svc", owner, frozenset(grants), MARKER)},
        registry={"svc": ("svc", "live")},
    )


def test_a_converged_cluster_needs_nothing_and_a_changed_password_is_set_again() -> None:
    cluster = converged_cluster()
    assert current_cluster(MODEL, cluster) >= wanted_cluster(MODEL, ADMIN)
    assert cluster_statements(MODEL, cluster, ADMIN) == []
    stale = cluster_statements(MODEL, cluster, ADMIN, frozenset({"svc_app"}))
    assert [s.text for s in stale] == ["ALTER ROLE \"svc_app\" PASSWORD '[REDACTED]'"]


def test_a_template_database_is_drift_and_a_comment_is_not() -> None:
    """IS_TEMPLATE (the owner may set it) is set back; the comment (the owner may rewrite it)
    proves nothing and changes nothing; a scratch registration becomes the live one."""
    cluster = converged_cluster()
    row = cluster.databases["svc"]
    relabelled = replace(row, comment="not ours any more", is_template=True)
    swapped = replace(cluster, databases={"svc": relabelled}, registry={"svc": ("svc", "scratch")})
    text = [s.text for s in cluster_statements(MODEL, swapped, ADMIN)]
    assert text[0] == 'ALTER DATABASE "svc" WITH IS_TEMPLATE false'
    assert len(text) == 2
    assert "'live'" in text[1]
    assert foreign_objects(MODEL, swapped) == []


def test_a_database_registered_for_another_service_is_foreign() -> None:
    cluster = replace(converged_cluster(), registry={"svc": ("other", "live")})
    (line,) = foreign_objects(MODEL, cluster)
    assert line.startswith("database svc exists but was not created by this tool for service svc")
    assert "registered for service other" in line


def test_the_step_order_names_every_template_once() -> None:
    assert len(STEPS) == len(set(STEPS))
