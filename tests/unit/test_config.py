"""The stack config model: defaults, every class of bad input, and both loading paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pulumi
import pytest

from infra.config import load_file, load_pulumi, load_stack
from infra.config.model import StackConfig
from infra.errors import ConfigError
from tests.unit.pulumi_mocks import RecordingMocks, stack_config

REPO = Path(__file__).resolve().parents[2]

VALID = """\
config:
  persistence:platform: docker
  persistence:services:
    - name: users
"""


def write_stack(tmp_path: Path, body: str, name: str = "bad") -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_file(write_stack(tmp_path, body))
    return caught.value.problems


def test_both_stacks_declare_the_five_starting_services() -> None:
    for stack in ("dev", "prod"):
        names = [s.name for s in load_stack(stack).services]
        assert names == ["auth", "authorization", "users", "audit", "events"], stack


def test_defaults_apply_when_only_required_keys_are_given(tmp_path: Path) -> None:
    config = load_file(write_stack(tmp_path, VALID, "minimal"))
    users = config.service("users")
    assert users.connection_limits.app == 20
    assert users.statement_timeout_ms == 30_000
    assert config.postgres.slow_statement_ms == 1000
    assert config.docker.bind_address == "127.0.0.1"
    assert config.connections_needed == 20 + 3 + 5 + config.postgres.reserved_connections


def test_unknown_key_suggests_the_closest_allowed_key(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID + "  persistence:servics: []\n")
    assert found == [
        "Pulumi.bad.yaml: persistence:servics: unknown key (did you mean 'services'?); "
        "allowed keys: alerts, backup, bootstrap, docker, gcp, platform, postgres, rabbitmq, "
        "redis, services"
    ]


def test_unknown_nested_key_names_its_full_path(tmp_path: Path) -> None:
    body = VALID + "      connection_limts: {app: 5}\n"
    (line,) = problems(tmp_path, body)
    assert line.startswith("Pulumi.bad.yaml: persistence:services[0].connection_limts: unknown key")
    assert "did you mean 'connection_limits'?" in line


def test_missing_required_key(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "config:\n  persistence:platform: docker\n")
    assert line.startswith("Pulumi.bad.yaml: persistence:services: required key is missing")


@pytest.mark.parametrize(
    ("snippet", "path", "says"),
    [
        (
            "persistence:platform: aws",
            "persistence:platform",
            "use one of 'docker', 'gcp', 'bootstrap'",
        ),
        (
            "persistence:postgres: {slow_statement_ms: fast}",
            "persistence:postgres.slow_statement_ms",
            "expected an integer",
        ),
        (
            "persistence:docker: {ports: {postgres: 80}}",
            "persistence:docker.ports.postgres",
            "allowed: 1024 to 65535",
        ),
        (
            "persistence:redis: {maxmemory_mb: 0}",
            "persistence:redis.maxmemory_mb",
            "allowed: 16 to",
        ),
        (
            "persistence:backup: {schedule: '0 25 * * *'}",
            "persistence:backup.schedule",
            "five-field cron expression in UTC",
        ),
        (
            "persistence:backup: {schedule: 'every day'}",
            "persistence:backup.schedule",
            "e.g. '0 3 * * *'",
        ),
        (
            "persistence:docker: {bind_address: 0.0.0.0}",
            "persistence:docker.bind_address",
            "not a loopback address",
        ),
        (
            "persistence:docker: {ports: {postgres: 16379}}",
            "persistence:docker:",
            "every server needs its own host port",
        ),
        (
            "persistence:backup: {coldline_after_days: 500}",
            "persistence:backup:",
            "delete_after_days must be greater than coldline_after_days",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    tmp_path: Path, snippet: str, path: str, says: str
) -> None:
    body = VALID.replace("  persistence:platform: docker\n", "") + f"  {snippet}\n"
    if "persistence:platform" not in snippet:
        body += "  persistence:platform: docker\n"
    found = problems(tmp_path, body)
    assert any(line.startswith(f"Pulumi.bad.yaml: {path}") and says in line for line in found), (
        found
    )


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Users", "lowercase letters, digits and underscores"),
        ("user-profiles", "lowercase letters, digits and underscores"),
        ("1users", "starting with a letter"),
        ("postgres", "reserved name"),
        ("template1", "reserved name"),
        ("public", "reserved name"),
        ("cloudsqlsuperuser", "reserved name"),
        ("persistence_tooling", "reserved name"),
        ("pg_users", "names starting with 'pg_' belong to PostgreSQL"),
        ("user__profiles", "no double or trailing underscores"),
        ("a" * 44, "may be at most 43 bytes"),
        ("a" * 70, "is 70 bytes"),
    ],
)
def test_bad_service_names(tmp_path: Path, name: str, says: str) -> None:
    (line,) = problems(tmp_path, VALID.replace("name: users", f"name: {name}"))
    assert line.startswith("Pulumi.bad.yaml: persistence:services[0].name: ")
    assert says in line


def test_longest_allowed_name_fits_postgres_identifier_limit(tmp_path: Path) -> None:
    name = "a" * 43
    config = load_file(write_stack(tmp_path, VALID.replace("name: users", f"name: {name}")))
    assert len(f"{config.services[0].name}_readonly".encode()) <= 63


def test_duplicates_are_reported_with_both_positions(tmp_path: Path) -> None:
    body = VALID + "    - name: orders\n    - name: users\n"
    (line,) = problems(tmp_path, body)
    assert line == (
        "Pulumi.bad.yaml: persistence:services[2].name: duplicate service 'users' "
        "(already at services[0].name); each service must be listed once"
    )


def test_duplicate_queue_in_one_service(tmp_path: Path) -> None:
    body = VALID + "      queues: [{name: jobs}, {name: jobs}]\n"
    (line,) = problems(tmp_path, body)
    assert "services[0].queues[1].name: duplicate queue 'jobs'" in line


def test_a_queue_may_not_take_the_generated_dead_letter_name(tmp_path: Path) -> None:
    body = VALID + "      queues: [{name: users.dead-letter}]\n"
    (line,) = problems(tmp_path, body)
    assert line.startswith("Pulumi.bad.yaml: persistence:services[0].queues[0].name: ")
    assert "generated dead-letter queue" in line


def test_redis_scripting_is_off_by_default_and_a_boolean_opt_in(tmp_path: Path) -> None:
    config = load_file(write_stack(tmp_path, VALID, name="ok"))
    assert config.services[0].redis_scripting is False
    opted = load_file(write_stack(tmp_path, VALID + "      redis_scripting: true\n", name="on"))
    assert opted.services[0].redis_scripting is True
    (line,) = problems(tmp_path, VALID + "      redis_scripting: 'yes'\n")
    assert line == (
        "Pulumi.bad.yaml: persistence:services[0].redis_scripting: expected true or false, "
        "got 'yes'"
    )


def test_redis_scripting_without_a_redis_user_is_refused(tmp_path: Path) -> None:
    body = VALID + "      redis: false\n      redis_scripting: true\n"
    (line,) = problems(tmp_path, body)
    assert line.startswith("Pulumi.bad.yaml: persistence:services[0]: redis_scripting needs ")
    assert "set redis: true" in line


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    body = """\
    config:
      persistence:platform: dockr
      persistence:services:
        - name: Users
        - name: ok
          connection_limits: {app: -1}
    """
    assert len(problems(tmp_path, body)) == 3


def test_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "config: [unclosed\n")
    assert line.startswith("Pulumi.bad.yaml: line")
    assert "not valid YAML" in line


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Users", "persistence:services[0].name"),
        ("postgres", "persistence:services[0].name"),
        ("a" * 70, "persistence:services[0].name"),
    ],
)
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path, name: str, key: str) -> None:
    stack = write_stack(tmp_path, VALID.replace("name: users", f"name: {name}"))
    result = run_cli(
        "render",
        "--stack",
        str(stack),
        "--out",
        str(tmp_path / "out"),
        "--secrets",
        str(tmp_path / "s.json"),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: Pulumi.bad.yaml: {key}: ")
    assert not (tmp_path / "out").exists(), "nothing may be written for a bad stack"
    assert not (tmp_path / "s.json").exists(), "no secrets may be generated for a bad stack"


def test_cli_unknown_key_and_duplicate(tmp_path: Path) -> None:
    stack = write_stack(
        tmp_path,
        VALID
        + "  persistence:servics: []\n    - name: users\n".replace(
            "  persistence:servics: []\n    - name: users\n",
            "    - name: users\n  persistence:servics: []\n",
        ),
    )
    result = run_cli(
        "render",
        "--stack",
        str(stack),
        "--out",
        str(tmp_path / "out"),
        "--secrets",
        str(tmp_path / "s.json"),
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert any("persistence:servics: unknown key (did you mean 'services'?)" in x for x in lines)
    assert any("persistence:services[1].name: duplicate service 'users'" in x for x in lines)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_pulumi_config_loads_the_same_model_as_the_stack_file() -> None:
    """Inside a Pulumi run, config arrives as JSON text per key; the result must not differ."""
    for stack in ("dev", "prod"):
        pulumi.runtime.set_mocks(RecordingMocks(), project="persistence", stack=stack)
        pulumi.runtime.set_all_config(stack_config(stack))
        from_pulumi: StackConfig = load_pulumi()
        assert from_pulumi == load_stack(stack), stack


def test_pulumi_config_errors_name_the_stack_file() -> None:
    pulumi.runtime.set_mocks(RecordingMocks(), project="persistence", stack="dev")
    config = stack_config("dev")
    config["persistence:services"] = '[{"name": "Users"}]'
    pulumi.runtime.set_all_config(config)
    with pytest.raises(ConfigError) as caught:
        load_pulumi()
    assert caught.value.problems[0].startswith("Pulumi.dev.yaml: persistence:services[0].name:")


def test_services_needing_more_than_max_connections_are_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    text = VALID.replace(
        "persistence:platform: docker",
        "persistence:platform: docker\n  persistence:postgres: {max_connections: 30}",
    )
    with pytest.raises(ConfigError) as raised:
        load_file(write_stack(tmp_path, text, "tight"))
    message = str(raised.value)
    assert "Pulumi.tight.yaml: persistence:" in message
    assert "postgres.max_connections: 30 is less than" in message
    assert "set it to at least 48" in message


def test_the_bootstrap_stack_needs_its_repository_and_no_services(tmp_path: Path) -> None:
    body = "config:\n  persistence:platform: bootstrap\n  persistence:services: [{name: users}]\n"
    assert problems(tmp_path, body) == [
        "Pulumi.bad.yaml: persistence:services: platform 'bootstrap' declares no services; "
        "remove this key (services live in Pulumi.dev.yaml and Pulumi.prod.yaml)",
        "Pulumi.bad.yaml: persistence:bootstrap.github_repository: required for platform "
        "'bootstrap': the repository whose workflows may authenticate "
        "(e.g. 'example-org/persistence')",
    ]


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("github_repository", "example-org/persistence' || true || '", "not a GitHub repository"),
        ("github_repository", "persistence", "use owner/name"),
        ("deploy_branch", "main' || 'x", "not a branch name"),
        ("deploy_environment", "prod env", "not a GitHub environment name"),
        ("state_region", "EU", "not a Google Cloud region"),
    ],
)
def test_bootstrap_values_that_would_widen_the_identity_are_refused(
    tmp_path: Path, key: str, value: str, says: str
) -> None:
    body = "config:\n  persistence:platform: bootstrap\n  persistence:bootstrap:\n"
    if key != "github_repository":  # a key given twice is refused on its own
        body += "    github_repository: example-org/persistence\n"
    body += f'    {key}: "{value}"\n'
    found = problems(tmp_path, body)
    assert any(
        line.startswith(f"Pulumi.bad.yaml: persistence:bootstrap.{key}: ") and says in line
        for line in found
    ), found


def test_a_service_stack_refuses_the_bootstrap_section(tmp_path: Path) -> None:
    body = VALID + "  persistence:bootstrap: {github_repository: example-org/persistence}\n"
    assert problems(tmp_path, body) == [
        "Pulumi.bad.yaml: persistence:bootstrap: only platform 'bootstrap' reads this section, "
        "not 'docker'; remove it (it belongs in Pulumi.bootstrap.yaml)"
    ]


def test_alert_emails_and_verification_tier_are_validated(tmp_path: Path) -> None:
    body = VALID + (
        "  persistence:alerts: {emails: [oncall@example.com, not-an-address]}\n"
        "  persistence:gcp: {verify_instance_tier: huge}\n"
    )
    found = problems(tmp_path, body)
    assert any(
        line.startswith("Pulumi.bad.yaml: persistence:alerts.emails: 'not-an-address'")
        for line in found
    ), found
    assert any("persistence:gcp.verify_instance_tier: 'huge'" in line for line in found), found


@pytest.mark.parametrize("server", ["postgres", "redis", "rabbitmq"])
@pytest.mark.parametrize(
    "admin", ["users", "users_owner", "users_migrator", "users_app", "users_readonly"]
)
def test_an_admin_user_may_not_take_a_name_a_service_derives(
    tmp_path: Path, server: str, admin: str
) -> None:
    """Two ``user users`` lines stop Redis from starting; a RabbitMQ user named like a service
    loses the administrator (see tests/integration/test_input_attacks.py for the real server)."""
    body = VALID + f"  persistence:{server}:\n    admin_user: {admin}\n"
    (line,) = problems(tmp_path, body)
    assert line.startswith(f"Pulumi.bad.yaml: persistence:{server}.admin_user: '{admin}' is a ")
    assert "service 'users' (services[0])" in line, line
    assert "e.g. 'platform_admin'" in line, line


@pytest.mark.parametrize(
    ("server", "admin", "says"),
    [
        ("postgres", "postgres", "keep for themselves"),
        ("postgres", "pg_monitor", "keep for themselves"),
        ("postgres", "cloudsqlsuperuser", "keep for themselves"),
        ("redis", "default", "keep for themselves"),
        ("rabbitmq", "guest", "keep for themselves"),
        ("postgres", "persistence_tooling", "keep for themselves"),
        ("redis", "ops__tool", "'__' marks names the tool derives"),
        ("rabbitmq", "Ops", "lowercase letters"),
    ],
)
def test_an_admin_user_may_not_take_a_built_in_name(
    tmp_path: Path, server: str, admin: str, says: str
) -> None:
    body = VALID + f"  persistence:{server}:\n    admin_user: {admin}\n"
    (line,) = problems(tmp_path, body)
    assert line.startswith(f"Pulumi.bad.yaml: persistence:{server}.admin_user: '{admin}' ")
    assert says in line, line


def test_the_default_admin_name_is_still_refused_for_a_service_under_another_admin(
    tmp_path: Path,
) -> None:
    """Renaming the admins frees no name: 'platform_admin' stays reserved for services."""
    body = (
        VALID.replace("name: users", "name: platform_admin")
        + "".join(f"  persistence:{s}:\n    admin_user: ops\n" for s in ("postgres", "redis"))
        + "  persistence:rabbitmq:\n    admin_user: ops\n"
    )
    (line,) = problems(tmp_path, body)
    assert line.startswith("Pulumi.bad.yaml: persistence:services[0].name: 'platform_admin'")


def test_the_tooling_database_name_is_no_service_name(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, VALID.replace("name: users", "name: persistence_tooling"))
    assert line.startswith("Pulumi.bad.yaml: persistence:services[0].name: ")
    assert "reserved name" in line, line


def test_distinct_admin_names_on_each_server_are_accepted(tmp_path: Path) -> None:
    body = VALID + (
        "  persistence:postgres:\n    admin_user: sql_ops\n"
        + "  persistence:redis:\n    admin_user: cache_ops\n"
        + "  persistence:rabbitmq:\n    admin_user: users_admin\n"
    )
    config = load_file(write_stack(tmp_path, body))
    assert (config.postgres.admin_user, config.redis.admin_user) == ("sql_ops", "cache_ops")
    assert config.rabbitmq.admin_user == "users_admin"


@pytest.mark.parametrize(
    ("body", "line", "key", "first"),
    [
        (VALID + "  persistence:platform: gcp\n", 5, "persistence:platform", 2),
        (VALID + "      name: orders\n", 5, "name", 4),
        (
            VALID + "  persistence:redis:\n    admin_user: a\n    maxmemory_mb: 64\n"
            "    admin_user: b\n",
            8,
            "admin_user",
            6,
        ),
    ],
)
def test_a_duplicate_yaml_key_is_refused_with_its_line(
    tmp_path: Path, body: str, line: int, key: str, first: int
) -> None:
    """PyYAML keeps the last of two equal keys silently; Pulumi's reader refuses them."""
    (found,) = problems(tmp_path, body)
    assert found == (
        f"Pulumi.bad.yaml: line {line}: duplicate key {key!r} (first at line {first}); "
        "each key may appear once in a mapping: remove one"
    )


