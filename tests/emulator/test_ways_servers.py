"""The loopback servers: http IMDS, https vaults, keep-alive, concurrency, clean stop."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_kvmi.emulator.servers import LoopbackServers, serve
from tests.emulator.echo import EchoEmulator

if TYPE_CHECKING:
    pass


def emulator_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("kvmi-emulator", "Thread-"))}


@pytest.fixture
def servers() -> Iterator[LoopbackServers]:
    before = emulator_threads()
    with serve(EchoEmulator("demo", "other")) as servers:
        yield servers
    assert emulator_threads() <= before, "a server or connection thread outlived stop()"


@pytest.fixture
def tls_client(servers: LoopbackServers) -> Iterator[httpx.Client]:
    with httpx.Client(verify=servers.client_ssl_context()) as client:
        yield client


def test_imds_over_http_and_each_vault_over_https(
    servers: LoopbackServers, tls_client: httpx.Client
) -> None:
    assert servers.imds_endpoint.startswith("http://127.0.0.1:")
    assert set(servers.vaults) == {"demo", "other"}
    imds = httpx.get(f"{servers.imds_endpoint}/metadata/instance?api-version=2021-02-01").json()
    assert (imds["target"], imds["scheme"], imds["remote_addr"]) == ("imds", "http", "127.0.0.1")
    assert imds["query"] == "api-version=2021-02-01"
    for name, url in servers.vaults.items():
        assert url.startswith("https://127.0.0.1:")
        assert url == servers.vault_url(name)
        seen = tls_client.post(f"{url}/secrets/a%2Fb", content=b"payload").json()
        assert (seen["target"], seen["scheme"]) == (f"vault:{name}", "https")
        assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/secrets/a/b", "payload")


def test_the_certificate_is_valid_for_localhost_too(servers: LoopbackServers) -> None:
    url = servers.vault_url("demo").replace("127.0.0.1", "localhost")
    with httpx.Client(verify=servers.client_ssl_context()) as client:
        assert client.get(url).json()["target"] == "vault:demo"


def test_a_client_not_trusting_the_ca_is_refused_and_the_server_carries_on(
    servers: LoopbackServers, tls_client: httpx.Client
) -> None:
    with httpx.Client() as untrusting, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
        untrusting.get(servers.vault_url("demo"))
    assert tls_client.get(servers.vault_url("demo")).status_code == 418


def test_requests_share_one_connection_until_connection_close(servers: LoopbackServers) -> None:
    port = int(servers.vault_url("demo").rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=servers.client_ssl_context(), timeout=10
    )
    try:
        conn.request("GET", "/one")
        first = conn.getresponse()
        assert first.read()
        assert first.getheader("Connection") is None
        sock = conn.sock
        conn.request("PUT", "/two", body=b"x" * 70_000)
        second = conn.getresponse()
        assert json.loads(second.read())["body"] == "x" * 70_000
        assert conn.sock is sock, "the server closed a keep-alive connection"
        conn.request("GET", "/three", headers={"Connection": "close"})
        third = conn.getresponse()
        assert third.getheader("Connection") == "close"
        assert json.loads(third.read())["path"] == "/three"
    finally:
        conn.close()


def test_the_app_can_ask_to_close_the_connection(servers: LoopbackServers) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"GET /bye HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 418 I'm a teapot\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    assert answer.count(b"Connection:") == 1


def test_head_gets_the_length_but_no_body(servers: LoopbackServers) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = read_until_closed(s).partition(b"\r\n\r\n")
    assert b"Content-Length: " in head
    assert body == b""


def test_a_dropped_connection_gets_no_bytes_at_all(servers: LoopbackServers) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"GET /drop HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(s) == b""


def test_chunked_request_bodies_are_refused(servers: LoopbackServers) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert read_until_closed(s).startswith(b"HTTP/1.1 411 ")


def test_a_bad_content_length_is_a_400(servers: LoopbackServers) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        assert read_until_closed(s).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("length", [b"100000000000", b"9" * 5000])
def test_a_huge_content_length_is_a_413_before_reading(
    servers: LoopbackServers, length: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
        answer = read_until_closed(s)  # closed: the body it announced is never read
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert httpx.get(f"{servers.imds_endpoint}/still-there").json()["path"] == "/still-there"


def test_an_app_that_fails_gets_a_500_and_a_traceback_on_stderr(
    servers: LoopbackServers, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(servers.imds_endpoint)), timeout=10) as s:
        s.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 500 ")
    servers.stop()  # joins the connection thread, so its traceback is written by now
    assert "RuntimeError: a bug in the app" in capsys.readouterr().err


def test_requests_are_answered_concurrently(
    servers: LoopbackServers, tls_client: httpx.Client
) -> None:
    url = f"{servers.vault_url('demo')}/together"
    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(lambda _: tls_client.get(url).status_code, range(2)))
    assert codes == [418, 418]


def test_a_vault_made_after_start_gets_its_own_server(servers: LoopbackServers) -> None:
    url = servers.add_vault("late")
    assert servers.add_vault("late") == url
    assert servers.vaults["late"] == url
    assert len(set(servers.vaults.values())) == 3
    with httpx.Client(verify=servers.client_ssl_context()) as client:
        assert client.get(url).json()["target"] == "vault:late"


def test_env_points_azure_identity_and_requests_here(servers: LoopbackServers) -> None:
    env = servers.env
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == servers.imds_endpoint
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == servers.ca_bundle
    assert {"127.0.0.1", "localhost"} <= set(env["NO_PROXY"].split(","))
    with open(servers.ca_bundle) as pem:
        assert pem.read().startswith("-----BEGIN CERTIFICATE-----")


def test_the_entra_server_answers_as_login_microsoftonline_com() -> None:
    with (
        LoopbackServers(EchoEmulator(), entra=True) as servers,
        httpx.Client(verify=servers.client_ssl_context()) as client,
    ):
        seen = client.get(f"{servers.login_endpoint}/common/discovery/keys").json()
    assert (seen["target"], seen["host"]) == (None, "login.microsoftonline.com")


def test_stop_ends_idle_keep_alive_connections_and_is_idempotent() -> None:
    before = emulator_threads()
    started = time.monotonic()
    servers = serve(EchoEmulator("demo"))
    ca_bundle = servers.ca_bundle
    client = httpx.Client(verify=servers.client_ssl_context())
    try:
        assert client.get(servers.vault_url("demo")).status_code == 418  # connection now idle
        stopping = time.monotonic()
        servers.stop()
        assert time.monotonic() - stopping < 2, "stop() waited on an idle connection"
        servers.stop()
    finally:
        client.close()
    assert not os.path.exists(ca_bundle)
    assert emulator_threads() <= before
    with pytest.raises(RuntimeError):
        servers.add_vault("x")
    with pytest.raises(RuntimeError):
        servers.start()
    with pytest.raises(RuntimeError):
        _ = servers.imds_endpoint
    assert time.monotonic() - started < 10


def test_a_peer_that_hangs_up_mid_handshake_is_ignored(servers: LoopbackServers) -> None:
    port = port_of(servers.vault_url("demo"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"not tls at all\r\n\r\n")
        read_until_closed(s)
    context = servers.client_ssl_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert isinstance(tls, ssl.SSLSocket)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def read_until_closed(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
