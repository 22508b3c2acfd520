"""Physical names of the prod resources: scoped by stack, within each GCP namespace's limits.

Service account ids, secret ids, custom roles, buckets (globally!), instances, workflows, jobs
and log metrics live in project-wide namespaces. A second stack in the same project (the
README's ``prod-dr``) must never collide with prod, so every such name carries the stack; one
that would exceed its limit keeps a readable head and ends in a hash of the whole candidate,
so two long names still differ. Every module takes its names from here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi

HASH_CHARS = 6


@dataclass(frozen=True)
class Rule:
    """One GCP namespace's naming rule."""

    label: str
    min_length: int
    max_length: int
    pattern: re.Pattern[str]
    joiner: str = "-"


SERVICE_ACCOUNT_ID = Rule("service account id", 6, 30, re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$"))
SECRET_ID = Rule("Secret Manager secret id", 1, 255, re.compile(r"^[A-Za-z0-9_-]+$"))
BUCKET = Rule("bucket name", 3, 63, re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$"))
CUSTOM_ROLE_ID = Rule("custom role id", 3, 64, re.compile(r"^[A-Za-z0-9_.]+$"), joiner="_")
# Compute, Cloud SQL, Memorystore, Workflows, Scheduler, Artifact Registry, log metrics:
# RFC 1035 labels are the strictest rule among them.
RESOURCE = Rule("resource name", 1, 63, re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$"))
# Cloud Run names are shorter than RFC 1035 allows.
CLOUD_RUN = Rule("Cloud Run name", 1, 49, RESOURCE.pattern)


def fit(candidate: str, rule: Rule) -> str:
    """``candidate`` if it obeys ``rule``, else its head plus a hash of all of it."""
    if rule.min_length <= len(candidate) <= rule.max_length and rule.pattern.match(candidate):
        return candidate
    digest = hashlib.sha256(candidate.encode()).hexdigest()[:HASH_CHARS]
    head = candidate[: rule.max_length - HASH_CHARS - 1].rstrip("-_")
    name = f"{head}{rule.joiner}{digest}" if head else f"x{digest}"
    if not (rule.min_length <= len(name) <= rule.max_length and rule.pattern.match(name)):
        raise pulumi.RunError(
            f"cannot derive a valid {rule.label} from {candidate!r} "
            f"({rule.min_length}-{rule.max_length} characters, {rule.pattern.pattern}); "
            "use a shorter stack name, e.g. prod-dr"
        )
    return name


def scoped(scope: str, base: str, rule: Rule = RESOURCE) -> str:
    """``<scope>-<base>`` within ``rule``; ``scope`` carries the stack."""
    return fit(f"{scope}{rule.joiner}{base}", rule)


def account_id(stack: str, base: str) -> str:
    """A service account id scoped by the stack alone: 30 characters leave no room for more.

    (Two Pulumi projects with equal stack names in one GCP project would still collide; this
    repository is the only project that deploys into it.)
    """
    return scoped(stack, base, SERVICE_ACCOUNT_ID)


# Log-based metric names allow more, but PromQL sees them as ``logging_googleapis_com:user_<name>``
# and rewrites anything else to underscores: keep them to what PromQL spells the same.
LOG_METRIC = Rule("log-based metric name", 1, 100, re.compile(r"^[A-Za-z0-9_]+$"), joiner="_")
