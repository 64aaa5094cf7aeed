"""The emulator on real loopback sockets: IMDS over http, each vault over https on its own port.

For code under test that cannot be handed a transport (another process, a shell script, an SDK
pipeline): point it at :attr:`LoopbackServers.env`. Each server is one thread accepting
connections plus one thread per connection, speaking HTTP/1.1 with keep-alive, so a client's
connection pool is reused across requests, as it is against Azure.
"""

from __future__ import annotations

import contextlib
import http.server
import selectors
import socket
import socketserver
import ssl
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .clouds import PUBLIC
from .contract import IMDS_TARGET, VAULT_TARGET_PREFIX, DropConnection
from .tls import ThrowawayCA
from .transports import EmulatorLike, WsgiAnswer, call_app, make_environ
from .wsgi import MAX_BODY_BYTES

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["CONFLICTING_ENV", "LoopbackServers", "serve"]

CONFLICTING_ENV = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_TENANT_ID",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
)
"""Variables to unset beside :attr:`LoopbackServers.env`: with any of them, azure-identity picks
another credential (App Service, Arc, Cloud Shell, a service principal, workload identity) or a
user-assigned identity instead of the VM's system identity over IMDS."""

_NO_BODY_STATUSES = frozenset({204, 304})


class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 requests in a loop, each answered by the WSGI app in one write."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line on stderr per request would cost more than answering it."""

    def _answer(self) -> None:
        body = self._read_body()
        if body is None:
            return
        server = self.server
        raw_path, _, query = self.path.partition("?")
        environ = make_environ(
            method=self.command,
            scheme="https" if server.ssl_context is not None else "http",
            host_header=server.host_header or self.headers.get("Host") or server.netloc,
            server_name=server.address,
            target=server.target,
            raw_path=raw_path,
            query=query,
            headers=self.headers.items(),
            body=body,
            remote_addr=self.client_address[0],
            server_port=server.port,
        )
        try:
            answer = call_app(server.app, environ)
        except DropConnection:
            self.close_connection = True
            return
        except Exception:
            self.send_error(500, "kvmi emulator: internal error")
            raise
        self.wfile.write(self._encode(answer))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def _read_body(self) -> bytes | None:
        """The request body by Content-Length; None once an error is sent (chunked, too large)."""
        if "Transfer-Encoding" in self.headers:
            self.send_error(411, "kvmi emulator: send a Content-Length, not chunks")
            return None
        length = self.headers.get("Content-Length", "0")
        if not (length.isascii() and length.isdigit()):
            self.send_error(400, "kvmi emulator: bad Content-Length")
            return None
        # Refused before reading, so a client cannot make the server allocate what it claims;
        # over 20 digits, int() itself may refuse (Python's limit on digits).
        size = int(length) if len(length) <= 20 else MAX_BODY_BYTES + 1
        if size > MAX_BODY_BYTES:
            self.send_error(413, "kvmi emulator: request body too large")
            return None
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            return None
        return body

    def _encode(self, answer: WsgiAnswer) -> bytes:
        """Status line, the app's headers, our Content-Length and Connection, then the body."""
        head = [f"{self.protocol_version} {answer.status} {answer.reason}"]
        has_date = False
        for name, value in answer.headers:
            lower = name.lower()
            if lower == "connection":
                self.close_connection = self.close_connection or value.lower() == "close"
            elif lower != "content-length":
                has_date = has_date or lower == "date"
                head.append(f"{name}: {value}")
        if not has_date:
            head.append(f"Date: {self.date_time_string()}")
        body = answer.body
        if answer.status in _NO_BODY_STATUSES or answer.status < 200:
            body = b""
        else:
            head.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            head.append("Connection: close")
        if self.command == "HEAD":
            body = b""
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """One listening socket for one emulated service; see :class:`LoopbackServers`."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        app: WSGIApplication,
        address: str,
        *,
        target: str | None,
        ssl_context: ssl.SSLContext | None,
        host_header: str | None = None,
        idle_timeout: float,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        super().__init__((address, 0), _Handler)
        self.address = address
        self.app = app
        self.target = target
        self.ssl_context = ssl_context
        self.host_header = host_header
        self.idle_timeout = idle_timeout
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._loop = threading.Thread(target=self._accept_loop, name="kvmi-emulator", daemon=True)
        self._loop.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def netloc(self) -> str:
        """``host:port`` as in a URL (an IPv6 address in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def _accept_loop(self) -> None:
        """Accept until woken: a socket pair wakes it at once where serve_forever polls."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_reader:
                        return
                    self.handle_request()  # ready: its own select returns at once

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; TLS is only set up here, its handshake runs in the connection's thread."""
        conn, client_address = self.socket.accept()
        if self.ssl_context is None:
            return conn, client_address
        try:
            tls = self.ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        except OSError:
            conn.close()
            raise
        return tls, client_address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.idle_timeout)
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except OSError:
                return  # a client that does not trust the CA, or went away: nothing to answer
        super().finish_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients hanging up; a traceback on stderr for anything else (a bug)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close(self) -> None:
        """Stop accepting, end every connection, join every thread, release every socket."""
        self._wake_writer.send(b"x")
        self._loop.join()
        with self._open_lock:
            for conn in self._open:
                # The plain socket's shutdown: SSLSocket's own would tear down its TLS state
                # under the feet of the thread reading from it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)
        self.server_close()  # joins the connection threads
        self._wake_reader.close()
        self._wake_writer.close()


