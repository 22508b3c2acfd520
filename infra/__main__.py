"""``python -m infra``: the platform's command line."""

import sys

from infra.cli import main

sys.exit(main())
