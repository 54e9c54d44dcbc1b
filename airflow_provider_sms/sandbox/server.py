"""Serving the app with uvicorn: a bound socket (port 0 picks a free one) and a protocol that lets
"commit then drop" close the very connection it answers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.utils import get_local_addr, get_remote_addr

from airflow_provider_sms.sandbox.faults import CONNECTIONS


class SandboxHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, registering each open connection under its ASGI (server, client) pair."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        local, remote = get_local_addr(transport), get_remote_addr(transport)
        self._sandbox_key = (tuple(local), tuple(remote)) if local and remote else None
        if self._sandbox_key is not None:
            CONNECTIONS[self._sandbox_key] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        key = getattr(self, "_sandbox_key", None)
        if key is not None:
            CONNECTIONS.pop(key, None)
        super().connection_lost(exc)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port chosen by the OS)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    # Listen now, so clients that read the printed URL before uvicorn starts wait instead of failing.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_server(app: Any, sock: socket.socket, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app`` on the already bound ``sock`` (start it with ``server.run([sock])``)."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=SandboxHTTPProtocol,
        lifespan="on",
        log_level=log_level,
        access_log=False,  # logging every request would cost more than handling it
        proxy_headers=False,  # keep the ASGI "client" the real peer: commit-then-drop looks it up
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)
