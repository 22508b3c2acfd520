"""Check that our bridged plugins accept every property name the installed PyPI SDKs send.

    python tests/e2e/engine/check_sdk_names.py   # after build-providers.sh, in the project venv

Our plugins' schemas are generated from the upstream Terraform providers, not copied from the
published pulumi-docker/pulumi-random, so a renamed field would silently not reach Docker. For
every ``*Args`` input class of ``pulumi_docker`` and ``pulumi_random`` this compares its wire
names (``@pulumi.getter(name=...)`` or the Python name) with the generated schema.json. Exit 1 on
a name the SDK sends that the schema lacks; extra schema names are only listed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMAS = {
    "pulumi_docker": HERE / "provider-docker/cmd/plugin/generated/schema.json",
    "pulumi_random": HERE / "provider-random/cmd/plugin/generated/schema.json",
}
# The SDK's native docker.Image (and its input types) is Go code of pulumi-docker, not a
# Terraform resource: our plugin does not provide it; the program uses RemoteImage + build.
NOT_BRIDGED = {"Image", "DockerBuild", "CacheFrom", "Registry"}

ARGS_CLASS = re.compile(r"^class (\w+)Args:\n(.*?)(?=^class |\Z)", re.S | re.M)
# A getter may carry further decorators (e.g. a deprecation) before its ``def``.
GETTER = re.compile(r'@pulumi\.getter(?:\(name="(\w+)"\))?\s*\n(?:\s*@.*\n)*\s*def (\w+)\(')


def sdk_args(package: str) -> dict[str, set[str]]:
    """Wire property names of every ``<Name>Args`` class of the installed SDK, by ``Name``."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{package} is not installed in this interpreter")
    names: dict[str, set[str]] = {}
    for source in Path(spec.origin).parent.glob("*.py"):
        for match in ARGS_CLASS.finditer(source.read_text()):
            props = {g.group(1) or g.group(2) for g in GETTER.finditer(match.group(2))}
            names[match.group(1)] = props
    return names


def schema_inputs(path: Path) -> dict[str, set[str]]:
    """Input property names of the schema's provider, resources and types, by type name."""
    schema = json.loads(path.read_text())
    names = {"Provider": set(schema["provider"].get("inputProperties", {}))}
    for token, resource in schema["resources"].items():
        names[token.split(":")[-1]] = set(resource.get("inputProperties", {}))
    for token, type_ in schema.get("types", {}).items():
        name = token.split(":")[-1]
        names.setdefault(name[0].upper() + name[1:], set(type_.get("properties", {})))
    return names


def main() -> int:
    problems = 0
    for package, schema_path in SCHEMAS.items():
        if not schema_path.exists():
            print(f"{schema_path} missing: run tests/e2e/engine/build-providers.sh first")
            return 1
        schema = schema_inputs(schema_path)
        for name, sent in sorted(sdk_args(package).items()):
            if name in NOT_BRIDGED:
                continue
            accepted = schema.get(name)
            if accepted is None:
                print(f"{package}.{name}Args: no such type in the plugin schema")
                problems += 1
            elif missing := sent - accepted:
                print(f"{package}.{name}Args: plugin schema lacks {sorted(missing)}")
                problems += 1
            elif extra := accepted - sent:
                print(f"{package}.{name}Args: (info) plugin also accepts {sorted(extra)}")
    print("OK" if problems == 0 else f"{problems} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
