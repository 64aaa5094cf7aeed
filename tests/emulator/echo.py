"""A stand-in for the emulator's core that echoes what a way in handed it, so the ways in
(transport, servers, responses) are tested on their own."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pytest_kvmi.emulator.contract import TARGET_KEY, DropConnection

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BARRIER = threading.Barrier(2, timeout=10)
STATUS = "418 I'm a teapot"
HEADERS = [
    ("Content-Type", "application/json"),
    ("X-Echo", "1"),
    ("WWW-Authenticate", 'Bearer x="y"'),
]


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Answers 418 with the request as the app saw it. Paths with a meaning: ``/drop`` drops
    the connection, ``/together`` waits for a second caller, ``/boom`` raises, ``/bye`` asks
    to close the connection."""
    path = environ["PATH_INFO"]
    if path == "/drop":
        raise DropConnection
    if path == "/together":
        BARRIER.wait()
    if path == "/boom":
        raise RuntimeError("a bug in the app")
    headers = [*HEADERS, ("Connection", "close")] if path == "/bye" else HEADERS
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path": path,
        "query": environ["QUERY_STRING"],
        "target": environ.get(TARGET_KEY),
        "host": environ["HTTP_HOST"],
        "remote_addr": environ["REMOTE_ADDR"],
        "metadata": environ.get("HTTP_METADATA"),
        "content_type": environ.get("CONTENT_TYPE"),
        "body": body.decode(),
        "scheme": environ["wsgi.url_scheme"],
    }
    start_response(STATUS, headers)
    return [json.dumps(seen).encode()]


class EchoEmulator:
    """The two things a way in asks of an emulator."""

    def __init__(self, *vaults: str) -> None:
        self.vaults = list(vaults)
        self.wsgi_app = echo_app

    def vault_names(self) -> list[str]:
        return self.vaults
