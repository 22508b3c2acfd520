"""What Redis 7.0 leaves behind, for the tests that prove Valkey 8.0 takes it over.

Dev ran Redis 7.0.15 (Debian 12's redis-server) until it moved to Valkey 8.0, the engine prod
runs. Its data volumes and its backups stay: a dev volume (multi-part AOF whose base is an
RDB version 10, plus ``dump.rdb``) must come up under Valkey with its keys, and a Redis 7.0
backup (the server's RDB and a service's ``DUMP`` payloads, both RDB version 10) must still
verify and restore. ``make`` has a real redis-server 7.0 (installed for the test of the move
from Memorystore for Redis too) write them, once per test session, from the rendered dev
redis.conf, into a directory (the ``redis_7_0_files`` fixture):

- ``volume/``: the data directory after a clean ``SHUTDOWN NOSAVE``. ``BASE_KEYS`` are in the
  AOF's base (the RDB preamble written by ``BGREWRITEAOF``), ``COUNTER`` and ``AFTER_SAVE`` in
  its incremental file; ``dump.rdb`` was saved before ``AFTER_SAVE`` was written, so only the
  AOF has it.
- ``backup/dump.rdb``: ``redis-cli --rdb``, as the tooling took server snapshots then.
- ``backup/users.keys.jsonl``: the ``users`` service's keys as the tooling's key backup writes
  them (``infra.backup.redis_keys``), taken from that server.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from infra import hashes, naming
from infra.backup.redis_keys import _lines
from infra.config import load_stack
from infra.credentials import Credentials
from infra.redis_client import RedisClient
from infra.render import redis as redis_render
from tests.conftest import render_to
from tests.servers.redis import RedisServer

VOLUME = "volume"  # the subdirectories ``make`` writes
BACKUP = "backup"
SERVICE = "users"
# Absolute expiry of the session key (2100-01-01 UTC): far enough for the fixture to stay live.
EXPIRES_AT_S = 4102444800
COUNTER = f"{SERVICE}:counter"  # 41, then INCR: only the incremental AOF has the 42
AFTER_SAVE = f"{SERVICE}:after-save"  # written after dump.rdb was saved: only the AOF has it
STREAM = f"{SERVICE}:events"
STREAM_IDS = ("1700000000000-0", "1700000000001-0")
# What a server that read the fixture must answer, key by key, through the service's login.
BASE_KEYS = {
    f"{SERVICE}:session:abc": "alice",
    f"{SERVICE}:cart:1": {"apples": "3", "pears": "1"},
    f"{SERVICE}:queue": ["a", "b", "c"],
    f"{SERVICE}:tags": {"red", "green"},
    f"{SERVICE}:scores": [("x", 1.5), ("y", 2.0)],
}
SESSION = f"{SERVICE}:session:abc"


def make(redis_server_binary: str, into: Path) -> None:
    """Have ``redis_server_binary`` (Redis 7.0) write the volume and the backup under ``into``."""
    version = subprocess.run(
        [redis_server_binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    if "v=7.0." not in version:
        raise SystemExit(f"{redis_server_binary} is not Redis 7.0: {version.strip()}")
    config = load_stack("dev")
    credentials = Credentials.generate().completed_for(config)
    with tempfile.TemporaryDirectory() as work:
        rendered = render_to(Path(work), config, credentials)
        # The admin only, as dev's container booted: today's service rules name commands
        # Redis 7.0 does not know (WAITAOF), and it refuses the whole file for them.
        admin = redis_render.admin_rule(hashes.redis_acl_hash(credentials.redis_admin))
        (rendered / "redis" / "users.acl").write_text(
            f"user {config.redis.admin_user} {admin}\n"
            f"user {redis_render.DEFAULT_USER} {redis_render.DEFAULT_USER_RULE}\n"
        )
        server = RedisServer(rendered, binary=redis_server_binary).start()
        try:
            _write(server, config.redis.admin_user, credentials, into)
        finally:
            server.cleanup()


def _write(server: RedisServer, admin_user: str, credentials: Credentials, into: Path) -> None:
    volume, backup = into / VOLUME, into / BACKUP
    admin = server.client(admin_user, credentials.redis_admin)
    admin.set(SESSION, "alice")
    admin.expireat(SESSION, EXPIRES_AT_S)
    admin.hset(f"{SERVICE}:cart:1", mapping={"apples": "3", "pears": "1"})
    admin.rpush(f"{SERVICE}:queue", "a", "b", "c")
    admin.sadd(f"{SERVICE}:tags", "red", "green")
    admin.zadd(f"{SERVICE}:scores", {"x": 1.5, "y": 2})
    for stream_id in STREAM_IDS:
        admin.xadd(STREAM, {"event": stream_id}, id=stream_id)
    admin.set(COUNTER, "41")
    admin.bgrewriteaof()  # the AOF's base: an RDB (version 10) holding every key so far
    _wait(lambda: admin.info("persistence")["aof_rewrite_in_progress"] == 0)
    admin.incr(COUNTER)
    admin.save()
    admin.set(AFTER_SAVE, "only in the AOF")

    backup.mkdir(parents=True)
    subprocess.run(
        ["redis-cli", "-p", str(server.port), "--user", admin_user, "--no-auth-warning",
         "--rdb", str(backup / "dump.rdb")],
        env={"REDISCLI_AUTH": credentials.redis_admin, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{server.port}"
    with RedisClient(url, admin_user, credentials.redis_admin) as client:
        counted = [0]
        lines = _lines(client, naming.redis_key_prefix(SERVICE).encode(), counted)
        (backup / f"{SERVICE}.keys.jsonl").write_bytes(b"".join(sorted(lines)))

    admin.shutdown(nosave=True)  # the AOF is flushed; dump.rdb stays without AFTER_SAVE
    admin.close()
    assert server.process is not None
    server.process.wait(timeout=30)
    server.process = None
    shutil.copytree(server.data, volume)
    for path in [volume, *volume.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _wait(done: Callable[[], bool]) -> None:
    for _ in range(100):
        if done():
            return
        time.sleep(0.1)
    raise SystemExit("BGREWRITEAOF did not finish in 10 s")
