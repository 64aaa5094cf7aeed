"""A throwaway certificate authority for the emulator's loopback https servers.

Real Key Vault is only reachable over https, and the Azure SDK verifies certificates: a CA made
for the session (with :mod:`trustme`), trusted by pointing the client at its PEM file, lets code
under test keep certificate verification on.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from pathlib import Path
from types import TracebackType

import trustme

__all__ = ["LOOPBACK_NAMES", "ThrowawayCA"]

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")
"""What the server certificate is valid for."""


class ThrowawayCA:
    """A CA, one server certificate for the loopback names, and the CA's PEM file on disk.

    The PEM file lives in a private temporary directory that :meth:`close` removes (also on
    leaving the ``with`` block); :meth:`close` is idempotent.
    """

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="pytest-kvmi emulator")
        self._server_cert = self._ca.issue_cert(*LOOPBACK_NAMES)
        self._dir: str | None = tempfile.mkdtemp(prefix="kvmi-emulator-ca-")
        self.ca_bundle = str(Path(self._dir, "ca.pem"))
        """Path of the CA certificate as PEM: ``REQUESTS_CA_BUNDLE``, ``connection_verify``..."""
        self._ca.cert_pem.write_to_path(self.ca_bundle)

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the loopback certificate, HTTP/1.1 only."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this CA (for clients that take an SSLContext)."""
        return ssl.create_default_context(cafile=self.ca_bundle)

    def close(self) -> None:
        """Remove the PEM file and its directory."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> ThrowawayCA:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
