"""What to check and where: the vault, the secrets, the identity, the cloud, the endpoints.

Everything here is validated before any network call, and a bad value is a
:class:`SettingsError` whose message quotes the rule it broke. The URL rule is also the token
safety rule: a bearer token is only ever sent to a URL that :func:`parse_vault` accepted.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pytest_kvmi.diagnosis import Code, Facts, KvmiError, diagnose

DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
POD_IDENTITY_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRY_BUDGET = 10.0

VAULT_NAME_RULE = (
    "a vault name is 3-24 characters of letters, digits and hyphens, starts with a letter, "
    "ends with a letter or digit, and has no '--'"
)
SECRET_NAME_RULE = (
    "a secret name is 1-127 letters, digits and hyphens, optionally followed by '/' and a "
    "32-character hex version"
)
VAULT_URL_RULE = (
    "a token is only sent over https to a host under the cloud's vault suffix, or to a loopback "
    "host (127.0.0.0/8, ::1, localhost) over http or https"
)

_VAULT_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{1,22})[A-Za-z0-9]")
_SECRET_NAME = re.compile(r"[A-Za-z0-9-]{1,127}")
_SECRET_VERSION = re.compile(r"[0-9a-fA-F]{32}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_UAMI_RESOURCE_ID = re.compile(
    r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/"
    r"userassignedidentities/[^/]+",
    re.IGNORECASE,
)


class SettingsError(KvmiError, ValueError):
    """A setting that breaks a rule; raised before any network call."""


def _refuse(code: Code, facts: Facts) -> SettingsError:
    return SettingsError(diagnose(code, facts))


@dataclass(frozen=True)
class Cloud:
    """An Azure cloud as Key Vault sees it."""

    name: str
    vault_suffix: str
    az_environment: str

    @property
    def audience(self) -> str:
        """The token audience Key Vault accepts: never with a trailing slash (AKV10022)."""
        return f"https://{self.vault_suffix}"


PUBLIC = Cloud("public", "vault.azure.net", "AzurePublicCloud")
US_GOVERNMENT = Cloud("usgov", "vault.usgovcloudapi.net", "AzureUSGovernmentCloud")
CHINA = Cloud("china", "vault.azure.cn", "AzureChinaCloud")
CLOUDS: tuple[Cloud, ...] = (PUBLIC, US_GOVERNMENT, CHINA)

_CLOUD_ALIASES: Mapping[str, Cloud] = {
    alias.lower(): cloud
    for cloud, aliases in (
        (PUBLIC, ("public", "azurecloud", "AzurePublicCloud")),
        (US_GOVERNMENT, ("usgov", "usgovernment", "AzureUSGovernment", "AzureUSGovernmentCloud")),
        (CHINA, ("china", "AzureChinaCloud")),
    )
    for alias in aliases
}
CLOUD_RULE = "a cloud is one of: public, usgov, china (or their az names)"

KEY_VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
"""Key Vault's application id, which it also accepts as a token audience."""


def parse_cloud(value: str) -> Cloud:
    """The cloud named ``value`` (``public``, ``usgov``, ``china`` or an ``az cloud`` name)."""
    cloud = _CLOUD_ALIASES.get(value.strip().lower())
    if cloud is None:
        raise _refuse(Code.INVALID_SETTING, Facts(detail=f"cloud {value!r}: {CLOUD_RULE}"))
    return cloud


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: where emulators are reached."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_vault_name(name: str) -> str:
    if not _VAULT_NAME.fullmatch(name) or "--" in name:
        raise _refuse(Code.INVALID_VAULT_NAME, Facts(vault_name=repr(name), detail=VAULT_NAME_RULE))
    return name


@dataclass(frozen=True)
class Vault:
    """A vault that is safe to send a token to: its URL (no trailing slash) and cloud."""

    url: str
    host: str
    cloud: Cloud
    name: str | None

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def parse_vault(value: str, cloud: Cloud | None = None) -> Vault:
    """A vault from its name or URL; the cloud is inferred from the URL's suffix if not given."""
    value = value.strip()
    if "://" not in value:
        cloud = cloud or PUBLIC
        name = check_vault_name(value)
        host = f"{name}.{cloud.vault_suffix}"
        return Vault(url=f"https://{host}", host=host, cloud=cloud, name=name)
    return _parse_vault_url(value, cloud)


def _parse_vault_url(value: str, cloud: Cloud | None) -> Vault:
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as error:
        raise _unsafe(value, f"not a URL ({error})") from None
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _unsafe(value, "the URL must not carry credentials, a query or a fragment")
    if parts.path not in ("", "/"):
        raise _unsafe(value, "the URL must be the vault's root, with no path")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    url = f"{parts.scheme.lower()}://{netloc}"
    if is_loopback_host(host) and parts.scheme.lower() in ("http", "https"):
        return Vault(url=url, host=host, cloud=cloud or PUBLIC, name=None)
    if parts.scheme.lower() != "https":
        raise _unsafe(value, VAULT_URL_RULE)
    matching = [c for c in (cloud,) if c] or list(CLOUDS)
    for candidate in matching:
        suffix = "." + candidate.vault_suffix
        if host.lower().endswith(suffix):
            name = check_vault_name(host[: -len(suffix)])
            return Vault(url=url, host=host.lower(), cloud=candidate, name=name)
    raise _unsafe(value, VAULT_URL_RULE)


def _unsafe(value: str, detail: str) -> SettingsError:
    return _refuse(Code.UNSAFE_VAULT_URL, Facts(vault_host=repr(value), detail=detail))


