"""The studio's ASGI app (Starlette): a fixed set of routes over :class:`Studio`.

The page's three files are read from the package once, at start, and served from
memory by fixed routes, so no request names a file.  Every refusal is JSON
``{"error": ..., ...}`` with a 4xx status; an unexpected failure is logged and
answered with 500, and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from speciesgan.studio.service import MAX_SUGGESTIONS, Studio, StudioError

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
"""Largest request body: 64 records are about 40 KB."""
MAX_QUERY = 200
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _page_files() -> dict[str, tuple[bytes, str]]:
    static = resources.files("speciesgan.studio") / "static"
    return {
        route: ((static / name).read_bytes(), media) for route, (name, media) in PAGE_FILES.items()
    }


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise StudioError(413, f"request body over {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StudioError(400, f"malformed JSON: {exc}") from exc


def create_app(studio: Studio) -> Starlette:
    """The ASGI app serving ``studio``'s page and API."""
    files = _page_files()

    async def page(request: Request) -> Response:
        content, media = files[request.url.path]
        return Response(content, media_type=media, headers=HEADERS)

    async def info(request: Request) -> Response:
        return JSONResponse(studio.info(), headers=HEADERS)

    async def species(request: Request) -> Response:
        query = request.query_params.get("q", "")
        if len(query) > MAX_QUERY:
            raise StudioError(400, f"q: at most {MAX_QUERY} characters")
        return JSONResponse(
            {"query": query, "matches": studio.search(query, MAX_SUGGESTIONS)}, headers=HEADERS
        )

    async def pictures(request: Request) -> Response:
        body = await _json_body(request)
        answer = await anyio.to_thread.run_sync(studio.pictures, body)
        return JSONResponse(answer, headers=HEADERS)

    async def archive(request: Request) -> Response:
        body = await _json_body(request)
        data = await anyio.to_thread.run_sync(studio.zip_archive, body)
        headers = {**HEADERS, "Content-Disposition": 'attachment; filename="speciesgan-grid.zip"'}
        return Response(data, media_type="application/zip", headers=headers)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StudioError)
        return JSONResponse(exc.payload(), status_code=exc.status, headers=HEADERS)

    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("studio: %s %s failed", request.method, request.url.path)
        return JSONResponse(
            {"error": f"internal error ({type(exc).__name__}); the server keeps running"},
            status_code=500,
            headers=HEADERS,
        )

    routes = [Route(path, page, methods=["GET"]) for path in PAGE_FILES]
    routes += [
        Route("/api/info", info, methods=["GET"]),
        Route("/api/species", species, methods=["GET"]),
        Route("/api/pictures", pictures, methods=["POST"]),
        Route("/api/zip", archive, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={StudioError: refused, Exception: failed})
