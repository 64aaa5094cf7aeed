"""Azure clouds: host names and audiences that differ between public and sovereign clouds."""

from __future__ import annotations

from dataclasses import dataclass

KEY_VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
"""Key Vault's first-party application id: Key Vault accepts it as a token audience."""


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud, named by the ``azEnvironment`` value IMDS reports on its VMs."""

    name: str
    vault_suffix: str
    login_host: str
    sts_host: str
    management_host: str

    @property
    def vault_audience(self) -> str:
        """What Key Vault expects as ``aud`` (and names as ``resource`` in its challenge)."""
        return f"https://{self.vault_suffix}"

    def issuer(self, tenant_id: str) -> str:
        """The v1 token issuer for a tenant in this cloud."""
        return f"https://{self.sts_host}/{tenant_id}/"

    def v2_issuer(self, tenant_id: str) -> str:
        """The v2.0 token issuer: Entra's discovery document and Key Vault agree on it."""
        return f"https://{self.login_host}/{tenant_id}/v2.0"


PUBLIC = Cloud(
    "AzurePublicCloud",
    "vault.azure.net",
    "login.microsoftonline.com",
    "sts.windows.net",
    "management.azure.com",
)
US_GOVERNMENT = Cloud(
    "AzureUSGovernmentCloud",
    "vault.usgovcloudapi.net",
    "login.microsoftonline.us",
    "sts.windows.net",
    "management.usgovcloudapi.net",
)
CHINA = Cloud(
    "AzureChinaCloud",
    "vault.azure.cn",
    "login.chinacloudapi.cn",
    "sts.chinacloudapi.cn",
    "management.chinacloudapi.cn",
)
CLOUDS = (PUBLIC, US_GOVERNMENT, CHINA)

_ALIASES = {
    "azurecloud": PUBLIC,
    "public": PUBLIC,
    "azureusgovernment": US_GOVERNMENT,
    "usgovernment": US_GOVERNMENT,
    "usgov": US_GOVERNMENT,
    "china": CHINA,
    **{cloud.name.lower(): cloud for cloud in CLOUDS},
}

LOGIN_HOSTS = frozenset(
    {cloud.login_host for cloud in CLOUDS}
    | {"login.windows.net", "login.partner.microsoftonline.cn"}
)

_OTHER_KNOWN_RESOURCES = (
    "https://management.core.windows.net",
    "https://management.core.usgovcloudapi.net",
    "https://management.core.chinacloudapi.cn",
    "https://storage.azure.com",
    "https://graph.microsoft.com",
    "https://database.windows.net",
    "https://ossrdbms-aad.database.windows.net",
    "https://servicebus.azure.net",
    "https://eventhubs.azure.net",
    "https://monitor.azure.com",
    "https://cognitiveservices.azure.com",
    "https://api.loganalytics.io",
    "https://digitaltwins.azure.net",
    KEY_VAULT_APP_ID,
)
_KNOWN_RESOURCES = frozenset(
    [c.vault_audience for c in CLOUDS]
    + [f"https://{c.management_host}" for c in CLOUDS]
    + list(_OTHER_KNOWN_RESOURCES)
)


def cloud_named(name: str) -> Cloud:
    """The cloud for an ``azEnvironment`` name or a common alias (case-insensitive)."""
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        known = ", ".join(c.name for c in CLOUDS)
        raise ValueError(f"unknown cloud {name!r}; known: {known}") from None


def vault_name_from_host(host: str) -> tuple[str, Cloud] | None:
    """``("name", cloud)`` for a Key Vault host name such as ``name.vault.azure.net``."""
    for cloud in CLOUDS:
        suffix = "." + cloud.vault_suffix
        if host.endswith(suffix) and host.count(".") == cloud.vault_suffix.count(".") + 1:
            return host[: -len(suffix)], cloud
    return None


def is_known_resource(resource: str) -> bool:
    """Whether Entra would issue a token for this resource (IMDS answers AADSTS500011 if not).

    Matched without one trailing slash; a path is not accepted (``https://vault.azure.net/x`` is
    unknown, as captured). A vault's own URL (``https://<name>.vault.azure.net``) is accepted as
    real Entra does (it then fails at Key Vault with AKV10022).
    """
    bare = resource[:-1] if resource.endswith("/") else resource
    if bare.lower() in _KNOWN_RESOURCES:
        return True
    if not bare.startswith("https://") or "/" in bare[len("https://") :]:
        return False
    return vault_name_from_host(bare[len("https://") :].lower()) is not None
