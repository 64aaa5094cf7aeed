"""``kvmi-emulator``: IMDS and Key Vault on loopback, for scripts and other processes.

Prints one JSON line (where everything is, and the environment that points clients there), then
serves until SIGINT or SIGTERM, and exits 0. Secret values are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import DEMO_VAULT, Emulator
from .roles import SECRETS_USER
from .scenario import ScenarioError
from .servers import LoopbackServers, serve
from .vault_app import SECRET_NAME

__all__ = ["main"]

VAULT_NAME_RULE = (
    "3-24 characters: letters, digits and hyphens, starting with a letter, "
    "ending with a letter or digit, no two hyphens in a row"
)
SECRET_NAME_RULE = "1-127 characters: letters, digits and hyphens"
_VAULT_NAME = re.compile(r"(?!.*--)[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]")


def _vault_name(text: str) -> str:
    if not _VAULT_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"vault name {text!r}: a vault name is {VAULT_NAME_RULE}")
    return text.lower()


def _secret_name(text: str) -> str:
    if not SECRET_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"secret name {text!r}: a secret name is {SECRET_NAME_RULE}"
        )
    return text


def _secret(text: str) -> tuple[str, str]:
    """``NAME=VALUE``; the value is never echoed, not even in an error."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return _secret_name(name), value


def _secret_from_env(text: str) -> tuple[str, str]:
    """``NAME=VARIABLE``: the value is read from the environment, out of sight of ``ps``."""
    name, sep, variable = text.partition("=")
    if not sep or not variable:
        raise argparse.ArgumentTypeError("expected NAME=VARIABLE")
    value = os.environ.get(variable)
    if value is None:
        raise argparse.ArgumentTypeError(f"environment variable {variable!r} is not set")
    return _secret_name(name), value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvmi-emulator",
        description=(
            "Serve an emulated Azure IMDS (http) and Key Vault (https, throwaway CA) on loopback. "
            "Prints one JSON line saying where, then serves until SIGINT or SIGTERM. "
            "Without --vault or --scenario, serves the built-in demo."
        ),
    )
    parser.add_argument(
        "--vault",
        action="append",
        default=[],
        type=_vault_name,
        metavar="NAME",
        help=f"a vault to serve (repeatable; {VAULT_NAME_RULE})",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        type=_secret,
        metavar="NAME=VALUE",
        help="a secret in the first vault, readable by the VM's system identity (repeatable)",
    )
    parser.add_argument(
        "--secret-env",
        action="append",
        default=[],
        type=_secret_from_env,
        metavar="NAME=VARIABLE",
        help="as --secret, the value taken from environment variable VARIABLE",
    )
    parser.add_argument(
        "--scenario", type=Path, metavar="FILE", help="a scenario file (TOML or JSON) to load"
    )
    return parser


def _emulator(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Emulator, str]:
    """The emulator the flags describe, and the name of its first vault ("" if none)."""
    secrets: list[tuple[str, str]] = [*args.secret, *args.secret_env]
    if args.scenario is not None:
        if args.vault or secrets:
            parser.error("--scenario cannot be combined with --vault, --secret or --secret-env")
        try:
            emulator = Emulator.from_scenario(args.scenario)
        except (OSError, ScenarioError) as error:
            parser.error(f"--scenario {args.scenario}: {error}")
        return emulator, next(iter(emulator.vault_names()), "")
    if not args.vault:
        if secrets:
            parser.error("--secret and --secret-env need a --vault to put the secrets in")
        return Emulator.demo(), DEMO_VAULT
    if len(set(args.vault)) != len(args.vault):
        parser.error("--vault: each vault name may be given once")
    emulator = Emulator()
    for name in args.vault:
        emulator.add_vault(name)
    first = args.vault[0]
    for name, value in secrets:
        emulator.set_secret(first, name, value)
        emulator.grant("system", SECRETS_USER, f"vault:{first}/secrets/{name}")
    return emulator, first


def _where(emulator: Emulator, servers: LoopbackServers, first_vault: str) -> dict[str, Any]:
    """The JSON line scripts parse: its keys are a contract."""
    identity = emulator.system_identity
    return {
        "imds_endpoint": servers.imds_endpoint,
        "vault_url": servers.vault_url(first_vault) if first_vault else None,
        "vaults": servers.vaults,
        "ca_bundle": servers.ca_bundle,
        "tenant_id": emulator.tenant_id,
        "identity": None
        if identity is None
        else {
            "client_id": identity.client_id,
            "object_id": identity.object_id,
            "resource_id": identity.resource_id,
        },
        "env": servers.env,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; returns the exit status (0)."""
    parser = _parser()
    args = parser.parse_args(argv)
    emulator, first_vault = _emulator(parser, args)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve(emulator) as servers:
            sys.stdout.write(json.dumps(_where(emulator, servers, first_vault)) + "\n")
            sys.stdout.flush()
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
