"""Shared plumbing for launching server processes: free ports, service users, waiting."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


class ServerUnavailableError(RuntimeError):
    """A server binary is missing or the server did not come up; tests fail, never skip."""


# Ports handed out by free_port, reserved across processes (pytest-xdist workers, other runs of
# this suite on the machine) with a lock file each, held until the process that took it exits.
PORT_LOCKS = Path("/tmp/persistence-test-ports")  # fixed: not under TMPDIR, which may vary
_reserved: list[int] = []  # the lock files' descriptors: closing one would free its port


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and no other test process took.

    The kernel's answer to ``bind(port 0)`` is free only until someone binds it; a server may
    take seconds to (RabbitMQ), and with parallel workers another process could be handed the
    same port in between. So each port is also reserved with a lock file (``flock``), which the
    kernel releases when this process exits, however it exits.
    """
    PORT_LOCKS.mkdir(mode=0o1777, exist_ok=True)
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        lock = os.open(PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        _reserved.append(lock)
        return port
    raise ServerUnavailableError("no free TCP port on 127.0.0.1 after 200 tries")


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports, each reserved as ``free_port`` reserves
    one (a dev RabbitMQ cluster publishes node N on a configured port plus N - 1)."""
    for _ in range(200):
        first = free_port()
        locks = []
        for port in range(first + 1, first + count):
            if port > 65535 or not _bindable(port):
                break
            lock = os.open(PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                break
            locks.append(lock)
        else:
            _reserved.extend(locks)
            return first
        for lock in locks:
            os.close(lock)
    raise ServerUnavailableError(f"no {count} consecutive free TCP ports on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_binary(path: str, package: str) -> str:
    """The absolute path of a server binary, or a failure naming the package to install."""
    found = (
        shutil.which(path) if not os.path.isabs(path) else (path if os.path.exists(path) else None)
    )
    if not found:
        raise ServerUnavailableError(f"{path} not found: apt-get install -y {package}")
    return found


def as_user(user: str, argv: list[str]) -> list[str]:
    """Run ``argv`` as ``user`` when we are root (servers refuse or should not run as root).

    ``setpriv`` changes user and then execs ``argv``, so the process we start *is* the server:
    a signal reaches it directly and ``wait`` returns when it exits. ``runuser`` would stay in
    between as a parent that, on any signal, sends SIGTERM, sleeps 2 s and then SIGKILLs the
    server: every stop cost 2 s and a PostgreSQL shutdown could be cut off half-way.
    """
    if os.geteuid() == 0:
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
    return argv


def private_dir(prefix: str, owner: str) -> Path:
    """A fresh 0700 directory owned by ``owner`` (when we are root), outside pytest's 0700 tmp."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    return path


def chown_tree(path: Path, owner: str) -> None:
    """Give ``owner`` everything under ``path`` (no-op unless root)."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(owner)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    """Poll ``check`` until it is true; on timeout, fail with the server log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - the server is still starting; keep polling
            pass
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise ServerUnavailableError(f"{what} did not come up within {timeout:.0f}s{tail}")


def port_open(port: int) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(
    process: subprocess.Popen[bytes], timeout: float = 20, sig: int = signal.SIGTERM
) -> None:
    """``sig`` (SIGTERM unless the server has a better stop signal), then SIGKILL if the server
    does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
