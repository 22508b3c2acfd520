"""What Redis 7.0 left behind, for the tests that prove Valkey 8.0 takes it over.

Dev ran Redis 7.0.15 (Debian 12's redis-server) until it moved to Valkey 8.0, the engine prod
runs. Its data volumes and its backups stay: a dev volume (multi-part AOF whose base is an
RDB version 10, plus ``dump.rdb``) must come up under Valkey with its keys, and a Redis 7.0
backup (the server's RDB and a service's ``DUMP`` payloads, both RDB version 10) must still
verify and restore. No Redis 7.0 is installed any more where the tests run, so its files were
made once, by a real redis-server 7.0.15 started from the rendered dev redis.conf, and are kept
in ``redis-7.0.15/`` next to this file:

- ``volume/``: the data directory after a clean ``SHUTDOWN NOSAVE``. ``BASE_KEYS`` are in the
  AOF's base (the RDB preamble written by ``BGREWRITEAOF``), ``COUNTER`` and ``AFTER_SAVE`` in
  its incremental file; ``dump.rdb`` was saved before ``AFTER_SAVE`` was written, so only the
  AOF has it.
- ``backup/dump.rdb``: ``redis-cli --rdb``, as the tooling took server snapshots then.
- ``backup/users.keys.jsonl``: the ``users`` service's keys as the tooling's key backup writes
  them (``infra.backup.redis_keys``), taken from that server.

To make them again (on a machine that still has Redis 7.0, e.g. Debian 12's redis-server)::

    python -m tests.integration.redis_7_0_fixtures /usr/bin/redis-server
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from infra import naming
from infra.backup.redis_keys import _lines
from infra.config import load_stack
from infra.credentials import Credentials
from infra.redis_client import RedisClient
from tests.conftest import render_to
from tests.servers.redis import RedisServer

FIXTURES = Path(__file__).resolve().parent / "redis-7.0.15"
VOLUME = FIXTURES / "volume"
BACKUP = FIXTURES / "backup"
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


def make(redis_server_binary: str) -> None:
    version = subprocess.run(
        [redis_server_binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    if "v=7.0." not in version:
        raise SystemExit(f"{redis_server_binary} is not Redis 7.0: {version.strip()}")
    config = load_stack("dev")
    credentials = Credentials.generate().completed_for(config)
    with tempfile.TemporaryDirectory() as work:
        rendered = render_to(Path(work), config, credentials)
        server = RedisServer(rendered, binary=redis_server_binary).start()
        try:
            _write(server, config.redis.admin_user, credentials)
        finally:
            server.cleanup()


def _write(server: RedisServer, admin_user: str, credentials: Credentials) -> None:
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

    if BACKUP.exists():
        shutil.rmtree(BACKUP)
    BACKUP.mkdir(parents=True)
    subprocess.run(
        ["redis-cli", "-p", str(server.port), "--user", admin_user, "--no-auth-warning",
         "--rdb", str(BACKUP / "dump.rdb")],
        env={"REDISCLI_AUTH": credentials.redis_admin, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{server.port}"
    with RedisClient(url, admin_user, credentials.redis_admin) as client:
        counted = [0]
        lines = _lines(client, naming.redis_key_prefix(SERVICE).encode(), counted)
        (BACKUP / f"{SERVICE}.keys.jsonl").write_bytes(b"".join(sorted(lines)))

    admin.shutdown(nosave=True)  # the AOF is flushed; dump.rdb stays without AFTER_SAVE
    admin.close()
    assert server.process is not None
    server.process.wait(timeout=30)
    server.process = None
    if VOLUME.exists():
        shutil.rmtree(VOLUME)
    shutil.copytree(server.data, VOLUME)
    for path in [VOLUME, *VOLUME.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _wait(done: Callable[[], bool]) -> None:
    for _ in range(100):
        if done():
            return
        time.sleep(0.1)
    raise SystemExit("BGREWRITEAOF did not finish in 10 s")


if __name__ == "__main__":
    make(sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/redis-server")
