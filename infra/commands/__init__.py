"""One module per command group of ``python -m infra``."""
