"""Per-service PostgreSQL provisioning inside Pulumi runs (a dynamic provider over the engine)."""

from infra.provisioning.resource import AdminEndpoint, ServiceDatabase

__all__ = ["AdminEndpoint", "ServiceDatabase"]