@dataclass(frozen=True)
class SecretRef:
    """A secret by name, optionally pinned to one version."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version else self.name

    @property
    def path(self) -> str:
        return f"/secrets/{self}"


def parse_secret(value: str) -> SecretRef:
    """``name`` or ``name/version`` checked against Key Vault's rule."""
    name, _, version = value.strip().partition("/")
    valid = _SECRET_NAME.fullmatch(name) and (not version or _SECRET_VERSION.fullmatch(version))
    if not valid:
        raise _refuse(
            Code.INVALID_SECRET_NAME, Facts(secret_name=repr(value), detail=SECRET_NAME_RULE)
        )
    return SecretRef(name=name, version=version.lower() or None)


IDENTITY_RULE = (
    "select at most one user-assigned identity: a client id or object id (a GUID), or an "
    "identity resource id (/subscriptions/<sub>/resourcegroups/<rg>/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/<name>)"
)


@dataclass(frozen=True)
class IdentitySelector:
    """Which managed identity to ask IMDS for: the system-assigned one unless one id is set."""

    client_id: str | None = None
    object_id: str | None = None
    msi_res_id: str | None = None

    def __post_init__(self) -> None:
        chosen = [v for v in (self.client_id, self.object_id, self.msi_res_id) if v is not None]
        guids_ok = all(_GUID.fullmatch(v) for v in (self.client_id, self.object_id) if v)
        res_ok = self.msi_res_id is None or _UAMI_RESOURCE_ID.fullmatch(self.msi_res_id)
        if len(chosen) > 1 or not guids_ok or not res_ok:
            raise _refuse(Code.INVALID_SETTING, Facts(detail=f"identity: {IDENTITY_RULE}"))

    @property
    def is_system_assigned(self) -> bool:
        return self.client_id is None and self.object_id is None and self.msi_res_id is None

    def query(self) -> dict[str, str]:
        """The IMDS query parameters that select this identity."""
        pairs = (
            ("client_id", self.client_id),
            ("object_id", self.object_id),
            ("msi_res_id", self.msi_res_id),
        )
        return {key: value for key, value in pairs if value is not None}

    def report(self) -> dict[str, str | None]:
        """What is known of the identity before any token: for reports when none came."""
        return {
            "kind": "system-assigned" if self.is_system_assigned else "user-assigned",
            "client_id": self.client_id,
            "object_id": self.object_id,
            "tenant_id": None,
            "resource_id": self.msi_res_id,
        }

    def describe(self) -> str:
        pairs = self.query()
        if not pairs:
            return "(system-assigned)"
        (key, value) = next(iter(pairs.items()))
        return f"({key}={value})"


def resolve_imds_endpoint(explicit: str | None, env: Mapping[str, str]) -> str:
    """An explicit endpoint, else AZURE_POD_IDENTITY_AUTHORITY_HOST as azure-identity does,
    else IMDS's link-local address; always without a trailing slash."""
    endpoint = explicit or env.get(POD_IDENTITY_ENV) or DEFAULT_IMDS_ENDPOINT
    endpoint = endpoint.strip().rstrip("/")
    rule = (
        f"IMDS endpoint {endpoint!r}: an http(s) URL with no path, such as {DEFAULT_IMDS_ENDPOINT}"
    )
    try:
        parts = urlsplit(endpoint)
        valid = parts.port is None or parts.port > 0  # reading .port checks its range
    except ValueError:
        valid = False
    else:
        valid = valid and parts.scheme in ("http", "https") and bool(parts.hostname)
        valid = valid and not (parts.path or parts.query or parts.fragment or parts.username)
    if not valid:
        raise _refuse(Code.INVALID_SETTING, Facts(detail=rule))
    return endpoint


def check_seconds(name: str, value: float, *, minimum: float) -> float:
    """``value`` if it is a finite number of seconds no less than ``minimum``."""
    if not value >= minimum or value != value or value == float("inf"):
        rule = f"{name} {value!r}: a finite number of seconds >= {minimum:g}"
        raise _refuse(Code.INVALID_SETTING, Facts(detail=rule))
    return value


def check_ca_bundle(path: str) -> str:
    """``path`` if it is a PEM file of CA certificates that TLS can load."""
    try:
        if os.path.isfile(path):
            ssl.create_default_context(cafile=path)
            return path
    except (ssl.SSLError, OSError, ValueError):
        pass
    raise _refuse(Code.INVALID_SETTING, Facts(detail=f"CA bundle {path!r}: a readable PEM file"))


@dataclass(frozen=True)
class Settings:
    """Everything the clients need, validated; build it with :meth:`build`."""

    vault: Vault | None = None
    identity: IdentitySelector = field(default_factory=IdentitySelector)
    imds_endpoint: str = DEFAULT_IMDS_ENDPOINT
    timeout: float = DEFAULT_TIMEOUT
    retry_budget: float = DEFAULT_RETRY_BUDGET
    ca_bundle: str | None = None
    cloud: Cloud = PUBLIC

    @classmethod
    def build(
        cls,
        *,
        vault: str | None = None,
        cloud: str | None = None,
        client_id: str | None = None,
        object_id: str | None = None,
        msi_res_id: str | None = None,
        imds_endpoint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        ca_bundle: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Validate raw values (from options, environment or ini) into settings."""
        chosen_cloud = parse_cloud(cloud) if cloud else None
        parsed_vault = parse_vault(vault, chosen_cloud) if vault else None
        if ca_bundle is not None:
            check_ca_bundle(ca_bundle)
        return cls(
            vault=parsed_vault,
            identity=IdentitySelector(client_id, object_id, msi_res_id),
            imds_endpoint=resolve_imds_endpoint(imds_endpoint, os.environ if env is None else env),
            timeout=check_seconds("timeout", timeout, minimum=0.01),
            retry_budget=check_seconds("retry budget", retry_budget, minimum=0),
            ca_bundle=ca_bundle,
            cloud=parsed_vault.cloud if parsed_vault else chosen_cloud or PUBLIC,
        )
