"""The engine `make engine` built: the versions the SDKs ask for, the names the SDKs send."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from tests.e2e.stack import ENGINE_BIN, PLUGINS, REPO, missing_engine


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    missing = missing_engine()
    if missing:
        pytest.fail(f"the Pulumi engine is not built ({', '.join(missing)}): run `make engine`")


def _version(binary: str, *args: str) -> str:
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_the_cli_is_the_version_the_python_sdk_is_pinned_to() -> None:
    assert _version(str(ENGINE_BIN / "pulumi"), "version") == f"v{metadata.version('pulumi')}"


@pytest.mark.parametrize(
    ("plugin", "sdk"), [("docker", "pulumi-docker"), ("random", "pulumi-random")]
)
def test_each_plugin_reports_the_version_its_sdk_asks_for(plugin: str, sdk: str) -> None:
    reported = _version(str(PLUGINS / f"pulumi-resource-{plugin}"), "-version")
    assert reported.removeprefix("v") == metadata.version(sdk)


def test_the_plugins_accept_every_property_name_the_sdks_send() -> None:
    check = REPO / "tests" / "e2e" / "engine" / "check_sdk_names.py"
    completed = subprocess.run(
        [sys.executable, str(check)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
