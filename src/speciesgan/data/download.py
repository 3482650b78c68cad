"""Fetch one archive: resumable, retried, checksummed, and atomic.

Dataset archives are large (Stanford Dogs' images.tar is ~750 MB) and cluster
login nodes have flaky links, so a transfer streams into ``<out>.part`` and a
retry (or a rerun of the whole job) continues from the bytes already there with
an HTTP ``Range`` request.  The ``.part`` file is deliberately *not* written via
``atomic_path``, which would delete it on failure: it is the resume state.  The
final step is still an atomic ``os.replace`` onto ``out``, so ``out`` exists only
when complete and (when a sum is configured) verified.

The official archives have no pinned sums, so nothing would notice a ``.part``
whose bytes belong to another version of the file (replaced on the server, or
a URL changed in the config) continued with the new file's tail.  Resuming is
therefore tied to the first response's validator (a strong ``ETag``, else
``Last-Modified``), kept beside the ``.part`` in ``<out>.part.json`` and sent
as ``If-Range``: a server whose file changed answers 200 with the whole file
and the transfer starts over.  No validator (or no record of it) means no
resume.

``file://`` URLs are supported so the demo can be "downloaded" like a real
dataset; ``file://data/demo/x.tar`` (no third slash) is relative to the working
directory, ``file:///abs/x.tar`` is absolute.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from speciesgan.util.atomic import disk_full_message, write_json
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress

log = logging.getLogger(__name__)

BLOCK_SIZE = 1 << 20
USER_AGENT = "speciesgan-download/0.1 (+resumable)"
MAX_BACKOFF_S = 60.0


class _TransientError(Exception):
    """A failure worth retrying: connection reset, timeout, short body, 5xx."""


def part_path(out: Path) -> Path:
    """Where the partial transfer for ``out`` lives (kept across retries and reruns)."""
    return out.with_name(out.name + ".part")


def resume_state_path(part: Path) -> Path:
    """Where the validator of the transfer in ``part`` is kept (see the module docstring)."""
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    """Forget a partial transfer: the bytes and what they were validated against.

    The state goes first, so a kill in between leaves bytes without state,
    which are never resumed.
    """
    resume_state_path(part).unlink(missing_ok=True)
    part.unlink(missing_ok=True)


def _validator(headers: http.client.HTTPMessage) -> str | None:
    """The value to send as ``If-Range`` for a response: a strong ETag, else Last-Modified.

    Weak ETags (``W/"..."``) must not be used with If-Range (RFC 9110 13.1.5).
    """
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified") or None


def _same_version(headers: http.client.HTTPMessage, validator: str) -> bool:
    """Whether a 206 response names the version ``validator`` names.

    Guards against servers that honour Range but ignore If-Range: a 206 that
    carries no validator at all cannot vouch for the bytes kept, so it does not
    count as the same version (the transfer starts over).
    """
    sent = (headers.get("ETag"), headers.get("Last-Modified"))
    return validator in sent


def _load_validator(url: str, part: Path) -> str | None:
    """The validator recorded for the bytes in ``part``, if they were fetched from ``url``."""
    try:
        state = json.loads(resume_state_path(part).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("url") != url:
        return None
    validator = state.get("validator")
    return validator if isinstance(validator, str) and validator else None


def file_url_path(url: str) -> Path:
    """The local path of a ``file://`` URL; no third slash means relative to the cwd."""
    parts = urlsplit(url)
    host, path = parts.netloc, unquote(parts.path)
    if host in ("", "localhost"):
        return Path(path)
    return Path(host + path)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks (archives do not fit in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _copy_local(url: str, part: Path) -> None:
    source = file_url_path(url)
    if not source.is_file():
        raise SpeciesganError(f"cannot download {url}: no such file {source}")
    total = source.stat().st_size
    written = [0]
    try:
        with (
            open(source, "rb") as src,
            open(part, "wb") as dst,
            progress(total=total, unit="B", unit_scale=True, desc=source.name) as bar,
        ):
            _pump(src.read, dst, bar, written)
    except OSError as exc:
        _discard(part)  # a copy can restart at no cost: keep nothing partial
        message = disk_full_message(part, exc, written[0])
        if message:
            raise SpeciesganError(
                f"cannot copy {url}: {message} (the file is {total:,} bytes)"
            ) from None
        raise SpeciesganError(f"cannot copy {url} to {part}: {exc}") from None


def _pump(read: Callable[[int], bytes], fh: BinaryIO, bar: Any, written: list[int]) -> None:
    """Copy ``read``'s blocks into ``fh`` to the end and fsync; ``written[0]`` counts the
    bytes as they land, so a caller still knows how many after a failure."""
    while block := read(BLOCK_SIZE):
        fh.write(block)
        written[0] += len(block)
        bar.update(len(block))
    fh.flush()
    os.fsync(fh.fileno())


def _content_range_total(header: str | None) -> int | None:
    """The total size in a ``Content-Range: bytes a-b/N`` or ``bytes */N`` header."""
    match = re.search(r"/(\d+)\s*$", header or "")
    return int(match.group(1)) if match else None


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _open(
    url: str, part: Path, start: int, validator: str | None, timeout: float
) -> http.client.HTTPResponse | None:
    """Open ``url`` from byte ``start`` of ``part``; None: ``part`` already holds it all."""
    headers = {"User-Agent": USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
        if validator is not None:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only here
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start > 0:
            total = _content_range_total(exc.headers.get("Content-Range"))
            if total == start:
                return None
            _discard(part)  # longer than the file: not a prefix of it
            raise _TransientError(f"HTTP 416 for a {start}-byte partial file; restarting") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        raise SpeciesganError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _TransientError(str(getattr(exc, "reason", exc))) from exc


def _fetch_http(url: str, part: Path, timeout: float) -> None:
    """One attempt: continue ``part`` from where it ends, or restart it when needed."""
    start = part.stat().st_size if part.exists() else 0
    validator = _load_validator(url, part) if start else None
    if start and validator is None:
        log.info("%s: no ETag/Last-Modified recorded for %s; starting over", url, part)
        _discard(part)
        start = 0
    response = _open(url, part, start, validator, timeout)
    if response is None:
        return
    with response:
        if response.status == 206:
            if _content_range_start(response.headers.get("Content-Range")) != start:
                _discard(part)
                raise _TransientError("server answered a different byte range; restarting")
            if validator is None or not _same_version(response.headers, validator):
                _discard(part)
                raise _TransientError("the file changed on the server; restarting")
            mode = "ab"
        else:
            if start:
                log.info(
                    "%s: server sent the whole file (changed since the partial transfer, "
                    "or Range ignored); restarting from byte 0",
                    url,
                )
            _discard(part)
            start, mode = 0, "wb"
            part.touch()  # the bytes first, then the state that vouches for them
            fresh = _validator(response.headers)
            if fresh is not None:
                write_json(resume_state_path(part), {"url": url, "validator": fresh})
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        counted = [start]
        try:
            with (
                open(part, mode) as fh,
                progress(total=total, initial=start, unit="B", unit_scale=True,
                         desc=Path(urlsplit(url).path).name) as bar,
            ):  # fmt: skip
                _pump(response.read, fh, bar, counted)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _TransientError(
                f"transfer interrupted after {counted[0]} bytes: {exc!r}"
            ) from exc
        except OSError as exc:
            size = f" of {total:,}" if total else ""
            message = disk_full_message(
                part,
                exc,
                advice=f"The {counted[0]:,}{size} bytes received are kept; free some space and "
                "rerun to resume",
            )
            if message:
                raise SpeciesganError(f"cannot download {url}: {message}") from None
            raise SpeciesganError(f"cannot write {part} while downloading {url}: {exc}") from None
    if total is not None and counted[0] < total:
        raise _TransientError(f"connection closed after {counted[0]} of {total} bytes")


def _fetch_http_with_retries(
    url: str, part: Path, retries: int, timeout: float, backoff_s: float
) -> None:
    retries = max(retries, 0)
    for attempt in range(retries + 1):
        try:
            _fetch_http(url, part, timeout)
            return
        except _TransientError as exc:
            if attempt == retries:
                kept = part.stat().st_size if part.exists() else 0
                if kept and _load_validator(url, part) is not None:
                    advice = f"rerun to resume from the {kept} bytes kept in {part}"
                else:
                    advice = (
                        "rerun to start over: the server gave no ETag/Last-Modified to resume by"
                    )
                raise SpeciesganError(
                    f"cannot download {url}: {exc} (gave up after {retries + 1} attempts; {advice})"
                ) from None
            delay = min(backoff_s * 2**attempt, MAX_BACKOFF_S)
            log.warning("%s: %s; retry %d/%d in %.1f s", url, exc, attempt + 1, retries, delay)
            time.sleep(delay)


def download(
    url: str,
    out: Path,
    sha256: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    *,
    backoff_s: float = 1.0,
) -> Path:
    """Download ``url`` to ``out`` and return ``out``.

    ``retries`` extra attempts follow transient failures with exponential backoff
    (``backoff_s``, doubled each time, capped at a minute).  With ``sha256`` the
    result is verified; a mismatch deletes the partial file (it cannot be resumed
    into something correct) and raises.  Without it, the sum seen is logged so
    the user can pin it in the config.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(out)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        _discard(part)
        _copy_local(url, part)
    elif scheme in ("http", "https"):
        _fetch_http_with_retries(url, part, retries, timeout, backoff_s)
    else:
        raise SpeciesganError(
            f"cannot download {url}: only http://, https:// and file:// URLs are supported"
        )
    actual = sha256_of(part)
    if sha256 is not None and actual != sha256.lower():
        _discard(part)
        raise SpeciesganError(
            f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}; "
            "the partial file was deleted (fix the URL or the sha256 in the config)"
        )
    if sha256 is None:
        log.info("%s: sha256 %s (no expected sum configured; pin it to verify reruns)", url, actual)
    os.replace(part, out)
    with contextlib.suppress(OSError):
        resume_state_path(part).unlink()
    return out
