"""Build server images from Debian's packages, for machines that cannot pull any image.

Used two ways: the end-to-end tests run these images, and ``make up`` falls back to them for a
stack whose configured images cannot be pulled (``--stack-file``, see :func:`ensure_stack_images`).

1. ``persistence-e2e/base:<suite>``: ``debootstrap --variant=minbase`` into a temporary
   directory, then ``docker import``, from the Debian mirror this machine's apt uses. Done once
   per Docker engine and suite: the tag existing is the cache.
2. ``persistence-e2e/{postgres:15,valkey:8.0,rabbitmq:3}`` on bookworm (Valkey from
   bookworm-backports, on the same mirror) and ``persistence-e2e/pgbouncer:1.24`` on trixie
   (bookworm's PgBouncer, 1.18, has no prepared statements in transaction mode): ``docker
   build`` of the folders next to this file, on their suite's base. Each image carries a label
   with the hash of its build context and of the base image's id; a build whose hash matches
   the image already tagged is skipped.

The contract the server images honour is README.md in this folder.

Usage (from the repository root, as root for the first debootstrap)::

    python -m infra.images.build [--only postgres redis ...] [--force] [--network host]
    python -m infra.images.build --stack-file Pulumi.dev.yaml   # what `make up` runs

Pytest fixtures call :func:`ensure_images`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.errors import PlatformError

HERE = Path(__file__).resolve().parent
SUITE = "bookworm"  # the servers' suite; PgBouncer's is newer (see SERVER_IMAGES)
# Where Debian's packages come from when this machine's apt names no Debian mirror.
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
APT_SOURCES = Path("/etc/apt")
HASH_LABEL = "persistence-e2e.build-hash"
# A pull that the network refuses fails fast; one that hangs must not hold `make up` for long.
PULL_TIMEOUT_S = 120
# Part of every image's hash: bump it when this module changes how an image is built.
RECIPE_VERSION = "1"
# `docker import` gives an image no environment; Dockerfiles extend PATH, so the base sets it.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Certificate authorities the building machine added locally (Debian's place for them). Builds
# reach PyPI through whatever the machine trusts: a TLS-inspecting egress proxy's CA must be
# trusted inside the images too, or pip cannot verify pypi.org.
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
# Serialises builds on one machine (two test sessions would otherwise debootstrap twice).
LOCK_FILE = Path(tempfile.gettempdir()) / "persistence-e2e-images.lock"


def base_tag(suite: str) -> str:
    """The base image every server image of ``suite`` is built FROM."""
    return f"persistence-e2e/base:{suite}"


@dataclass(frozen=True)
class ServerImage:
    """A server image built from the folder ``name`` next to this file, on ``suite``'s base."""

    name: str
    tag: str
    suite: str = SUITE

    @property
    def context(self) -> Path:
        return HERE / self.name


SERVER_IMAGES = (
    ServerImage("postgres", "persistence-e2e/postgres:15"),
    ServerImage("redis", "persistence-e2e/valkey:8.0"),  # the redis server role runs Valkey
    ServerImage("rabbitmq", "persistence-e2e/rabbitmq:3"),
    ServerImage("pgbouncer", "persistence-e2e/pgbouncer:1.24", suite="trixie"),
)
IMAGE_NAMES = tuple(image.name for image in SERVER_IMAGES)


class BuildError(Exception):
    """A failure the user can act on; its message is one line."""


def _say(message: str) -> None:
    print(f"[e2e-images] {message}", file=sys.stderr, flush=True)


def _require(tool: str, install_hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BuildError(f"{tool} not found on PATH: {install_hint}")
    return path


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def check_docker() -> None:
    """Raise BuildError unless the docker client exists and its engine answers."""
    _require("docker", "apt-get install -y docker.io")
    info = _run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if info.returncode != 0:
        raise BuildError(
            f"the Docker engine does not answer ({_last_line(info.stderr)}): start dockerd "
            "(tests/e2e/dockerd.py ensure_docker() does)"
        )


def image_id(tag: str) -> str | None:
    """The id of the local image ``tag``, or None when there is none."""
    found = _run(["docker", "image", "inspect", "--format", "{{.Id}}", tag])
    return found.stdout.strip() if found.returncode == 0 else None


def _image_label(tag: str, label: str) -> str | None:
    found = _run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', tag]
    )
    return found.stdout.strip() if found.returncode == 0 else None


