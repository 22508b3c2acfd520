"""The one RabbitMQ management URL check, as both commands that take ``--management-url`` see it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra import cli
from infra.broker.management import ManagementApi, check_url
from infra.errors import UsageError

BAD_URLS = {
    "ftp://127.0.0.1:15672": "expected http(s)://HOST:PORT",
    "127.0.0.1:15672": "expected http(s)://HOST:PORT",
    "http://": "expected http(s)://HOST:PORT",
    "http://admin:hunter2@127.0.0.1:15672": "must not contain credentials",
    "http://admin@127.0.0.1:15672": "must not contain credentials",
}


@pytest.mark.parametrize("url", ["http://127.0.0.1:15672/", "https://rabbitmq.internal"])
def test_a_plain_http_url_is_accepted_without_its_trailing_slash(url: str) -> None:
    assert check_url(url) == url.rstrip("/")
    assert ManagementApi(url, "platform_admin", "pw").base_url == url.rstrip("/")


@pytest.mark.parametrize(("url", "message"), BAD_URLS.items())
def test_a_bad_url_is_refused_with_what_is_allowed(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)) as refused:
        check_url(url)
    assert "hunter2" not in str(refused.value)


def _command_lines(url: str, tmp_path: Path) -> dict[str, list[str]]:
    """``backup`` and ``broker prune``, each given ``url`` as its management URL."""
    stack = ["--stack", "dev", "--secrets", str(tmp_path / "dev.secrets.json")]
    return {
        "backup": [
            "backup",
            *stack,
            "--bucket",
            f"file://{tmp_path / 'bucket'}",
            "--admin-url",
            "postgresql://platform_admin@127.0.0.1:1/postgres",
            "--management-url",
            url,
        ],
        "broker prune": ["broker", "prune", *stack, "--management-url", url],
    }


@pytest.mark.parametrize("url", BAD_URLS)
def test_backup_and_broker_prune_refuse_a_bad_url_alike(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One check: the same URL gets the same one line and exit code from both, before any work."""
    seen: dict[str, tuple[int, str]] = {}
    for name, argv in _command_lines(url, tmp_path).items():
        code = cli.main(argv)
        seen[name] = (code, capsys.readouterr().err)
    assert seen["backup"] == seen["broker prune"]
    code, err = seen["backup"]
    assert code == UsageError.exit_code
    assert err.startswith("error: --management-url")
    assert err.count("\n") == 1
    assert not (tmp_path / "bucket").exists(), "nothing may be backed up before the refusal"
