"""The Pulumi program's entry point (``main: ./`` in Pulumi.yaml).

Thin on purpose: the resources are declared in ``infra.stack`` so tests can install Pulumi's
mocks first and import it. It sits at the project root because the engine starts dynamic
providers (``infra.provisioning``) in the program's directory and resolves the ``virtualenv``
option against it, while the language host resolves it against the project root: only a
program at the root gets the same ``.venv`` for both.
"""

from infra.stack import main

main()
