"""One folder per platform: ``docker`` (dev) and ``gcp`` (prod), each one ComponentResource."""
