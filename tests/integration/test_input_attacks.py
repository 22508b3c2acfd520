"""Names, files and inputs (issue 20, class 5): each attack through ``python -m infra`` as a user
runs it (a subprocess), against real servers where a server is what breaks.

Every refusal is one line on stderr naming the file or key and what is allowed; never a
traceback.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.render import redis as redis_render
from tests.integration.backup_helpers import seed
from tests.servers.postgres import PostgresServer
from tests.servers.process import free_port, require_binary
from tests.servers.redis import SERVER_BINARY, SERVER_PACKAGE

REPO = Path(__file__).resolve().parents[2]

ONE_SERVICE = """\
config:
  persistence:platform: docker
  persistence:services:
    - name: ops
"""


def infra(
    *argv: str,
    stdin: str | None = None,
    umask: int | None = None,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m infra ARGV`` from the repository root, as a user types it."""

    def before() -> None:
        if umask is not None:
            os.umask(umask)
        if preexec is not None:
            preexec()

    return subprocess.run(
        [sys.executable, "-m", "infra", *argv],
        cwd=REPO,
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=before,  # only os calls, before exec
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refusal (never a traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_redis_admin_named_like_a_service_stops_redis_and_is_refused(
    dev_config: StackConfig, dev_rendered: tuple[Path, Credentials], tmp_path: Path
) -> None:
    _, credentials = dev_rendered
    service = dev_config.services[0].name
    # The harm, on a real server (valkey-server 8.0): the ACL file such a stack renders stops it
    # cold.
    colliding = dataclasses.replace(
        dev_config, redis=dataclasses.replace(dev_config.redis, admin_user=service)
    )
    # The renderer will not write one user over another (the service's rule would replace the
    # admin's, silently)...
    with pytest.raises(ValueError, match=f"Redis user '{service}' would be defined twice"):
        redis_render.users_acl(colliding, credentials)
    # ...and a file holding both lines, as a renderer without that check wrote it, stops Redis.
    lines = redis_render.users_acl(dev_config, credentials).splitlines()
    admin_line = next(
        line for line in lines if line.startswith(f"user {dev_config.redis.admin_user} ")
    )
    acl = tmp_path / "users.acl"
    acl.write_text(
        "\n".join([admin_line.replace(dev_config.redis.admin_user, service, 1), *lines]) + "\n"
    )
    redis_server = require_binary(SERVER_BINARY, SERVER_PACKAGE)
    options = f"--port {free_port()} --bind 127.0.0.1 --daemonize no --dir {tmp_path}"
    server = subprocess.run(
        [redis_server, *options.split(), "--save", "", "--aclfile", str(acl)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert server.returncode != 0
    assert f"Duplicate user '{service}'" in server.stdout + server.stderr
    # The tool refuses such a stack before it writes anything.
    stack = tmp_path / "Pulumi.clash.yaml"
    stack.write_text(ONE_SERVICE + "  persistence:redis:\n    admin_user: ops\n")
    out = tmp_path / "out"
    result = infra("render", "--stack", str(stack), "--out", str(out), "--secrets",
                   str(tmp_path / "s.json"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("error: Pulumi.clash.yaml: persistence:redis.admin_user: 'ops' is a"), (
        line
    )
    assert not out.exists()


def _modes(root: Path) -> dict[str, int]:
    """Every path under ``root`` (and ``root`` itself) with its permission bits."""
    found = {".": root.stat().st_mode & 0o7777}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = path.stat().st_mode & 0o7777
    return found


def test_render_under_umask_000_creates_private_directories_and_files(tmp_path: Path) -> None:
    out, secrets = tmp_path / "out" / "dev", tmp_path / "keys" / "dev.secrets.json"
    result = infra(
        "render", "--stack", "dev", "--out", str(out), "--secrets", str(secrets), umask=0
    )
    assert result.returncode == 0, result.stderr
    for root in (tmp_path / "out", secrets.parent):
        for name, mode in _modes(root).items():
            if (root / name).is_dir():
                assert mode == 0o700, (root / name, oct(mode))
            else:
                assert mode in (0o600, 0o644), (root / name, oct(mode))
    assert _modes(out)["redis/users.acl"] == 0o600


def test_envfiles_under_umask_000_creates_a_private_directory(tmp_path: Path) -> None:
    out = tmp_path / "envs"
    result = infra("envfiles", "--out", str(out), stdin='{"users": "X=1\\n"}', umask=0)
    assert result.returncode == 0, result.stderr
    assert _modes(out) == {".": 0o700, "services": 0o700, "services/users.env": 0o600}


def test_an_out_directory_others_can_write_or_own_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    secrets = tmp_path / "s.json"
    result = infra("render", "--stack", "dev", "--out", str(shared), "--secrets", str(secrets))
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert f"{shared}: mode 0777 lets other users replace the files" in line, line
    assert f"chmod go-w {shared}" in line, line
    assert list(shared.iterdir()) == []
    if os.getuid() != 0:
        return
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o755)
    os.chown(foreign, 65534, 65534)  # nobody
    result = infra("envfiles", "--out", str(foreign), stdin='{"users": "X=1\\n"}')
    assert result.returncode == 1, result.stderr
    assert f"{foreign}: owned by uid 65534, not you" in one_line(result)
    assert list(foreign.iterdir()) == []


def test_a_secrets_file_another_user_owns_or_a_planted_link_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "dev.secrets.json"
    out = tmp_path / "out"
    assert (
        infra("render", "--stack", "dev", "--out", str(out), "--secrets", str(secrets)).returncode
        == 0
    )
    # A symlink planted in place of the file, to a 0600 file of ours that an attacker chose.
    link = tmp_path / "link.secrets.json"
    link.symlink_to(secrets)
    result = infra("render", "--stack", "dev", "--out", str(out), "--secrets", str(link))
    assert result.returncode == 1, result.stderr
    assert f"{link}: is a symbolic link" in one_line(result)
    if os.getuid() != 0:
        return
    os.chown(secrets, 65534, 65534)
    result = infra("render", "--stack", "dev", "--out", str(out), "--secrets", str(secrets))
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert f"{secrets}: owned by uid 65534, not you" in line, line


def test_list_into_a_reader_that_closes_early_exits_quietly(tmp_path: Path) -> None:
    """``list | head``: the reader is gone before the first line; no BrokenPipeError."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra", "list", "--bucket", f"file://{bucket}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader closes before anything is written
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert err == ""
    assert process.returncode == 141  # 128 + SIGPIPE, as a shell tool killed by it


def test_plan_accepts_a_stack_file_path_like_every_command(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.review.yaml"
    stack.write_text(ONE_SERVICE)
    result = infra("plan", "--stack", str(stack))
    assert result.returncode == 0, result.stderr
    assert f"declared by stack '{stack}'" in result.stdout, result.stdout
    assert "persistence:docker:Platform" in result.stdout
    missing = tmp_path / "Pulumi.gone.yaml"
    result = infra("plan", "--stack", str(missing))
    assert result.returncode == 2
    assert f"{missing}: no such stack file" in one_line(result)


def test_rebuild_names_the_project_directory_for_a_stack_file_outside_it(tmp_path: Path) -> None:
    """Pulumi reads Pulumi.<stack>.yaml from the project directory, so a file elsewhere is not
    the one it would deploy: refused in one line (it used to become 'Pulumi./tmp/...yaml.yaml')."""
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text((REPO / "Pulumi.dev.yaml").read_text())
    result = infra("rebuild", "--stack", str(stack))
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert f"--stack {stack}: Pulumi reads a stack's file from the project directory" in line
    assert f"pass --stack dev with --project-dir {tmp_path}" in line, line


def test_a_duplicate_key_in_a_stack_file_is_one_line(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.dup.yaml"
    stack.write_text(ONE_SERVICE + "  persistence:platform: gcp\n")
    result = infra("render", "--stack", str(stack), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert one_line(result) == (
        "error: Pulumi.dup.yaml: line 5: duplicate key 'persistence:platform' (first at line "
        "2); each key may appear once in a mapping: remove one"
    )


# A CHECK that holds only in the database it was written in: the dump is valid, and its data
# load fails in a pg_restore worker, whose cause used to scroll out under "a worker process died
# unexpectedly" and the error's DETAIL and CONTEXT lines.
UNRESTORABLE_SQL = """
CREATE FUNCTION home_only() RETURNS boolean LANGUAGE sql
    AS $$ SELECT current_database() = 'audit' $$;
CREATE TABLE pinned (id int PRIMARY KEY, note text CHECK (home_only()));
INSERT INTO pinned SELECT g, 'row ' || g FROM generate_series(1, 50) g;
"""


def test_a_failing_pg_restore_reports_its_cause_not_the_dead_worker(
    postgres: PostgresServer, common: list[str], dev_rendered: tuple[Path, Credentials],
    tmp_path: Path,
) -> None:  # fmt: skip
    _, credentials = dev_rendered
    seed(postgres, credentials, "audit", UNRESTORABLE_SQL)
    bucket = ["--bucket", f"file://{tmp_path / 'bucket'}"]
    taken = infra("backup", *common, *bucket, "--service", "audit")
    assert taken.returncode == 0, taken.stderr
    result = infra("verify", *common, *bucket, "--service", "audit")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "postgres/audit" in result.stdout, result.stdout
    assert "FAILED" in result.stdout, result.stdout
    (problem,) = [line for line in result.stderr.splitlines() if "pg_restore" in line]
    cause = 'COPY failed for table "pinned": ERROR: new row for relation "pinned" violates'
    assert cause in problem, problem
    assert "worker process died" not in problem, problem
    assert "CONTEXT" not in problem, problem


@contextmanager
def tiny_tmpdir(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A TMPDIR that fills up after a few KiB: a 16 KiB tmpfs when we are root (CI is), else a
    file-size limit in the child (writes then fail with EFBIG instead of ENOSPC)."""
    folder = tmp_path / "tiny"
    folder.mkdir(mode=0o700)
    if os.geteuid() != 0:

        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

        yield folder, limit
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", str(folder)],
                   check=True)  # fmt: skip
    try:
        yield folder, None
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_tmpdir_while_fetching_is_one_line_and_records_nothing(
    postgres: PostgresServer, common: list[str], dev_rendered: tuple[Path, Credentials],
    tmp_path: Path,
) -> None:  # fmt: skip
    _, credentials = dev_rendered
    bulk = "CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 5000) g"
    seed(postgres, credentials, "events", bulk)  # a dump far larger than the 16 KiB TMPDIR
    # A plain dump in a file:// bucket is read in place and needs no scratch space; a sealed
    # one is decrypted into TMPDIR first, and that is what fills it here.
    key = {"PERSISTENCE_BACKUP_KEY": "A" * 43 + "="}
    bucket = ["--bucket", f"file://{tmp_path / 'bucket'}"]
    taken = infra("backup", *common, *bucket, "--service", "events", env=key)
    assert taken.returncode == 0, taken.stderr
    with tiny_tmpdir(tmp_path) as (folder, limit):
        result = infra(
            "verify", *common, *bucket, "--service", "events",
            env={**key, "TMPDIR": str(folder)}, preexec=limit,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    line = one_line(result)
    assert line.startswith("error: cannot fetch file://"), line
    assert "No space left on device" in line or "File too large" in line, line
    assert "point TMPDIR at a larger folder" in line, line
    listed = infra("list", *bucket, "--service", "events", env=key)
    assert "unverified" in listed.stdout, listed.stdout  # the machine's fault, not the backup's


def test_a_fifo_in_place_of_the_secrets_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A 0600 FIFO passed the mode check, and reading it blocked the command forever."""
    fifo = tmp_path / "dev.secrets.json"
    os.mkfifo(fifo, 0o600)
    result = infra("render", "--stack", "dev", "--out", str(tmp_path / "out"), "--secrets",
                   str(fifo))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"{fifo}: not a regular file" in one_line(result)


def test_render_replaces_a_planted_link_and_never_writes_through_it(tmp_path: Path) -> None:
    """Guard: the atomic rename replaces a symlink planted at an output path, never its target."""
    out, secrets = tmp_path / "out", tmp_path / "s.json"
    assert infra("render", "--stack", "dev", "--out", str(out), "--secrets",
                 str(secrets)).returncode == 0  # fmt: skip
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    planted = out / "services" / "users.env"
    planted.unlink()
    planted.symlink_to(victim)
    result = infra("render", "--stack", "dev", "--out", str(out), "--secrets", str(secrets))
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "untouched\n"
    assert not planted.is_symlink()
    assert planted.stat().st_mode & 0o777 == 0o600


def test_a_yaml_alias_bomb_in_a_stack_file_is_refused_at_once(tmp_path: Path) -> None:
    """Nine lines standing for 9**9 strings: ``plan`` (what a fork's pull request runs) walked
    them into JSON for the mocks until the runner gave out."""
    lines = [ONE_SERVICE, '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    lines += [f"  l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)]
    stack = tmp_path / "Pulumi.bomb.yaml"
    stack.write_text("".join(lines))
    result = infra("plan", "--stack", str(stack), timeout=30)
    assert result.returncode == 2, result.stderr
    assert one_line(result) == (
        "error: Pulumi.bomb.yaml: expands to more than 100000 values through YAML aliases (an "
        "alias bomb?); write the values out instead of nesting aliases"
    )


def test_backup_under_umask_000_keeps_every_bucket_folder_private(
    common: list[str], tmp_path: Path
) -> None:
    """A world-writable folder in a local bucket lets anyone plant or swap backups there."""
    bucket = tmp_path / "bucket"
    result = infra("backup", *common, "--bucket", f"file://{bucket}", "--service", "users", umask=0)
    assert result.returncode == 0, result.stderr
    modes = _modes(bucket)
    assert len(modes) > 3, modes
    for name, mode in modes.items():
        assert mode == (0o700 if (bucket / name).is_dir() else 0o600), (name, oct(mode))


def test_a_group_writable_folder_is_refused_unless_the_group_is_ours_alone(
    tmp_path: Path,
) -> None:
    """umask 002 with user-private groups (Debian's default for people) leaves checkouts 0775:
    still private. A folder another group may write is not."""
    ours = tmp_path / "ours"
    ours.mkdir()
    ours.chmod(0o770)
    os.chown(ours, -1, os.getgid())
    envs = '{"users": "X=1\\\\n"}'
    result = infra("envfiles", "--out", str(ours), stdin=envs)
    shared_group = bool(grp.getgrgid(os.getgid()).gr_mem)  # then it is not ours alone
    assert result.returncode == (1 if shared_group else 0), result.stderr
    if os.getuid() != 0:
        return
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o770)
    os.chown(theirs, -1, 65534)  # nogroup
    result = infra("envfiles", "--out", str(theirs), stdin=envs)
    assert result.returncode == 1, result.stderr
    assert f"{theirs}: mode 0770 lets other users replace the files" in one_line(result)


def test_a_full_tmpdir_while_backing_up_is_one_line_per_service(
    postgres: PostgresServer, common: list[str], dev_rendered: tuple[Path, Credentials],
    tmp_path: Path,
) -> None:  # fmt: skip
    """Guard (it held already): a directory-format dump into a full TMPDIR fails that service in
    one line. pg_dump's own message is lost: it goes to a file in the same full TMPDIR."""
    _, credentials = dev_rendered
    bulk = "CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 5000) g"
    seed(postgres, credentials, "authorization", bulk)
    bucket = ["--bucket", f"file://{tmp_path / 'bucket'}"]
    stack = tmp_path / "Pulumi.dev.yaml"  # the directory format dumps into TMPDIR first
    stack.write_text(
        (REPO / "Pulumi.dev.yaml")
        .read_text()
        .replace("  persistence:backup:\n", "  persistence:backup:\n    format: directory\n")
    )
    options = ["--stack", str(stack), *common[2:]]
    with tiny_tmpdir(tmp_path) as (folder, limit):
        result = infra(
            "backup", *options, *bucket, "--service", "authorization",
            env={"TMPDIR": str(folder)}, preexec=limit,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        "error: postgres/authorization: pg_dump failed: no message",
        "error: backup failed for authorization",
    ]
    assert not [p for p in (tmp_path / "bucket").rglob("*") if p.is_file()]  # nothing kept
