"""Key Vault's 401 challenge: which tenant the vault trusts and which audience it wants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    """The parameters of a ``WWW-Authenticate: Bearer ...`` header."""

    authorization: str | None
    resource: str | None
    tenant_id: str | None

    @property
    def audience(self) -> str | None:
        """The resource without a trailing slash (or ``/.default`` of a v2 ``scope``)."""
        return self.resource.removesuffix("/.default").rstrip("/") if self.resource else None


def parse_challenge(header: str | None) -> Challenge | None:
    """The Bearer challenge in ``header``, or None when there is none."""
    if not header or not header.lstrip().lower().startswith("bearer"):
        return None
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(header)
    }
    authorization = params.get("authorization") or params.get("authorization_uri")
    resource = params.get("resource") or params.get("scope")
    if authorization is None and resource is None:
        return None
    return Challenge(authorization, resource, _tenant(authorization))


def _tenant(authorization: str | None) -> str | None:
    """The first path segment of the authority URL, e.g. ``https://login.windows.net/<tenant>``."""
    if not authorization:
        return None
    try:
        path = urlsplit(authorization).path
    except ValueError:
        return None
    segment = path.strip("/").split("/")[0]
    return segment or None