def context_hash(image: ServerImage, base_id: str) -> str:
    """Hash of everything a build of ``image`` depends on: its folder, the base, the recipe."""
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, base_id):
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in image.context.rglob("*") if p.is_file()):
        relative = path.relative_to(image.context).as_posix()
        # The executable bit matters: COPY keeps it, and an entrypoint needs it.
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{relative}\0{executable}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@contextmanager
def _machine_lock() -> Iterator[None]:
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unmount_below(root: Path) -> None:
    """Unmount what a failed debootstrap left mounted in ``root`` (proc, sys), deepest first."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


def _apt_uris(apt_dir: Path) -> list[str]:
    """Every ``deb`` URI this machine's apt is configured with, in apt's reading order."""
    files = [apt_dir / "sources.list"]
    for pattern in ("*.list", "*.sources"):
        files += sorted((apt_dir / "sources.list.d").glob(pattern))
    uris: list[str] = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if path.suffix == ".sources" and words[:1] == ["URIs:"]:
                uris += words[1:]
            elif words[:1] == ["deb"]:
                # deb [options] URI suite components
                rest = words[1:]
                if rest and rest[0].startswith("["):
                    while rest and not rest[0].endswith("]"):
                        rest = rest[1:]
                    rest = rest[1:]
                uris += rest[:1]
    return uris


def debian_mirrors(apt_dir: Path = APT_SOURCES) -> tuple[str, str]:
    """The Debian archive and security mirrors this machine's apt uses (a company mirror is
    reachable where deb.debian.org may not be); Debian's own when apt names neither."""
    uris = [uri.rstrip("/") for uri in _apt_uris(apt_dir)]
    security = next((u for u in uris if u.endswith("/debian-security")), None)
    archive = next((u for u in uris if u.endswith("/debian")), None)
    return archive or DEFAULT_MIRROR, security or DEFAULT_SECURITY_MIRROR


def _prepare_rootfs(rootfs: Path, suite: str, mirror: str, security_mirror: str) -> None:
    """What a container base needs beyond debootstrap's output."""
    apt_sources = rootfs / "etc/apt/sources.list"
    # Updates and security fixes too, from the mirrors this machine's apt uses.
    apt_sources.write_text(
        f"deb {mirror} {suite} main\n"
        f"deb {mirror} {suite}-updates main\n"
        f"deb {security_mirror} {suite}-security main\n"
    )
    # No init system runs in a container: package scripts must not try to start services.
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# Containers start their own servers.\nexit 101\n")
    policy.chmod(0o755)
    _trust_local_cas(rootfs)
    # The downloaded packages and the host's resolver settings do not belong in the image
    # (Docker provides /etc/resolv.conf to every container).
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    (rootfs / "etc/resolv.conf").write_text("")


def _trust_local_cas(rootfs: Path) -> None:
    """Trust the CAs this machine added locally, as the machine itself does (see LOCAL_CA_DIR)."""
    certificates = sorted(LOCAL_CA_DIR.rglob("*.crt")) if LOCAL_CA_DIR.is_dir() else []
    if not certificates:
        return
    target = rootfs / LOCAL_CA_DIR.relative_to("/")
    for certificate in certificates:
        destination = target / certificate.relative_to(LOCAL_CA_DIR)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(certificate, destination)
    updated = _run(["chroot", str(rootfs), "update-ca-certificates"])
    if updated.returncode != 0:
        raise BuildError(f"update-ca-certificates in the base failed: {_last_line(updated.stderr)}")
    _say(f"base image: trusts {len(certificates)} local CA(s) from {LOCAL_CA_DIR}")


def ensure_base(suite: str = SUITE) -> str:
    """Create ``suite``'s base image unless its tag exists; return its id."""
    tag = base_tag(suite)
    existing = image_id(tag)
    if existing is not None:
        _say(f"{tag}: present, kept")
        return existing
    debootstrap = _require("debootstrap", "apt-get install -y debootstrap")
    if os.geteuid() != 0:
        raise BuildError(f"{tag} is missing and debootstrap needs root: run this as root once")
    mirror, security_mirror = debian_mirrors()
    work = Path(tempfile.mkdtemp(prefix="persistence-e2e-rootfs-"))
    rootfs = work / "rootfs"  # debootstrap creates it 0755: the image's / must not be 0700
    log = work.with_suffix(".debootstrap.log")
    try:
        started = time.monotonic()
        _say(f"{tag}: debootstrap {suite} from {mirror} (log: {log})")
        with log.open("w") as out:
            done = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=ca-certificates",  # images fetch from PyPI over TLS
                    suite,
                    str(rootfs),
                    mirror,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise BuildError(
                f"debootstrap failed (exit {done.returncode}): "
                f"{_last_line(log.read_text(errors='replace'))} (log: {log})"
            )
        _say(f"{tag}: debootstrap took {time.monotonic() - started:.1f}s")
        _prepare_rootfs(rootfs, suite, mirror, security_mirror)
        started = time.monotonic()
        _import(rootfs, tag)
        _say(f"{tag}: docker import took {time.monotonic() - started:.1f}s")
        log.unlink()
    finally:
        _unmount_below(rootfs)
        shutil.rmtree(work, ignore_errors=True)
    created = image_id(tag)
    if created is None:
        raise BuildError(f"docker import reported success but {tag} does not exist")
    return created


