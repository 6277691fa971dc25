"""Running the API: ``serve(store, host, port, ...)`` binds the socket, prints the base URL and
the subscription, and runs uvicorn until SIGTERM/SIGINT.

**Stopping.** On SIGTERM uvicorn stops accepting connections and lets the requests in flight
finish (up to ``GRACE`` seconds). No request holds work that only it could finish: an image
version's capture and replication are queued in the gallery database and run by the worker
(a separate process), so a stop — even a SIGKILL — loses nothing; the next server (or any
``imagestore`` command) starts a worker for what is still queued.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys

from ..errors import InvalidArgument
from ..gallery import ids
from ..identity import TENANT
from . import endpoint
from .app import create_app
from .context import Settings

#: seconds in-flight requests get to finish after SIGTERM
GRACE = 30


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        raise InvalidArgument(f"--port: cannot listen on {host}:{port}: {e.strerror}",
                              target="port") from None
    s.listen(512)
    s.set_inheritable(True)
    return s


#: seconds an idle keep-alive connection may take to close at shutdown before it is cut
IDLE_CLOSE = 1.0


def _server_class(uvicorn):  # noqa: ANN001, ANN202 - the uvicorn module, a Server subclass
    """uvicorn's Server, except that at shutdown idle keep-alive connections are cut after
    :data:`IDLE_CLOSE` seconds. Over TLS, closing one waits for the client's close_notify,
    which a client holding a pooled connection it does not read never sends: asyncio waits
    30 s for it, and the stop with it. Connections with a request in flight are left to
    finish (up to ``GRACE``)."""
    import asyncio

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:  # noqa: ANN001
            async def cut_idle() -> None:
                await asyncio.sleep(IDLE_CLOSE)
                for conn in list(self.server_state.connections):
                    cycle = getattr(conn, "cycle", None)
                    transport = getattr(conn, "transport", None)
                    if transport is not None and (cycle is None or cycle.response_complete):
                        transport.abort()

            task = asyncio.create_task(cut_idle())
            try:
                await super().shutdown(sockets)
            finally:
                task.cancel()

    return Server


def serve(store: str, *, host: str = "127.0.0.1", port: int = 8443,
          tls_cert: str | None = None, tls_key: str | None = None,
          settings: Settings | None = None, log_level: str = "warning") -> None:
    """Serve the store's REST API until stopped."""
    import uvicorn

    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("--tls-cert and --tls-key go together", target="tls")
    app = create_app(store, settings)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{actual}"
    print(f"imagestore serve: {url}", flush=True)
    print(f"subscription: {ids.SUBSCRIPTION}  tenant: {TENANT}", flush=True)
    if not _is_loopback(host):
        print(f"warning: listening on {host}, not loopback: anyone who can reach it and holds "
              f"a token of this store can use it", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=log_level, ssl_certfile=tls_cert,
                            ssl_keyfile=tls_key, timeout_graceful_shutdown=GRACE,
                            access_log=False, lifespan="on", server_header=False)
    server = _server_class(uvicorn)(config)
    # uvicorn re-raises the stop signal once it has shut down, with the handler that was
    # there before it: make that one a no-op so the cleanup below runs and a stop by
    # SIGTERM/SIGINT exits 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    endpoint.publish(store, url)  # where grant-access URLs point (issue 12, export)
    try:
        server.run(sockets=[sock])
    finally:
        endpoint.withdraw(store)
