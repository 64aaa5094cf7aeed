"""The single WSGI application behind every emulated host: IMDS, Key Vault and Entra.

Routing: the way in may name the target in ``environ[TARGET_KEY]`` (``"imds"`` or
``"vault:<name>"``); otherwise the Host header decides (``169.254.169.254`` is IMDS,
``<name>.vault.azure.net`` and the sovereign vault suffixes are vault ``<name>``, the Entra login
hosts serve discovery and keys). A vault the emulator does not hold answers 404 with a
``text/plain`` note: the real world has no answer at all (the name does not resolve), and a
WSGI app must answer something. Any other host gets the same kind of 404.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import faults as fault_endpoints
from .clouds import LOGIN_HOSTS, vault_name_from_host
from .contract import IMDS_HOST, IMDS_TARGET, TARGET_KEY, VAULT_TARGET_PREFIX, DropConnection
from .entra_app import EntraApp
from .faults import Faults
from .imds_app import TOKEN_PATH, ImdsApp
from .state import State
from .vault_app import VaultApp
from .wsgi import Request, Response, json_response, text_response

StartResponse = Callable[..., Any]
_log = logging.getLogger(__name__)


class EmulatorApp:
    """The WSGI callable; holds no state of its own beyond its parts."""

    def __init__(
        self, state: State, imds: ImdsApp, vault: VaultApp, entra: EntraApp, faults: Faults
    ) -> None:
        self._state = state
        self._imds = imds
        self._vault = vault
        self._entra = entra
        self._faults = faults

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response = self.respond(Request(environ))
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(response.status_line, headers)
        return [response.body]

    def respond(self, request: Request) -> Response:
        """The answer to ``request``; raises :class:`DropConnection` when a fault asks for it."""
        try:
            return self._dispatch(request)
        except DropConnection:
            raise
        except Exception:
            # Never echo the exception: its text could hold a request's token or a secret.
            _log.exception("emulator failed on %s %s", request.method, request.path)
            return json_response(
                500, {"error": {"code": "InternalError", "message": "Emulator error"}}
            )

    def _dispatch(self, request: Request) -> Response:
        target = request.environ.get(TARGET_KEY)
        if target is None:
            target = _target_for_host(request.host)
        if target == IMDS_TARGET:
            endpoint = (
                fault_endpoints.IMDS_TOKEN
                if request.path.rstrip("/") == TOKEN_PATH
                else (fault_endpoints.IMDS)
            )
            return self._apply_faults(endpoint) or self._imds(request)
        if target == "entra":
            return self._apply_faults(fault_endpoints.ENTRA) or self._entra(request)
        if isinstance(target, str) and target.startswith(VAULT_TARGET_PREFIX):
            name = target[len(VAULT_TARGET_PREFIX) :]
            vault = self._state.vault(name)
            if vault is None:
                return text_response(
                    404,
                    f"The emulator has no vault named {name!r}: a real client could not "
                    "resolve its host name.\n",
                )
            return self._apply_faults(fault_endpoints.VAULT) or self._vault(request, vault)
        return text_response(404, f"The emulator does not serve host {request.host!r}.\n")

    def _apply_faults(self, endpoint: str) -> Response | None:
        fault = self._faults.take(endpoint)
        if fault is None:
            return None
        if fault.drop:
            raise DropConnection(f"fault injected on {endpoint}")
        if fault.delay:
            time.sleep(fault.delay)
            return None
        return fault.response(endpoint)


def _target_for_host(host: str) -> str | None:
    if host == IMDS_HOST:
        return IMDS_TARGET
    if host in LOGIN_HOSTS:
        return "entra"
    vault = vault_name_from_host(host)
    return None if vault is None else VAULT_TARGET_PREFIX + vault[0]
