"""The bootstrap stack under mocks: keyless CI access that cannot be used from elsewhere.

Checked on the declared resources, never on the module's own constants alone: the provider's
condition names the repository of the stack file, the deployer can be impersonated from the
deploy branch or the deploy environment only, the state bucket is private, versioned and
KMS-encrypted, and no stack declares any long-lived key.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.config import load_stack
from infra.platforms.bootstrap import github
from tests.unit.pulumi_mocks import Declared, ProgramRun, run_program

REPO = Path(__file__).resolve().parents[2]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO.glob("Pulumi.*.yaml")
)
POOL = "gcp:iam/workloadIdentityPool:WorkloadIdentityPool"
PROVIDER = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
ACCOUNT = "gcp:serviceaccount/account:Account"
ACCOUNT_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
BUCKET = "gcp:storage/bucket:Bucket"
KEY = "gcp:kms/cryptoKey:CryptoKey"
# Every resource type that is a long-lived credential: none may exist in any stack.
LONG_LIVED_KEYS = {
    "gcp:serviceaccount/key:Key",
    "gcp:storage/hmacKey:HmacKey",
    "gcp:apikeys/key:Key",
    "gcp:iam/workforcePoolProviderKey:WorkforcePoolProviderKey",
}


@pytest.fixture(scope="module")
def bootstrap() -> ProgramRun:
    return run_program("bootstrap")


@pytest.fixture(scope="module")
def repository() -> str:
    return load_stack("bootstrap").bootstrap.github_repository


def test_the_three_stacks_exist() -> None:
    assert STACKS == ["bootstrap", "dev", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_stack_declares_a_long_lived_key(stack: str) -> None:
    run = run_program(stack)
    assert run.declared, f"{stack}: nothing declared"
    found = [str(r) for r in run if r.type in LONG_LIVED_KEYS or "/key:Key" in r.type]
    assert found == [], f"{stack} declares long-lived keys: {found}"


def test_the_provider_admits_only_this_repositorys_tokens(
    bootstrap: ProgramRun, repository: str
) -> None:
    provider = bootstrap.one(PROVIDER)
    inputs = provider.inputs
    assert inputs["oidc"]["issuerUri"] == "https://token.actions.githubusercontent.com", provider
    condition = inputs["attributeCondition"]
    assert condition == f"assertion.repository == '{repository}'", f"{provider}: {condition}"
    assert inputs["attributeMapping"]["google.subject"] == "assertion.sub", provider


def _impersonators(run: ProgramRun, account_id: str) -> list[str]:
    """Who may act as the account: its workloadIdentityUser bindings' members."""
    run.one(ACCOUNT, f"{account_id}-account")
    email = f"{account_id}@example-project.iam.gserviceaccount.com"
    name = f"projects/example-project/serviceAccounts/{email}"
    bindings = [r for r in run.of_type(ACCOUNT_MEMBER) if r.inputs.get("serviceAccountId") == name]
    assert bindings, f"no binding on {name}"
    for binding in bindings:
        assert binding.inputs["role"] == "roles/iam.workloadIdentityUser", binding
    return [b.inputs["member"] for b in bindings]


def test_only_the_deploy_branch_or_environment_may_impersonate_the_deployer(
    bootstrap: ProgramRun, repository: str
) -> None:
    pool_name = "projects/123456789/locations/global/workloadIdentityPools/github"
    members = sorted(_impersonators(bootstrap, github.DEPLOY_ACCOUNT_ID))
    assert members == sorted(
        [
            f"principal://iam.googleapis.com/{pool_name}/subject/repo:{repository}:ref:refs/heads/main",
            f"principal://iam.googleapis.com/{pool_name}/subject/repo:{repository}:environment:prod",
        ]
    ), members
    for member in members:
        assert "principalSet" not in member, member
        assert "*" not in member, member


def test_the_preview_account_is_reachable_from_the_repository_only(
    bootstrap: ProgramRun, repository: str
) -> None:
    members = _impersonators(bootstrap, github.PREVIEW_ACCOUNT_ID)
    assert members == [
        "principalSet://iam.googleapis.com/projects/123456789/locations/global/"
        f"workloadIdentityPools/github/attribute.repository/{repository}"
    ]


def _account_member(run: ProgramRun, account_id: str) -> str:
    return f"serviceAccount:{account_id}@example-project.iam.gserviceaccount.com"


