"""The dev platform: Docker containers on this machine."""

from infra.platforms.docker.platform import DockerPlatform

__all__ = ["DockerPlatform"]
