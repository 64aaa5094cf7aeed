"""The same work done by pytest-kvmi's clients and by the official SDK, callable in-process or
as a fresh process (``python -m benchmarks.sides ACTION SIDE [URL]``).

Each side imports its libraries inside the function, so a fresh process pays for exactly its
own imports. Every action checks its outcome (a benchmark of failures would mean nothing) and
never prints a token or a secret value.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks.emulator import BULK, DEMO, FORBIDDEN, READABLE, Where

SCOPE = "https://vault.azure.net/.default"
KVMI = "kvmi"
SDK = "sdk"


def kvmi_checks(where: Where) -> None:
    """A token from IMDS, a readable secret, a forbidden one diagnosed ForbiddenByRbac."""
    from pytest_kvmi.diagnosis import Code, KvmiError
    from pytest_kvmi.imds import ImdsClient
    from pytest_kvmi.settings import Settings
    from pytest_kvmi.vault import VaultClient

    settings = Settings.build(vault=where.vaults[DEMO], ca_bundle=where.ca_bundle)
    with ImdsClient(settings) as imds:
        token = imds.token()
    with VaultClient(settings, lambda: token) as vault:
        vault.get_secret(READABLE, token)
        try:
            vault.get_secret(FORBIDDEN, token)
        except KvmiError as error:
            if error.diagnosis.code is not Code.FORBIDDEN_BY_RBAC:
                raise
        else:
            raise AssertionError(f"{FORBIDDEN} was readable")


def sdk_checks(where: Where) -> None:
    """The same with ManagedIdentityCredential and SecretClient: the client's challenge policy
    asks the credential for the token, so the requests are the same four."""
    from azure.core.exceptions import HttpResponseError
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    with (
        ManagedIdentityCredential() as credential,
        SecretClient(
            where.vaults[DEMO],
            credential,
            verify_challenge_resource=False,  # the vault is 127.0.0.1, its challenge says Azure
            connection_verify=where.ca_bundle,
        ) as client,
    ):
        client.get_secret(READABLE)
        try:
            client.get_secret(FORBIDDEN)
        except HttpResponseError as error:
            inner = (error.error.innererror or {}) if error.error else {}
            if inner.get("code") != "ForbiddenByRbac":
                raise
        else:
            raise AssertionError(f"{FORBIDDEN} was readable")


def kvmi_bulk(where: Where, names: Sequence[str]) -> None:
    """Every secret read (and verified readable) with :func:`pytest_kvmi.bulk.read_secrets`."""
    from pytest_kvmi.bulk import DEFAULT_CONCURRENCY, read_secrets
    from pytest_kvmi.imds import ImdsClient
    from pytest_kvmi.settings import Settings
    from pytest_kvmi.vault import VaultClient

    settings = Settings.build(vault=where.vaults[BULK], ca_bundle=where.ca_bundle)
    with ImdsClient(settings) as imds:
        token = imds.token()
    with VaultClient(settings, lambda: token, pool_size=DEFAULT_CONCURRENCY) as vault:
        results = read_secrets(vault, names, token)
    unreadable = [str(result.secret) for result in results if not result.ok]
    if unreadable:
        raise AssertionError(f"unreadable: {unreadable[:5]}")


def sdk_bulk(where: Where, names: Sequence[str]) -> None:
    """The plain SDK loop: ``for name in names: client.get_secret(name)``."""
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    with (
        ManagedIdentityCredential() as credential,
        SecretClient(
            where.vaults[BULK],
            credential,
            verify_challenge_resource=False,
            connection_verify=where.ca_bundle,
        ) as client,
    ):
        for name in names:
            client.get_secret(name)


def kvmi_no_imds(endpoint: str) -> str:
    """The verdict of ImdsClient.token() with default settings but this IMDS endpoint."""
    from pytest_kvmi.diagnosis import KvmiError
    from pytest_kvmi.imds import ImdsClient
    from pytest_kvmi.settings import Settings

    with ImdsClient(Settings.build(imds_endpoint=endpoint)) as imds:
        try:
            imds.token()
        except KvmiError as error:
            return error.diagnosis.code.value
    raise AssertionError("a token from nowhere")


def sdk_no_imds(endpoint: str) -> str:
    """The verdict of ManagedIdentityCredential, pointed at ``endpoint`` as azure-identity
    allows: AZURE_POD_IDENTITY_AUTHORITY_HOST (set by the caller in this process's env)."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ManagedIdentityCredential

    with ManagedIdentityCredential() as credential:
        try:
            credential.get_token(SCOPE)
        except ClientAuthenticationError as error:
            return type(error).__name__
    raise AssertionError("a token from nowhere")


CHECKS: dict[str, Callable[[Where], None]] = {KVMI: kvmi_checks, SDK: sdk_checks}
BULK_READS: dict[str, Callable[[Where, Sequence[str]], None]] = {KVMI: kvmi_bulk, SDK: sdk_bulk}
NO_IMDS: dict[str, Callable[[str], str]] = {KVMI: kvmi_no_imds, SDK: sdk_no_imds}
IMPORTS = {KVMI: ("pytest_kvmi.imds",), SDK: ("azure.identity",)}
"""Imported before a no-IMDS side's clock starts: that figure is about the network."""


def main(argv: Sequence[str]) -> int:
    """``checks SIDE``: run the checks (the caller times the process). ``no-imds SIDE URL``:
    print ``{"seconds": ..., "verdict": ...}``, timed from after the imports to the verdict."""
    action, side, *rest = argv
    if action == "checks":
        CHECKS[side](Where.from_env())
        return 0
    if action == "no-imds":
        for module in IMPORTS[side]:
            importlib.import_module(module)
        start = time.perf_counter()
        verdict = NO_IMDS[side](rest[0])
        seconds = time.perf_counter() - start
        sys.stdout.write(json.dumps({"seconds": seconds, "verdict": verdict}) + "\n")
        return 0
    raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
