"""The Pulumi program's entry point (``main: infra/program/`` in Pulumi.yaml).

Thin on purpose: the resources are declared in ``infra.stack`` so tests can install Pulumi's
mocks first and import it. Pulumi runs this file by path, so the repository root is put on
``sys.path`` to make the ``infra`` package importable.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
