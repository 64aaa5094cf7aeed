"""The throwaway CA: a PEM file clients can trust, a server certificate for the loopback names."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from pytest_kvmi.emulator.tls import LOOPBACK_NAMES, ThrowawayCA


def test_the_pem_file_exists_until_close_and_close_is_idempotent() -> None:
    with ThrowawayCA() as ca, open(ca.ca_bundle) as pem:
        assert pem.read().startswith("-----BEGIN CERTIFICATE-----")
    assert not os.path.exists(ca.ca_bundle)
    assert not os.path.exists(os.path.dirname(ca.ca_bundle))
    ca.close()


@pytest.mark.parametrize("name", LOOPBACK_NAMES)
def test_a_client_trusting_the_ca_accepts_the_server_for_each_loopback_name(name: str) -> None:
    with ThrowawayCA() as ca, socket.create_server(("127.0.0.1", 0)) as listener:
        server_context = ca.server_context()

        def accept_one() -> None:
            conn, _ = listener.accept()
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")

        thread = threading.Thread(target=accept_one)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=10) as raw,
                ca.client_context().wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.recv(5) == b"hello"
                assert tls.selected_alpn_protocol() in (None, "http/1.1")
        finally:
            thread.join(timeout=10)
        assert not thread.is_alive()
