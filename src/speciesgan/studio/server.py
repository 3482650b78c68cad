"""``speciesgan studio``: load the generator (errors before any socket opens), then serve.

The socket is bound here, not by uvicorn, so ``--port 0`` can print the port the
system chose, and a port in use is a one-line error.  Tests use :class:`LiveServer`
to run the same server in a thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

from speciesgan.studio.service import Studio, resolve_source
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(128)
    except OSError as exc:
        raise SpeciesganError(f"cannot listen on {host}:{port} ({exc})") from exc
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _server(studio: Studio):  # noqa: ANN202 - uvicorn is imported lazily
    try:
        import uvicorn

        from speciesgan.studio.app import create_app  # starlette
    except ImportError as exc:
        raise SpeciesganError(
            f"the studio needs its extra ({exc.name} is missing): pip install 'speciesgan[studio]'"
        ) from exc

    config = uvicorn.Config(create_app(studio), log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve(
    generator: Path,
    metrics: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    workers: int | None = None,
) -> None:
    """Load, bind, print the address, serve until Ctrl+C."""
    studio = Studio(resolve_source(generator, metrics), workers)
    try:
        server = _server(studio)
        sock = bind(host, port)
        print(
            f"speciesgan studio: {len(studio.species)} species from {studio.source.generator} "
            f"at {address(sock)} (Ctrl+C to stop)",
            flush=True,
        )
        server.run(sockets=[sock])
    finally:
        studio.close()


class LiveServer:
    """The studio served from a background thread on a free port (for tests and benchmarks)."""

    def __init__(self, studio: Studio, host: str = "127.0.0.1") -> None:
        self.studio = studio
        self._server = _server(studio)
        self._sock = bind(host, 0)
        self.url = address(self._sock)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
