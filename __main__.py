"""The Pulumi program's entry point (``main: ./`` in Pulumi.yaml).

Thin on purpose: the resources are declared in ``infra.stack`` so tests can install Pulumi's
mocks first and import it. It sits at the project root because the engine starts dynamic
providers (``infra.provisioning``) in the program's directory and resolves the ``virtualenv``
option against it, while the language host resolves it against the project root: only a
program at the root gets the same ``.venv`` for both.
"""

import pulumi

from infra.config import load_pulumi
from infra.errors import ConfigError
from infra.stack import build

try:
    config = load_pulumi()
except ConfigError as error:
    # One line per problem, no traceback: the engine shows this as the program's error.
    raise pulumi.RunError(str(error)) from None

for name, value in build(config).items():
    pulumi.export(name, value)
