"""What the emulator's one WSGI core and its ways in (httpx transport, loopback servers,
``responses``) agree on.

The core answers for every emulated host; a way in tells it which service a request is for
when the Host header cannot (a loopback server on an ephemeral port), and turns
:class:`DropConnection` into the way's own notion of a connection closed without an answer.
"""

from __future__ import annotations

TARGET_KEY = "kvmi.target"
"""WSGI environ key a way in may set: ``"imds"`` or ``"vault:<name>"``. Absent, the core routes
by the Host header (``169.254.169.254`` is IMDS, ``<name>.<vault suffix>`` is vault ``name``)."""

IMDS_HOST = "169.254.169.254"
"""Where IMDS answers on every Azure VM: the core routes by it, the ways in intercept it."""

IMDS_TARGET = "imds"
VAULT_TARGET_PREFIX = "vault:"


class DropConnection(Exception):
    """Raised by the core (fault injection) to close the connection without any answer."""
