"""Azure's built-in Key Vault roles, with their real ids and data actions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
READ_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
SET_SECRET = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
DELETE_SECRET = "Microsoft.KeyVault/vaults/secrets/delete"
UPDATE_SECRET = "Microsoft.KeyVault/vaults/secrets/update/action"


@dataclass(frozen=True)
class Role:
    """A role definition: only its data actions matter to the data plane."""

    id: str
    name: str
    data_actions: tuple[str, ...]
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = tuple(
            re.compile(".*".join(map(re.escape, action.split("*"))), re.IGNORECASE)
            for action in self.data_actions
        )
        object.__setattr__(self, "_patterns", patterns)

    def permits(self, data_action: str) -> bool:
        """Whether one of the role's data actions (``*`` is a wildcard) covers ``data_action``."""
        return any(p.fullmatch(data_action) for p in self._patterns)


SECRETS_USER = Role(
    "4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User", (GET_SECRET, READ_METADATA)
)
SECRETS_OFFICER = Role(
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Secrets Officer",
    ("Microsoft.KeyVault/vaults/secrets/*",),
)
ADMINISTRATOR = Role(
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Administrator",
    ("Microsoft.KeyVault/vaults/*",),
)
READER = Role(
    "21090545-7ca7-4776-b22c-e363652d74d2",
    "Key Vault Reader",
    ("Microsoft.KeyVault/vaults/*/read", READ_METADATA),
)
CONTRIBUTOR = Role("f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor", ())
"""Management plane only: grants no data action, so it reads no secret."""

BUILT_IN_ROLES = (SECRETS_USER, SECRETS_OFFICER, ADMINISTRATOR, READER, CONTRIBUTOR)
_BY_KEY = {key.lower(): role for role in BUILT_IN_ROLES for key in (role.id, role.name)}


def role_named(name_or_id: str | Role) -> Role:
    """A built-in role by its name or id (case-insensitive); a :class:`Role` passes through."""
    if isinstance(name_or_id, Role):
        return name_or_id
    key = name_or_id.strip().lower()
    key = key.rsplit("/", 1)[-1]  # also a full roleDefinitions resource id
    try:
        return _BY_KEY[key]
    except KeyError:
        known = ", ".join(r.name for r in BUILT_IN_ROLES)
        raise ValueError(f"unknown role {name_or_id!r}; built-in roles: {known}") from None