def test_a_key_after_a_yaml_merge_still_overrides_it(tmp_path: Path) -> None:
    body = VALID.replace(
        "    - name: users\n",
        "    - &base {name: users, statement_timeout_ms: 5000}\n"
        "    - <<: *base\n      name: orders\n",
    )
    config = load_file(write_stack(tmp_path, body))
    assert [(s.name, s.statement_timeout_ms) for s in config.services] == [
        ("users", 5000),
        ("orders", 5000),
    ]


@pytest.mark.parametrize("suffix", ["owner", "migrator", "app", "readonly"])
def test_a_service_may_not_be_named_like_another_services_role(tmp_path: Path, suffix: str) -> None:
    """``users_app`` next to ``users``: a database and a role of one name, two services."""
    for order in ((f"users_{suffix}", "users"), ("users", f"users_{suffix}")):
        body = VALID.replace("    - name: users\n", "".join(f"    - name: {n}\n" for n in order))
        (line,) = problems(tmp_path, body)
        index = order.index(f"users_{suffix}")
        assert line.startswith(
            f"Pulumi.bad.yaml: persistence:services[{index}].name: 'users_{suffix}' is already "
            f"a name of service 'users' (services[{1 - index}])"
        ), line


@pytest.mark.parametrize("nodes", [0, 2, 4, 6, 7, -1])
def test_an_even_or_out_of_range_rabbitmq_node_count_is_refused_saying_why(
    tmp_path: Path, nodes: int
) -> None:
    body = VALID + f"  persistence:rabbitmq: {{nodes: {nodes}}}\n"
    (line,) = problems(tmp_path, body)
    assert line == (
        f"Pulumi.bad.yaml: persistence:rabbitmq.nodes: {nodes} is not allowed: an odd number "
        "for quorum: 1, 3 or 5 (e.g. 3)"
    )


