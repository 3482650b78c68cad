"""A real HTTP server on 127.0.0.1 for download tests (Range support + fault injection).

Not a mock: the download code talks to it over a socket exactly as it would to a
dataset host.  Faults are configured per test: cut the body half-way on the first
N requests, ignore Range headers, or answer 503 a few times before serving.

Like Apache or nginx serving a static file, it sends an ``ETag`` and a
``Last-Modified`` derived from the file's bytes (so replacing a file changes
both) and honours ``If-Range`` (RFC 9110 13.1.5): when the validator no longer
matches, the Range is ignored and the whole new file comes back with 200.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ServerState:
    files: dict[str, bytes]
    cut_first: int = 0  # this many GETs send half the body, then drop the connection
    ignore_range: bool = False
    fail_first: int = 0  # this many GETs answer 503
    validators: bool = True  # send ETag and Last-Modified
    honour_if_range: bool = True  # False: apply Range even when If-Range does not match
    range_headers: list[str | None] = field(default_factory=list)  # one per GET, in order
    if_range_headers: list[str | None] = field(default_factory=list)  # one per GET, in order
    lock: threading.Lock = field(default_factory=threading.Lock)


def etag_of(body: bytes) -> str:
    """A strong entity tag for ``body`` (quoted, as sent)."""
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def last_modified_of(body: bytes) -> str:
    """An HTTP date that changes whenever ``body`` does."""
    seconds = 1_600_000_000 + int(hashlib.sha256(body).hexdigest()[:6], 16)
    return email.utils.formatdate(seconds, usegmt=True)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            with state.lock:
                state.range_headers.append(self.headers.get("Range"))
                state.if_range_headers.append(self.headers.get("If-Range"))
                if state.fail_first > 0:
                    state.fail_first -= 1
                    self._empty(503)
                    return
                cut = state.cut_first > 0
                state.cut_first -= cut
            body = state.files.get(self.path)
            if body is None:
                self._empty(404)
                return
            start, status = 0, 200
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if_range = self.headers.get("If-Range")
            if (
                if_range is not None
                and state.honour_if_range
                and if_range not in (etag_of(body), last_modified_of(body))
            ):
                match = None  # the client's copy is of another version: send all of this one
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            payload = body[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            if state.validators:
                self.send_header("ETag", etag_of(body))
                self.send_header("Last-Modified", last_modified_of(body))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            if cut:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(payload)

        def _empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serve(state: ServerState) -> Iterator[str]:
    """Run a server for ``state`` in a thread; yield its base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
