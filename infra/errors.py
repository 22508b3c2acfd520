"""One exception tree, so the command line can turn any user mistake into one clean line.

Everything the platform raises on purpose derives from PlatformError. The CLI prints
``str(error)`` and exits with ``error.exit_code``; anything else is a bug and keeps its traceback.
"""


class PlatformError(Exception):
    """A problem the user can fix; never shown with a traceback."""

    exit_code = 1


class ConfigError(PlatformError):
    """The stack configuration is invalid; raised before anything is changed."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UsageError(PlatformError):
    """The command line itself is wrong (a missing file, an unknown service)."""

    exit_code = 2


class SecretsError(PlatformError):
    """The secrets file cannot be read, written or trusted."""


class FileError(PlatformError):
    """A file cannot be read or written: permissions, a missing directory, a full disk."""


class ServerError(PlatformError):
    """A server is down, refuses our login, or rejects a statement."""


class BackupError(PlatformError):
    """A backup is missing, incomplete, corrupt, or failed verification."""
