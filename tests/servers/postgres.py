"""A real PostgreSQL 15 server started from the rendered postgresql.conf and pg_hba.conf.

The start-up mirrors the dev container's entrypoint: initialise the data directory, run the
rendered ``init-admin.sql`` as the superuser over a trusted socket, then restart with the
rendered configuration, so the non-superuser admin is the only way in over TCP.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.servers.process import (
    as_user,
    chown_tree,
    free_port,
    private_dir,
    require_binary,
    stop_process,
    wait_until,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"


def postgres_argv(
    data: Path, config_file: Path, hba_file: Path, host: str, port: int, socket_dir: Path
) -> list[str]:
    """The server started from a rendered config file, on the test's address and port."""
    return [
        pg_binary("postgres"),
        "-D", str(data),
        "-c", f"config_file={config_file}",
        "-c", f"hba_file={hba_file}",
        "-c", f"port={port}",
        "-c", f"listen_addresses={host}",
        "-c", f"unix_socket_directories={socket_dir}",
    ]  # fmt: skip


def launch(
    argv: list[str], log_file: Path, host: str, port: int, what: str
) -> subprocess.Popen[bytes]:
    """The server ``argv`` as the OS user, its output in ``log_file``, once it accepts
    connections on host:port (an error with its log if it exits first)."""
    log = log_file.open("ab")
    process = subprocess.Popen(as_user(OS_USER, argv), stdout=log, stderr=log)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log_file.read_text(errors='replace')[-2000:]}")
        return accepts_connections(host, port)

    wait_until(ready, 30, f"{what} on {host}:{port}", log_file)
    return process


def accepts_connections(host: str, port: int) -> bool:
    """``pg_isready``: the server at host:port accepts connections."""
    result = subprocess.run(
        [pg_binary("pg_isready"), "-h", host, "-p", str(port)], capture_output=True, check=False
    )
    return result.returncode == 0


def pg_binary(name: str) -> str:
    """A PostgreSQL 15 client or server binary from Debian's postgresql-15 package."""
    return require_binary(str(PG_BIN / name), "postgresql-15")


@dataclass
class PostgresServer:
    """One running server; ``admin_url`` logs in as the non-superuser admin."""

    rendered: Path
    admin_user: str
    admin_password: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.root = private_dir("pg-", OS_USER)
        self.data = self.root / "data"
        self.conf = self.root / "conf"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "server.log"
        self.conf.mkdir()
        self.socket_dir.mkdir()
        for name in ("postgresql.conf", "pg_hba.conf", "init-admin.sql"):
            shutil.copy(self.rendered / "postgres" / name, self.conf / name)
        (self.conf / "bootstrap_hba.conf").write_text("local all postgres trust\n")
        chown_tree(self.root, OS_USER)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, user: str, password: str, database: str = "postgres") -> str:
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(database, safe='')}"
        )

    @property
    def admin_url(self) -> str:
        return self.url(self.admin_user, self.admin_password)

    def initialise(self) -> PostgresServer:
        """initdb, create the admin from the rendered SQL, and start for real.

        The first two steps run once per process for each distinct set of rendered files and
        settings (see ``_template``): this server starts from a copy of that stopped data
        directory, the very bytes initdb and the script would produce again, at a fraction of
        the cost. The bootstrap's log is copied too, so ``log_text`` still covers it.
        """
        template = _template(self)
        subprocess.run(["cp", "-a", str(template.data), str(self.data)], check=True)
        with self.log_file.open("ab") as log:
            log.write(template.log_file.read_bytes())
        return self.start()

    def bootstrap(self) -> None:
        """initdb, then run the rendered init-admin.sql as the superuser over a trusted socket."""
        subprocess.run(
            as_user(
                OS_USER,
                [
                    pg_binary("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
            ),
            check=True,
            capture_output=True,
        )
        self.start(hba_file=self.conf / "bootstrap_hba.conf")
        self.superuser_psql_file(self.conf / "init-admin.sql")
        self.stop()

    def start(self, hba_file: Path | None = None) -> PostgresServer:
        """Start with the rendered config (or a bootstrap hba), plus any test settings."""
        argv = postgres_argv(
            self.data,
            self.conf / "postgresql.conf",
            hba_file or self.conf / "pg_hba.conf",
            self.host,
            self.port,
            self.socket_dir,
        )
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self.process = launch(argv, self.log_file, self.host, self.port, "PostgreSQL")
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT, as ``pg_ctl stop -m fast``): sessions are ended and a checkpoint
        written; SIGTERM's smart shutdown would wait for every client to leave first."""
        self._stop(signal.SIGINT)

    def _stop(self, sig: int) -> None:
        if self.process is not None:
            stop_process(self.process, sig=sig)
            self.process = None

    def superuser_psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the socket (the test's view of the catalog)."""
        return self._psql(database, "-A", "-t", "-c", sql).stdout.strip()

    def superuser_psql_file(self, path: Path, database: str = "postgres") -> None:
        """Run a SQL file as the superuser over the socket."""
        self._psql(database, "-q", "-f", str(path))

    def superuser_session(self, database: str, sql: str) -> subprocess.Popen[bytes]:
        """A superuser session left running on ``database`` (terminate it when done)."""
        process = subprocess.Popen(
            self._psql_argv(database, "-c", sql),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        query = (
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE a.datname = current_database() AND r.rolsuper AND a.pid <> pg_backend_pid()"
        )
        wait_until(lambda: self.superuser_psql(query, database) != "0", 10, "a superuser session")
        return process

    def _psql_argv(self, database: str, *args: str) -> list[str]:
        connection = ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres"]
        argv = [pg_binary("psql"), *connection, "-d", database, "-v", "ON_ERROR_STOP=1", "-X"]
        return as_user(OS_USER, [*argv, *args])

    def _psql(self, database: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._psql_argv(database, *args), capture_output=True, text=True, check=True
        )

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def cleanup(self) -> None:
        """Immediate shutdown (SIGQUIT): the data directory is deleted next, so no checkpoint."""
        self._stop(signal.SIGQUIT)
        shutil.rmtree(self.root, ignore_errors=True)


# Stopped, bootstrapped servers that ``initialise`` copies, one per distinct rendered postgres/
# files and settings, for the life of this process (each pytest-xdist worker has its own).
_templates: dict[str, PostgresServer] = {}


def _template(server: PostgresServer) -> PostgresServer:
    """The bootstrapped data directory ``server`` starts from, made on first use."""
    digest = hashlib.sha256(repr(sorted(server.settings.items())).encode())
    for name in ("postgresql.conf", "pg_hba.conf", "init-admin.sql"):
        digest.update((server.conf / name).read_bytes())
    key = digest.hexdigest()
    if key not in _templates:
        template = PostgresServer(
            server.rendered, server.admin_user, server.admin_password, dict(server.settings)
        )
        try:
            template.bootstrap()
        except BaseException:
            template.cleanup()
            raise
        _templates[key] = template
        if len(_templates) == 1:
            atexit.register(_remove_templates)
    return _templates[key]


def _remove_templates() -> None:
    for template in _templates.values():
        template.cleanup()
    _templates.clear()
