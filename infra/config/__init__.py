"""The typed, validated stack configuration."""

from infra.config.load import load_file, load_pulumi, load_stack, stack_file
from infra.config.model import ServiceSpec, StackConfig

__all__ = ["ServiceSpec", "StackConfig", "load_file", "load_pulumi", "load_stack", "stack_file"]
