"""``python -m infra CMD`` imports only the module that registers CMD (start-up time is part of
every command a user times, a restore's included): the table that says which module that is
must name every command, each with the module that really registers it."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from infra import cli
from infra.config.load import REPO_ROOT


def _registered(module: str) -> list[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(module).register(subparsers)
    return list(subparsers.choices)


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (found,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(found.choices)


def _printed(code: str) -> list[str]:
    """The words ``code`` prints, run in a fresh interpreter (nothing imported beforehand)."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_every_command_is_in_the_table_with_the_module_that_registers_it() -> None:
    found = {name: module for module in cli.COMMAND_MODULES for name in _registered(module)}
    assert found == cli.COMMANDS
    assert _commands(cli.build_parser()) == list(cli.COMMANDS)


def test_a_command_parses_with_only_its_own_module_and_help_lists_them_all() -> None:
    module = cli.COMMANDS["restore"]
    assert _commands(cli.build_parser("restore")) == _registered(module)
    assert _commands(cli.build_parser("--help")) == list(cli.COMMANDS)
    assert _commands(cli.build_parser("no-such-command")) == list(cli.COMMANDS)


def test_restore_does_not_import_what_it_never_uses() -> None:
    code = (
        "import sys\n"
        "from infra import cli\n"
        "cli.build_parser('restore')\n"
        "unused = ('redis', 'jinja2', 'croniter', 'infra.render')\n"
        "print(' '.join(m for m in unused if m in sys.modules))\n"
    )
    assert _printed(code) == []


def test_the_restore_path_loads_the_convergence_engine_only_to_converge() -> None:
    """Its imports (about 30 ms) load on a thread beside the restore's waits (``restore``
    starts that), not as part of every module that reaches the driver."""
    code = (
        "import sys\n"
        "import infra.backup.restore, infra.backup.verify, infra.postgres.driver\n"
        "print('infra.postgres.engine' in sys.modules)\n"
        "from infra.postgres import apply, ApplyReport\n"
        "print('infra.postgres.engine' in sys.modules, apply.__module__)\n"
    )
    assert _printed(code) == ["False", "True", "infra.postgres.engine"]


def test_the_package_names_are_the_engines_whichever_loads_first() -> None:
    """The names ``infra.postgres`` offers resolve to the engine's objects, also once the engine
    (and with it the submodule ``infra.postgres.converge``) loaded on its own first."""
    code = (
        "import importlib, infra.postgres as package\n"
        "engine = importlib.import_module('infra.postgres.engine')\n"
        "print(all(getattr(package, n) is getattr(engine, n) for n in package.__all__))\n"
        "print('converge' in package.__all__, callable(engine.converge))\n"
    )
    assert _printed(code) == ["True", "False", "True"]
