"""What every prod module needs: the stack config, project, region and the parent component.

The main region only exists as the provider's ``gcp:region`` inside a Pulumi run, so the checks
that compare it with our own settings happen here, as one-line ``pulumi.RunError``s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra.config.model import StackConfig
from infra.platforms.gcp import names
from infra.platforms.pacing import Pacer

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


@dataclass(frozen=True)
class GcpContext:
    """The run's fixed facts; modules take this instead of reading Pulumi config themselves."""

    config: StackConfig
    project: str
    region: str
    stack: str
    parent: pulumi.Resource
    # Paces the per-service loops (see ``infra.platforms.pacing``); one per run.
    pacer: Pacer = field(default_factory=Pacer, compare=False)

    @property
    def zone(self) -> str:
        """Zone of the zonal resources (the RabbitMQ VM and its data disk)."""
        return f"{self.region}-{self.config.gcp.zone_suffix}"

    @property
    def prefix(self) -> str:
        """Prefix of every named GCP resource, e.g. ``persistence-prod``."""
        return f"{pulumi.get_project()}-{self.stack}"

    @property
    def labels(self) -> dict[str, str]:
        """Labels on everything that takes labels: who manages it and for which stack."""
        return {"managed-by": "pulumi", "project": pulumi.get_project(), "stack": self.stack}

    def name(self, base: str, rule: names.Rule = names.RESOURCE) -> str:
        """A project-level physical name, e.g. ``persistence-prod-pg`` (see ``names``)."""
        return names.scoped(self.prefix, base, rule)

    def account_id(self, base: str) -> str:
        """A service account id for this stack, e.g. ``prod-backup-job``."""
        return names.account_id(self.stack, base)

    def opts(
        self,
        *,
        protect: bool | None = None,
        depends_on: list[pulumi.Resource] | None = None,
        ignore_changes: list[str] | None = None,
        import_: str | None = None,
    ) -> pulumi.ResourceOptions:
        """Resource options with the platform component as parent (``import_``: the id of an
        existing object the resource adopts, see ``sql.adoption``)."""
        return pulumi.ResourceOptions(
            parent=self.parent,
            protect=protect,
            depends_on=depends_on,
            ignore_changes=ignore_changes,
            import_=import_,
        )

    def custom_role(
        self, resource_name: str, id_base: str, title: str, description: str, permissions: list[str]
    ) -> pulumi.Output[str]:
        """A project custom role for this stack; its full name, for an IAM binding.

        The name is built from the role's id, so a binding reads it before the role exists.
        """
        role = gcp.projects.IAMCustomRole(
            resource_name,
            project=self.project,
            role_id=names.scoped(id_base, self.stack.replace("-", "_"), names.CUSTOM_ROLE_ID),
            title=f"{title} ({self.stack})",
            description=description,
            permissions=permissions,
            stage="GA",
            opts=self.opts(),
        )
        return role.role_id.apply(lambda role_id: f"projects/{self.project}/roles/{role_id}")

    @property
    def maintenance_day_name(self) -> str:
        """``maintenance_day`` (1 = Monday) as the weekday name Memorystore expects."""
        return DAYS[self.config.gcp.maintenance_day - 1]


def context_for(config: StackConfig, parent: pulumi.Resource) -> GcpContext:
    """Read gcp:project and gcp:region and check them against the stack's own GCP settings."""
    provider = pulumi.Config("gcp")
    stack = pulumi.get_stack()
    project = provider.get("project")
    region = provider.get("region")
    pairs = (("gcp:project", project), ("gcp:region", region))
    missing = [key for key, value in pairs if not value]
    if missing or project is None or region is None:
        keys = " and ".join(missing)
        raise pulumi.RunError(
            f"Pulumi.{stack}.yaml: {keys} must be set, e.g. "
            f"`pulumi config set gcp:region europe-west1 --stack {stack}`"
        )
    gcp = config.gcp
    # Only the prod platform keeps backups; the bootstrap stack shares this context, not the rule.
    checked: tuple[tuple[str, str], ...] = ()
    if config.platform == "gcp":
        checked = (
            ("persistence:gcp.backup_region", gcp.backup_region),
            ("persistence:gcp.sql_backup_location", gcp.sql_backup_location),
        )
    for key, value in checked:
        if value == region:
            raise pulumi.RunError(
                f"Pulumi.{stack}.yaml: {key} ({value}) must differ from gcp:region ({region}) "
                "so backups survive the loss of the main region "
                "(e.g. europe-west4 for europe-west1)"
            )
    if config.platform == "gcp" and gcp.dr_replica_region == region:
        raise pulumi.RunError(
            f"Pulumi.{stack}.yaml: persistence:gcp.dr_replica_region ({region}) must differ from "
            f"gcp:region ({region}) so the disaster-recovery replica survives the loss of the "
            "main region (e.g. europe-west4 for europe-west1), or be empty for none"
        )
    if config.platform == "gcp" and gcp.sql_adopt_instance:
        _check_adoption(stack, gcp.sql_adopt_instance)
    if config.platform == "gcp" and not config.alerts.emails:  # bootstrap declares no alerts
        raise pulumi.RunError(
            f"Pulumi.{stack}.yaml: persistence:alerts.emails must list at least one address, "
            "so every alert policy reaches someone, e.g. `pulumi config set --path "
            f"'persistence:alerts.emails[0]' oncall@example.com --stack {stack}`"
        )
    return GcpContext(config=config, project=project, region=region, stack=stack, parent=parent)


def _check_adoption(stack: str, adopted: str) -> None:
    """The adopted instance is another stack's DR replica, by the names this project gives:
    ``<pulumi project>-<other stack>-pg-dr``, never this stack's own."""
    project = pulumi.get_project()
    own = names.scoped(f"{project}-{stack}", "pg-dr")
    if not adopted.startswith(f"{project}-") or adopted == own:
        raise pulumi.RunError(
            f"Pulumi.{stack}.yaml: persistence:gcp.sql_adopt_instance ({adopted}) must name "
            f"another stack's promoted disaster-recovery replica of Pulumi project {project}, "
            f"e.g. {project}-prod-pg-dr (not this stack's own, {own})"
        )
