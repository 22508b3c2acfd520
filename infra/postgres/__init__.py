"""Per-service PostgreSQL databases and least-privilege roles, converged over psycopg.

``converge`` takes the services' models and plans or applies the statements that bring each
service's database and its owner/migrator/app/readonly roles to the role model; ``plan`` and
``apply`` build those models from a stack's config and credentials. The CLI
(``python -m infra db``) calls ``plan``/``apply``, the Pulumi dynamic provider
(``infra.provisioning``) calls ``converge``.
"""

from infra.postgres.engine import ApplyReport, Converged, Plan, ServicePlan, apply, converge, plan

__all__ = ["ApplyReport", "Converged", "Plan", "ServicePlan", "apply", "converge", "plan"]