def _import(rootfs: Path, tag: str) -> None:
    # --numeric-owner: the image's files keep the rootfs's ids, whatever the host's names are.
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
        stdout=subprocess.PIPE,
    )
    imported = subprocess.run(
        [
            "docker",
            "import",
            "--change",
            f"ENV PATH={BASE_PATH}",
            "--change",
            'CMD ["bash"]',
            "-",
            tag,
        ],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0:
        raise BuildError(f"tar of {rootfs} failed (exit {tar.returncode})")
    if imported.returncode != 0:
        raise BuildError(f"docker import failed: {_last_line(imported.stderr)}")


def ensure_server(
    image: ServerImage,
    base_id: str,
    *,
    force: bool = False,
    network: str | None = None,
    verbose: bool = False,
) -> str:
    """Build ``image`` unless the image tagged with its name has the same hash; return its id."""
    wanted = context_hash(image, base_id)
    if not force and _image_label(image.tag, HASH_LABEL) == wanted:
        _say(f"{image.tag}: up to date, kept")
        found = image_id(image.tag)
        assert found is not None
        return found
    argv = [
        "docker",
        "build",
        "--build-arg",
        f"BASE_IMAGE={base_tag(image.suite)}",
        "--label",
        f"{HASH_LABEL}={wanted}",
        "--tag",
        image.tag,
        "--force-rm",
    ]
    if network:
        argv += ["--network", network]
    argv.append(str(image.context))
    _say(f"{image.tag}: building from {image.context}")
    started = time.monotonic()
    if verbose:
        returncode, output = subprocess.run(argv, check=False).returncode, ""
    else:
        captured = _run(argv)
        returncode, output = captured.returncode, captured.stdout + captured.stderr
    if returncode != 0:
        log = Path(tempfile.mkstemp(prefix=f"persistence-e2e-{image.name}-", suffix=".log")[1])
        log.write_text(output)
        where = f" (log: {log})" if output else ""
        raise BuildError(
            f"docker build of {image.tag} failed (exit {returncode}): {_last_line(output)}{where}"
        )
    _say(f"{image.tag}: built in {time.monotonic() - started:.1f}s")
    found = image_id(image.tag)
    if found is None:
        raise BuildError(f"docker build reported success but {image.tag} does not exist")
    return found


def ensure_images(
    names: Sequence[str] = IMAGE_NAMES,
    *,
    force: bool = False,
    network: str | None = None,
    verbose: bool = False,
) -> dict[str, str]:
    """Make sure the base and the named server images exist and are current; tag -> image id.

    ``network`` is passed to ``docker build --network`` (``host`` when the default bridge cannot
    reach the Debian mirror); None uses the ``E2E_BUILD_NETWORK`` environment variable, if set.
    """
    unknown = sorted(set(names) - set(IMAGE_NAMES))
    if unknown:
        allowed = ", ".join(IMAGE_NAMES)
        raise BuildError(f"unknown image {', '.join(unknown)}: choose from {allowed}")
    check_docker()
    network = network or os.environ.get("E2E_BUILD_NETWORK") or None
    with _machine_lock():
        started = time.monotonic()
        wanted = [image for image in SERVER_IMAGES if image.name in names]
        ids: dict[str, str] = {}
        for suite in dict.fromkeys(image.suite for image in wanted) or [SUITE]:
            ids[base_tag(suite)] = ensure_base(suite)
        for image in wanted:
            ids[image.tag] = ensure_server(
                image, ids[base_tag(image.suite)], force=force, network=network, verbose=verbose
            )
        _say(f"all done in {time.monotonic() - started:.1f}s")
    return ids


def _pull(tag: str) -> bool:
    """True when ``docker pull`` fetched ``tag``."""
    try:
        pulled = subprocess.run(
            ["docker", "pull", "--quiet", tag],
            capture_output=True,
            text=True,
            timeout=PULL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _say(f"{tag}: docker pull did not answer in {PULL_TIMEOUT_S}s")
        return False
    if pulled.returncode != 0:
        _say(f"{tag}: cannot be pulled ({_last_line(pulled.stderr)})")
    return pulled.returncode == 0


# Images named under this prefix are this project's own, built here from Debian's packages: they
# are never pulled (a registry's image of that name would be someone else's).
OWN_IMAGE_PREFIX = "persistence/"
# Which stand-in builds each server's image (the backup image is built FROM PostgreSQL's).
STAND_INS = {"postgres": "postgres", "redis": "redis", "rabbitmq": "rabbitmq",
             "backup": "postgres", "pooler": "pgbouncer"}  # fmt: skip


def stack_images(stack_file: Path) -> dict[str, str]:
    """Server name -> the image the docker stack in ``stack_file`` runs (nothing for others).

    The backup image is built FROM the configured ``backup`` base, PostgreSQL's client tools.
    The pooler's only when the stack runs one.
    """
    from infra.config.load import load_file

    config = load_file(stack_file)
    if config.platform != "docker":
        return {}
    images = config.docker.images
    wanted = {
        "postgres": images.postgres,
        "redis": images.redis,
        "rabbitmq": images.rabbitmq,
        "backup": images.backup,
    }
    if config.postgres.pooler.enabled:
        wanted["pooler"] = images.pooler
    return wanted


def ensure_stack_images(stack_file: Path, *, network: str | None = None) -> dict[str, str]:
    """Every image the stack runs, present locally: configured tag -> where it came from.

    An image that exists locally is used as it is, one that can be pulled is pulled; for the
    rest, the Debian-built stand-in is built and tagged with the configured name. It carries
    the ``persistence-e2e.build-hash`` label; ``docker rmi`` the tag to pull the real image
    later. This project's own images (``persistence/...``) are built, never pulled, and rebuilt
    when their recipe changes. The stack file is never edited: plain ``pulumi`` commands see
    what ``make up`` saw.
    """
    wanted = stack_images(stack_file)
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for server, tag in wanted.items():
        if tag in found or tag in missing:
            continue  # the backup image's base is often the postgres image
        if tag.startswith(OWN_IMAGE_PREFIX):
            missing[tag] = STAND_INS[server]
        elif image_id(tag) is not None:
            found[tag] = "local"
        elif _pull(tag):
            found[tag] = "pulled"
        else:
            missing[tag] = STAND_INS[server]
    if missing:
        check_docker()
        ids = ensure_images(sorted(set(missing.values())), network=network)
        built_tags = {image.name: image.tag for image in SERVER_IMAGES}
        for tag, name in missing.items():
            built = ids[built_tags[name]]
            if image_id(tag) != built:
                _tag_stand_in(built, tag)
            found[tag] = "built" if tag.startswith(OWN_IMAGE_PREFIX) else "stand-in"
            _say(f"{tag}: {found[tag]} from Debian's packages ({built_tags[name]})")
    return found


def _tag_stand_in(image: str, tag: str) -> None:
    """Tag the stand-in ``image`` as ``tag`` (it keeps its build-hash label: a stand-in)."""
    tagged = _run(["docker", "tag", image, tag])
    if tagged.returncode != 0:
        raise BuildError(f"docker tag {tag} failed: {_last_line(tagged.stderr)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.images.build",
        description="Build the Debian base and the server images the end-to-end tests run.",
    )
    parser.add_argument(
        "--only", nargs="+", choices=IMAGE_NAMES, default=IMAGE_NAMES, metavar="NAME",
        help=f"server images to build (default: all of {', '.join(IMAGE_NAMES)})",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument(
        "--network", help="docker build --network (e.g. host); default: $E2E_BUILD_NETWORK"
    )
    parser.add_argument("--quiet", action="store_true", help="show build output only on failure")
    parser.add_argument(
        "--stack-file",
        type=Path,
        help="make the images this stack file runs available: local, pulled, else stand-ins",
    )
    args = parser.parse_args(argv)
    try:
        if args.stack_file is not None:
            for tag, source in ensure_stack_images(args.stack_file, network=args.network).items():
                print(f"{tag} {source}")
            return 0
        ids = ensure_images(
            args.only, force=args.force, network=args.network, verbose=not args.quiet
        )
    except (BuildError, PlatformError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for tag, ident in ids.items():
        print(f"{tag} {ident}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