@pytest.mark.parametrize("platform", ["bootstrap"])
@pytest.mark.parametrize("nodes", [3, 5])
def test_a_cluster_the_platform_cannot_build_yet_is_refused_not_ignored(
    tmp_path: Path, platform: str, nodes: int
) -> None:
    body = VALID.replace("platform: docker", f"platform: {platform}")
    body += f"  persistence:rabbitmq: {{nodes: {nodes}}}\n"
    found = [line for line in problems(tmp_path, body) if "rabbitmq" in line]
    assert found == [
        f"Pulumi.bad.yaml: persistence:rabbitmq.nodes: platform {platform!r} cannot build a "
        f"{nodes}-node RabbitMQ cluster yet (it builds 1 for now); remove the key or set it "
        "to 1 (e.g. rabbitmq: {nodes: 1})"
    ]


def test_rabbitmq_nodes_defaults_to_three_in_prod_one_in_dev_and_one_is_accepted(
    tmp_path: Path,
) -> None:
    for stack, default in (("dev", 1), ("prod", 3)):
        config = load_stack(stack)
        assert config.rabbitmq.nodes is None
        assert config.rabbitmq_nodes == default, stack
    explicit = load_file(write_stack(tmp_path, VALID + "  persistence:rabbitmq: {nodes: 1}\n"))
    assert explicit.rabbitmq.nodes == 1
    assert explicit.rabbitmq_nodes == 1


