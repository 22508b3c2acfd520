"""Reading rendered ``key = value`` config files (postgresql.conf, rabbitmq.conf) in tests."""

from __future__ import annotations


def key_values(text: str) -> dict[str, str]:
    """Every ``key = value`` line, comments stripped; the last occurrence of a key wins."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            found[key] = value
    return found