class LoopbackServers:
    """IMDS (http), one https server per vault and, if asked, Entra (https) on 127.0.0.1.

    Every port is ephemeral. Use as a context manager, or call :meth:`start` and :meth:`stop`
    (idempotent). The CA that signs the https certificates is :attr:`ca_bundle`, a PEM file
    removed at stop. The Entra server answers as ``login.microsoftonline.com`` (the core routes
    it by that Host), so the URLs in its discovery documents are the real ones.
    """

    def __init__(
        self,
        emulator: EmulatorLike,
        *,
        address: str = "127.0.0.1",
        entra: bool = False,
        idle_timeout: float = 120.0,
    ) -> None:
        self._emulator = emulator
        self._address = address
        self._entra = entra
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._ca: ThrowawayCA | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._imds: _Server | None = None
        self._login: _Server | None = None
        self._vaults: dict[str, _Server] = {}
        self._stopped = False

    def start(self) -> LoopbackServers:
        """Bind and serve IMDS and every vault the emulator has now; returns self."""
        with self._lock:
            if self._ca is not None or self._stopped:
                raise RuntimeError("LoopbackServers can be started once")
            self._ca = ThrowawayCA()
        try:
            self._ssl_context = self._ca.server_context()
            self._imds = self._server(IMDS_TARGET, tls=False)
            if self._entra:
                self._login = self._server(None, tls=True, host_header=PUBLIC.login_host)
            for name in self._emulator.vault_names():
                self.add_vault(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _server(self, target: str | None, *, tls: bool, host_header: str | None = None) -> _Server:
        return _Server(
            self._emulator.wsgi_app,
            self._address,
            target=target,
            ssl_context=self._ssl_context if tls else None,
            host_header=host_header,
            idle_timeout=self._idle_timeout,
        )

    def add_vault(self, name: str) -> str:
        """Serve vault ``name`` (one made after start, say) if not served yet; returns its URL."""
        with self._lock:
            if self._ca is None or self._stopped:
                raise RuntimeError("LoopbackServers is not running")
            if name not in self._vaults:
                self._vaults[name] = self._server(VAULT_TARGET_PREFIX + name, tls=True)
        return self.vault_url(name)

    def stop(self) -> None:
        """Close every server, connection and thread, and remove the CA file. Idempotent."""
        with self._lock:
            self._stopped = True
            servers = [self._imds, self._login, *self._vaults.values()]
            self._imds = self._login = None
            self._vaults.clear()
            ca, self._ca = self._ca, None
        for server in servers:
            if server is not None:
                server.close()
        if ca is not None:
            ca.close()

    def __enter__(self) -> LoopbackServers:
        if self._ca is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _url(self, scheme: str, server: _Server | None) -> str:
        if server is None:
            raise RuntimeError("not served (not started, stopped, or not asked for)")
        return f"{scheme}://{server.netloc}"

    @property
    def imds_endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: what ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` is set to."""
        return self._url("http", self._imds)

    @property
    def login_endpoint(self) -> str:
        """``https://127.0.0.1:PORT`` of the Entra server (``entra=True`` only)."""
        return self._url("https", self._login)

    def vault_url(self, name: str) -> str:
        """``https://127.0.0.1:PORT`` of vault ``name`` (KeyError if not served)."""
        return self._url("https", self._vaults[name])

    @property
    def vaults(self) -> dict[str, str]:
        """Vault name -> URL, for every vault served."""
        with self._lock:
            names = list(self._vaults)
        return {name: self.vault_url(name) for name in names}

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM file of the CA the https servers' certificate chains to."""
        if self._ca is None:
            raise RuntimeError("LoopbackServers is not running")
        return self._ca.ca_bundle

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSLContext trusting the CA, for clients such as ``httpx.Client(verify=...)``."""
        if self._ca is None:
            raise RuntimeError("LoopbackServers is not running")
        return self._ca.client_context()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing azure-identity and ``requests`` at these servers.

        Unset :data:`CONFLICTING_ENV` too. ``SSL_CERT_FILE`` makes the CA the only trusted one
        for OpenSSL-based clients of the process it is set in.
        """
        no_proxy = "127.0.0.1,localhost,::1"
        return {
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": self.imds_endpoint,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }


def serve(emulator: EmulatorLike, *, entra: bool = False) -> LoopbackServers:
    """Start and return :class:`LoopbackServers` for ``emulator``: ``with serve(emu) as s: ...``."""
    return LoopbackServers(emulator, entra=entra).start()