@pytest.mark.parametrize("nodes", [1, 3, 5])
def test_prod_builds_one_three_or_five_nodes(tmp_path: Path, nodes: int) -> None:
    body = VALID.replace("platform: docker", "platform: gcp")
    body += f"  persistence:rabbitmq: {{nodes: {nodes}}}\n"
    assert load_file(write_stack(tmp_path, body)).rabbitmq_nodes == nodes


def test_rabbitmq_nodes_must_be_a_whole_number(tmp_path: Path) -> None:
    for value in ("three", "3.0", "true"):
        (line,) = problems(tmp_path, VALID + f"  persistence:rabbitmq: {{nodes: {value}}}\n")
        assert line.startswith("Pulumi.bad.yaml: persistence:rabbitmq.nodes: expected"), line


@pytest.mark.parametrize("nodes", [3, 5])
def test_dev_runs_a_cluster_when_asked_with_one_port_pair_per_node(
    tmp_path: Path, nodes: int
) -> None:
    body = VALID + f"  persistence:rabbitmq: {{nodes: {nodes}}}\n"
    config = load_file(write_stack(tmp_path, body, "cluster"))
    assert config.rabbitmq_nodes == nodes
    pairs = config.docker_rabbitmq_ports()
    assert pairs[0] == (config.docker.ports.amqp, config.docker.ports.management)
    assert [amqp for amqp, _ in pairs] == list(range(15672, 15672 + nodes))
    assert [management for _, management in pairs] == list(range(16672, 16672 + nodes))


def test_a_dev_cluster_whose_node_ports_overlap_is_refused_naming_the_ranges(
    tmp_path: Path,
) -> None:
    # Node 2's AMQP port (20001) would be the management port of node 1.
    body = VALID + (
        "  persistence:rabbitmq: {nodes: 3}\n"
        "  persistence:docker: {ports: {amqp: 20000, management: 20001}}\n"
    )
    (line,) = problems(tmp_path, body)
    assert "docker.ports: a 3-node RabbitMQ cluster publishes AMQP on 20000-20002" in line
    assert "the management API on 20001-20003" in line
    assert "(e.g. docker: {ports: {amqp: 15672, management: 16672}})" in line


def test_the_same_ports_are_fine_for_a_single_dev_node(tmp_path: Path) -> None:
    body = VALID + "  persistence:docker: {ports: {amqp: 20000, management: 20001}}\n"
    assert load_file(write_stack(tmp_path, body, "single")).docker_rabbitmq_ports() == [
        (20000, 20001)
    ]
