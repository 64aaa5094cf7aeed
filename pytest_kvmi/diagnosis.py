"""The diagnosis vocabulary: every outcome of talking to IMDS and Key Vault, with its cause and fix.

A :class:`Diagnosis` is built from a :class:`Code` and the :class:`Facts` known at that moment
(ids from the token, the 403 message, instance metadata). Remedies are templates: a fact that is
known is filled in, one that is not stays a visible ``<placeholder>``. No template ever refers to
a token or a secret value, so a rendered diagnosis is always safe to print.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Code(str, enum.Enum):
    """Diagnosis codes. The value is the stable name shown to users and written to reports."""

    OK = "ok"
    IMDS_UNREACHABLE = "ImdsUnreachable"
    IMDS_TIMEOUT = "ImdsTimeout"
    IMDS_PROXY_INTERCEPTED = "ImdsProxyIntercepted"
    METADATA_HEADER_REJECTED = "MetadataHeaderRejected"
    IDENTITY_NOT_FOUND = "IdentityNotFound"
    MULTIPLE_IDENTITIES = "MultipleIdentities"
    INVALID_RESOURCE = "InvalidResource"
    IMDS_THROTTLED = "ImdsThrottled"
    IMDS_UNAVAILABLE = "ImdsUnavailable"
    TOKEN_MALFORMED = "TokenMalformed"
    WRONG_AUDIENCE = "WrongAudience"
    TOKEN_EXPIRED = "TokenExpired"
    TENANT_MISMATCH = "TenantMismatch"
    IDENTITY_MISMATCH = "IdentityMismatch"
    VAULT_DNS_FAILURE = "VaultDnsFailure"
    VAULT_UNREACHABLE = "VaultUnreachable"
    VAULT_TIMEOUT = "VaultTimeout"
    VAULT_TLS_ERROR = "VaultTlsError"
    UNAUTHORIZED = "Unauthorized"
    INVALID_AUDIENCE = "InvalidAudience"
    INVALID_ISSUER = "InvalidIssuer"
    FORBIDDEN_BY_RBAC = "ForbiddenByRbac"
    FORBIDDEN_BY_POLICY = "ForbiddenByPolicy"
    FORBIDDEN_BY_FIREWALL = "ForbiddenByFirewall"
    FORBIDDEN_BY_CONNECTION = "ForbiddenByConnection"
    SECRET_DISABLED = "SecretDisabled"
    SECRET_NOT_FOUND = "SecretNotFound"
    VAULT_THROTTLED = "VaultThrottled"
    BAD_PARAMETER = "BadParameter"
    UNEXPECTED_RESPONSE = "UnexpectedResponse"
    INVALID_VAULT_NAME = "InvalidVaultName"
    INVALID_SECRET_NAME = "InvalidSecretName"
    UNSAFE_VAULT_URL = "UnsafeVaultUrl"
    INVALID_SETTING = "InvalidSetting"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Facts:
    """Identifiers and details known about one outcome; every field is safe to print."""

    status: int | None = None
    detail: str | None = None
    object_id: str | None = None
    client_id: str | None = None
    token_tenant_id: str | None = None
    vault_tenant_id: str | None = None
    vault_name: str | None = None
    vault_host: str | None = None
    vault_location: str | None = None
    vault_resource_id: str | None = None
    secret_name: str | None = None
    action: str | None = None
    client_address: str | None = None
    expected_audience: str | None = None
    found_audience: str | None = None
    imds_endpoint: str | None = None
    identity: str | None = None
    vm_name: str | None = None
    resource_group: str | None = None
    subscription_id: str | None = None
    vm_resource_id: str | None = None
    token_resource_id: str | None = None

    def merge(self, newer: Facts) -> Facts:
        """These facts, overridden by every field ``newer`` knows."""
        return dataclasses.replace(self, **newer.known())

    def known(self) -> dict[str, Any]:
        """The fields that are set (a shallow read: every field is a str or an int)."""
        return {name: value for name in _FACT_NAMES if (value := getattr(self, name)) is not None}


_FACT_NAMES = tuple(field.name for field in dataclasses.fields(Facts))


class _Template(dict[str, object]):
    """format_map mapping that leaves unknown facts as visible placeholders."""

    def __missing__(self, key: str) -> str:
        return f"<{key.replace('_', '-')}>"


@dataclass(frozen=True)
class _Entry:
    summary: str
    causes: tuple[str, ...]
    remedy: str


_PROPAGATION = (
    "Role assignment changes can take up to 10 minutes to reach Key Vault; "
    "re-run with --kv-wait=600 after a change."
)
_CHECK_IMDS = 'curl -s -H Metadata:true "{imds_endpoint}/metadata/instance?api-version=2021-02-01"'

_CATALOGUE: Mapping[Code, _Entry] = {
    Code.OK: _Entry("The services answered as expected.", (), ""),
    Code.IMDS_UNREACHABLE: _Entry(
        "Nothing accepted a connection at the IMDS endpoint {imds_endpoint} ({detail}).",
        (
            "This machine is not an Azure VM (or VM scale set instance).",
            "A host firewall, route or container network blocks 169.254.169.254.",
            "The IMDS endpoint setting points somewhere else.",
        ),
        "On an Azure VM, check the route to IMDS: " + _CHECK_IMDS + ". "
        "Off Azure, run the checks against the embedded emulator: pytest --kv-emulator.",
    ),
    Code.IMDS_TIMEOUT: _Entry(
        "The IMDS endpoint {imds_endpoint} accepted the connection but did not answer in time.",
        (
            "IMDS is overloaded or restarting.",
            "A network appliance or proxy holds the connection open without answering.",
        ),
        "Retry, or allow more time with --kv-timeout. Check: " + _CHECK_IMDS,
    ),
    Code.IMDS_PROXY_INTERCEPTED: _Entry(
        "Something that is not IMDS answered at {imds_endpoint} ({detail}).",
        (
            "A proxy or gateway intercepts traffic to 169.254.169.254 (IMDS behind a proxy is "
            "unsupported).",
            "The IMDS endpoint setting points at a web server that is not IMDS.",
        ),
        "Exempt IMDS from every proxy: NO_PROXY=169.254.169.254 for applications, and remove any "
        "transparent proxy rule for 169.254.169.254. Check: " + _CHECK_IMDS,
    ),
    Code.METADATA_HEADER_REJECTED: _Entry(
        "IMDS rejected the request: the 'Metadata: true' header did not reach it.",
        (
            "A proxy between the client and IMDS strips the Metadata header.",
            "The request was forwarded (X-Forwarded-For present), which IMDS refuses.",
        ),
        "Call IMDS directly, never through a proxy: set NO_PROXY=169.254.169.254.",
    ),
    Code.IDENTITY_NOT_FOUND: _Entry(
        "IMDS has no managed identity {identity} on this VM.",
        (
            "The VM has no system-assigned identity enabled.",
            "The user-assigned identity selected is not attached to this VM (or its id is wrong).",
        ),
        "Enable the system-assigned identity: az vm identity assign --name {vm_name} "
        "--resource-group {resource_group}; or attach a user-assigned one: az vm identity assign "
        "--name {vm_name} --resource-group {resource_group} --identities <identity-resource-id>.",
    ),
    Code.MULTIPLE_IDENTITIES: _Entry(
        "The VM has several user-assigned identities and no system-assigned one, and the request "
        "did not say which to use.",
        ("No client id, object id or resource id was given for the identity.",),
        "Select one: --kv-client-id=<identity-client-id> (list them with az vm identity show "
        "--name {vm_name} --resource-group {resource_group}).",
    ),
    Code.INVALID_RESOURCE: _Entry(
        "IMDS refused to issue a token for the requested resource ({detail}).",
        (
            "The resource (audience) is not an application known in the tenant, for example "
            "'https://vault.azure.net/' with a path, or another cloud's vault audience.",
            "The cloud setting does not match the VM's cloud.",
        ),
        "Request the vault's audience exactly ({expected_audience}) and set --kv-cloud to the "
        "VM's cloud.",
    ),
    Code.IMDS_THROTTLED: _Entry(
        "IMDS throttled the token requests (429) beyond the retry budget.",
        ("More than IMDS's limit (5 requests/s per VM) were sent, by this run or others.",),
        "Cache tokens instead of requesting one per call, lower concurrency, and retry later.",
    ),
    Code.IMDS_UNAVAILABLE: _Entry(
        "IMDS kept failing ({detail}) until the retry budget ran out.",
        (
            "IMDS is being updated (410 for up to 70 s) or is failing (5xx).",
            "The VM is starting or migrating.",
        ),
        "Retry in a minute, or give IMDS's update time to finish within the run: "
        "--kv-retry-budget=80 (IMDS answers 410 for up to 70 s while it updates).",
    ),
    Code.TOKEN_MALFORMED: _Entry(
        "IMDS answered 200 but the token could not be read ({detail}).",
        (
            "Something that is not IMDS answered with a JSON body.",
            "The token is not a JWT (or was truncated on the way).",
        ),
        "Check what answers at the IMDS endpoint: " + _CHECK_IMDS,
    ),
    Code.WRONG_AUDIENCE: _Entry(
        "The token's audience is {found_audience}, not the vault's {expected_audience}.",
        (
            "The token was requested for another resource (or with a trailing slash).",
            "The cloud setting does not match the vault's cloud.",
        ),
        "Request the token with resource={expected_audience} exactly (no trailing slash); Key "
        "Vault answers AKV10022 otherwise.",
    ),
    Code.TOKEN_EXPIRED: _Entry(
        "The token from IMDS has already expired.",
        ("The VM's clock is wrong.", "A cached token was reused past its expiry."),
        "Check the clock (timedatectl status) and request a fresh token.",
    ),
    Code.TENANT_MISMATCH: _Entry(
        "The identity belongs to tenant {token_tenant_id} but the vault trusts tenant "
        "{vault_tenant_id}; Key Vault would answer AKV10032.",
        (
            "The vault is in a subscription of another Entra tenant than the VM's.",
            "The subscription was moved to another tenant after the vault was created.",
        ),
        "Use a vault in tenant {token_tenant_id}, or move the vault's tenant: az keyvault update "
        "--name {vault_name} --set properties.tenantId={token_tenant_id} (then recreate the "
        "access grants).",
    ),
    Code.IDENTITY_MISMATCH: _Entry(
        "The token belongs to {token_resource_id}, not to this VM ({vm_resource_id}) nor to a "
        "user-assigned identity of its subscription.",
        (
            "Something in front of IMDS (a proxy, a pod identity endpoint) answers with another "
            "machine's or workload's identity.",
            "The selected user-assigned identity lives in another subscription than the VM.",
        ),
        "Select one of the VM's own identities (az vm identity show --name {vm_name} "
        "--resource-group {resource_group}) with --kv-client-id, or attach this one to the VM: "
        "az vm identity assign --name {vm_name} --resource-group {resource_group} --identities "
        "{token_resource_id}.",
    ),
    Code.VAULT_DNS_FAILURE: _Entry(
        "The vault's host name {vault_host} does not resolve.",
        (
            "The vault name is misspelt or the vault was deleted.",
            "The vault has a private endpoint and this network lacks the privatelink DNS zone.",
        ),
        "Check the name (az keyvault show --name {vault_name}) and resolution: nslookup "
        "{vault_host}.",
    ),
    Code.VAULT_UNREACHABLE: _Entry(
        "No connection could be made to {vault_host} ({detail}).",
        ("Outbound https (443) is blocked by an NSG, a firewall or a route.",),
        "Check the path: curl -sv https://{vault_host}/healthstatus",
    ),
    Code.VAULT_TIMEOUT: _Entry(
        "The vault {vault_host} did not answer in time.",
        ("The network drops or delays traffic to the vault.", "The vault is slow to answer."),
        "Retry, or allow more time with --kv-timeout; check curl -sv https://{vault_host}/healthstatus",
    ),
    Code.VAULT_TLS_ERROR: _Entry(
        "The TLS connection to {vault_host} failed ({detail}).",
        (
            "A TLS-inspecting proxy presents its own certificate.",
            "The CA bundle in use does not hold the issuing CA.",
        ),
        "Trust the right CA with --kv-ca-bundle=<pem file>, or exempt the vault from TLS "
        "inspection.",
    ),
    Code.UNAUTHORIZED: _Entry(
        "Key Vault did not accept the request's credentials (401).",
        ("No bearer token reached the vault (a proxy may strip Authorization).",),
        "Make sure the Authorization header reaches {vault_host} unchanged.",
    ),
    Code.INVALID_AUDIENCE: _Entry(
        "Key Vault refused the token's audience (AKV10022): expected {expected_audience}, found "
        "{found_audience}.",
        ("The token was requested for another resource or with a trailing slash.",),
        "Request the token with resource={expected_audience} exactly.",
    ),
    Code.INVALID_ISSUER: _Entry(
        "Key Vault refused the token's issuer (AKV10032): the token is from another tenant than "
        "the vault's.",
        ("The identity and the vault belong to different Entra tenants.",),
        "Use a vault in the identity's tenant, or an identity of the vault's tenant "
        "{vault_tenant_id}.",
    ),
    Code.FORBIDDEN_BY_RBAC: _Entry(
        "Key Vault refused: no role assignment lets principal {object_id} perform {action} on "
        "{vault_resource_id}.",
        (
            "The role assignment is missing, was removed, or is at a scope that does not cover "
            "this secret.",
            "The role assigned has no data action for secrets (Key Vault Contributor and Reader "
            "cannot read secret values).",
            "The assignment was made less than 10 minutes ago.",
        ),
        'az role assignment create --role "Key Vault Secrets User" --assignee-object-id '
        "{object_id} --assignee-principal-type ServicePrincipal --scope {vault_resource_id}. "
        + _PROPAGATION,
    ),
    Code.FORBIDDEN_BY_POLICY: _Entry(
        "Key Vault refused by access policy: principal {object_id} has no 'get' permission on "
        "secrets of {vault_name}. The vault uses access policies, not Azure RBAC.",
        (
            "The vault's permission model is 'Vault access policy', so role assignments are "
            "ignored.",
            "No access policy grants this identity secret permissions.",
        ),
        "Either grant the policy: az keyvault set-policy --name {vault_name} --object-id "
        "{object_id} --secret-permissions get; or move the vault to RBAC: az keyvault update "
        "--name {vault_name} --enable-rbac-authorization true, then assign roles.",
    ),
    Code.FORBIDDEN_BY_FIREWALL: _Entry(
        "The vault's firewall refused the client address {client_address}.",
        ("The vault's network rules do not allow this VM's address or subnet.",),
        "az keyvault network-rule add --name {vault_name} --ip-address {client_address}, or add "
        "the VM's subnet with --subnet <subnet-id> (needs the Microsoft.KeyVault service "
        "endpoint).",
    ),
    Code.FORBIDDEN_BY_CONNECTION: _Entry(
        "The vault refuses public network access and this request did not come through its "
        "private endpoint.",
        (
            "Public network access is disabled on the vault.",
            "DNS resolves the vault to its public address instead of the private endpoint.",
        ),
        "Reach the vault through its private endpoint (check nslookup {vault_host} gives a "
        "private address), or az keyvault update --name {vault_name} --public-network-access "
        "Enabled.",
    ),
    Code.SECRET_DISABLED: _Entry(
        "The secret {secret_name} is disabled, so Key Vault will not return its value.",
        ("The secret (or this version of it) was disabled.",),
        "az keyvault secret set-attributes --vault-name {vault_name} --name {secret_name} "
        "--enabled true",
    ),
    Code.SECRET_NOT_FOUND: _Entry(
        "The vault {vault_name} has no secret {secret_name}.",
        (
            "The secret name or version is misspelt.",
            "The secret was deleted (it may be recoverable).",
        ),
        "az keyvault secret list --vault-name {vault_name} --query [].name; for a deleted one: "
        "az keyvault secret recover --vault-name {vault_name} --name {secret_name}",
    ),
    Code.VAULT_THROTTLED: _Entry(
        "Key Vault throttled the requests (429) beyond the retry budget.",
        ("More than 4,000 requests per 10 s reached this vault.",),
        "Cache secrets in the application and spread reads over time; retry later.",
    ),
    Code.BAD_PARAMETER: _Entry(
        "Key Vault rejected a parameter of the request ({detail}).",
        ("The API version is not supported there (Azure Stack Hub supports older versions only).",),
        "Use a vault of the public, US Government or China cloud, or an api-version it lists.",
    ),
    Code.UNEXPECTED_RESPONSE: _Entry(
        "The service answered in a way this tool does not recognise ({detail}).",
        ("A proxy or gateway answered instead of the service.", "The service changed."),
        "Look at the raw answer with curl, and report it if it came from Azure itself.",
    ),
    Code.INVALID_VAULT_NAME: _Entry(
        "Invalid vault name {vault_name}: {detail}.",
        (),
        "Give the vault's name (as in az keyvault list --query [].name) or its https URL.",
    ),
    Code.INVALID_SECRET_NAME: _Entry(
        "Invalid secret name {secret_name}: {detail}.",
        (),
        "Give the secret's name as in az keyvault secret list --vault-name <vault>.",
    ),
    Code.UNSAFE_VAULT_URL: _Entry(
        "Refusing vault URL {vault_host}: {detail}. No token was requested or sent.",
        (),
        "Give the vault's own URL (https://<name>.<vault suffix of the cloud>) or a loopback "
        "emulator URL.",
    ),
    Code.INVALID_SETTING: _Entry("Invalid setting: {detail}.", (), "Correct the setting."),
}


@dataclass(frozen=True)
class Diagnosis:
    """One outcome: its code, what happened, why it usually happens, and the fix."""

    code: Code
    summary: str
    causes: tuple[str, ...]
    remedy: str
    facts: Facts

    @property
    def ok(self) -> bool:
        return self.code is Code.OK

    def render(self) -> str:
        """The multi-line text shown to a person: code, summary, causes, fix."""
        lines = [f"{self.code.value}: {self.summary}"]
        if self.causes:
            lines.append("Likely causes:")
            lines.extend(f"  - {cause}" for cause in self.causes)
        if self.remedy:
            lines.append(f"Fix: {self.remedy}")
        return "\n".join(lines)


def diagnose(code: Code, facts: Facts | None = None) -> Diagnosis:
    """Build the diagnosis for ``code`` with every known fact filled into its texts."""
    facts = facts or Facts()
    entry = _CATALOGUE[code]
    values = _Template(facts.known())
    return Diagnosis(
        code=code,
        summary=entry.summary.format_map(values),
        causes=tuple(cause.format_map(values) for cause in entry.causes),
        remedy=entry.remedy.format_map(values),
        facts=facts,
    )


class KvmiError(Exception):
    """A failure that carries its diagnosis; its message is the diagnosis' code and summary."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(f"{diagnosis.code.value}: {diagnosis.summary}")
        self.diagnosis = diagnosis

    @classmethod
    def of(cls, code: Code, facts: Facts | None = None) -> KvmiError:
        return cls(diagnose(code, facts))