def test_the_deployer_holds_exactly_the_roles_the_readme_lists(bootstrap: ProgramRun) -> None:
    readme = (REPO / "README.md").read_text()
    paragraph = readme.split("The deploying identity needs", 1)[1].split("Keep prod state", 1)[0]
    listed = set(re.findall(r"roles/[A-Za-z0-9_.]+[A-Za-z0-9]", paragraph))
    member = _account_member(bootstrap, github.DEPLOY_ACCOUNT_ID)
    granted = {
        r.inputs["role"] for r in bootstrap.of_type(PROJECT_MEMBER) if r.inputs["member"] == member
    }
    assert granted == listed, (
        f"granted but not listed: {granted - listed}; listed but not granted: {listed - granted}"
    )


def test_the_preview_account_holds_no_write_role(bootstrap: ProgramRun) -> None:
    member = _account_member(bootstrap, github.PREVIEW_ACCOUNT_ID)
    roles = [r.inputs["role"] for r in bootstrap if r.inputs.get("member") == member]
    assert roles, "the preview account has no grants"
    writers = [
        role
        for role in roles
        if re.search(r"admin|editor|owner|writer|encrypter|creator", role, re.IGNORECASE)
        and role != github.STATE_LOCKER
    ]
    assert writers == [], f"preview may change things: {writers}"
    lockers = [
        r
        for r in bootstrap
        if r.inputs.get("member") == member and r.inputs["role"] == github.STATE_LOCKER
    ]
    for locker in lockers:
        assert ".pulumi/locks/" in locker.inputs["condition"]["expression"], locker


def test_the_state_bucket_is_private_versioned_and_kms_encrypted(bootstrap: ProgramRun) -> None:
    bucket: Declared = bootstrap.one(BUCKET, "state")
    inputs = bucket.inputs
    assert inputs["publicAccessPrevention"] == "enforced", bucket
    assert inputs["uniformBucketLevelAccess"] is True, bucket
    assert inputs["versioning"]["enabled"] is True, bucket
    assert inputs["encryption"]["defaultKmsKeyName"] == "state-objects-key-id", bucket
    assert inputs["forceDestroy"] is False, bucket
    public = [
        str(r) for r in bootstrap if r.inputs.get("member") in ("allUsers", "allAuthenticatedUsers")
    ]
    assert public == [], public


def test_the_storage_agent_may_use_the_object_key_before_the_bucket_exists(
    bootstrap: ProgramRun,
) -> None:
    grant = bootstrap.one(
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "state-objects-key-storage-agent"
    )
    assert grant.inputs["member"].endswith("@gs-project-accounts.iam.gserviceaccount.com"), grant
    assert grant.inputs["cryptoKeyId"] == "state-objects-key-id", grant


def test_keys_rotate(bootstrap: ProgramRun) -> None:
    for key in bootstrap.of_type(KEY):
        assert key.inputs["rotationPeriod"] == "7776000s", key


def test_the_bootstrap_stack_exports_what_the_workflows_need(bootstrap: ProgramRun) -> None:
    exports = bootstrap.exports
    assert exports["state_backend_url"] == "gs://example-project-pulumi-state"
    assert exports["secrets_provider"] == "gcpkms://pulumi-secrets-key-id"
    assert exports["workload_identity_provider"].endswith(
        "/workloadIdentityPools/github/providers/github-actions"
    )
    assert (
        exports["deploy_service_account"] == "pulumi-deploy@example-project.iam.gserviceaccount.com"
    )


def test_the_preview_accounts_own_role_only_reads(bootstrap: ProgramRun) -> None:
    role = bootstrap.one("gcp:projects/iAMCustomRole:IAMCustomRole", "preview-reader-role")
    verbs = {permission.rsplit(".", 1)[1] for permission in role.inputs["permissions"]}
    assert verbs <= {"get", "list", "access", "getAuthString"}, f"{role}: {verbs}"
    member = _account_member(bootstrap, github.PREVIEW_ACCOUNT_ID)
    binding = bootstrap.one(PROJECT_MEMBER, "preview-reader")
    assert binding.inputs["member"] == member, binding
    assert binding.inputs["role"] == f"projects/example-project/roles/{role.inputs['roleId']}"


def test_the_prod_backup_region_rule_does_not_apply_to_bootstrap() -> None:
    """The bootstrap stack keeps no backups: any gcp:region is fine, even prod's backup region."""
    from tests.unit.pulumi_mocks import stack_config

    config = stack_config("bootstrap")
    config["gcp:region"] = load_stack("prod").gcp.backup_region
    run = run_program("bootstrap", config)
    assert run.one(PROVIDER)
