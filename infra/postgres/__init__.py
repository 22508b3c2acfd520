"""Per-service PostgreSQL databases and least-privilege roles, converged over psycopg.

``plan`` shows and ``apply`` runs the statements that bring each service's database and its
owner/migrator/app/readonly roles to the role model; the CLI (``python -m infra db``) and the
Pulumi dynamic provider (``infra.provisioning``) both call these.
"""

from infra.postgres.engine import ApplyReport, Plan, ServicePlan, apply, plan

__all__ = ["ApplyReport", "Plan", "ServicePlan", "apply", "plan"]
