"""Read one large array out of a JSON object without loading the whole file.

Detector output files (MegaDetector's batch JSON for a 200k-photo collection is
hundreds of MB, with up to a hundred boxes per photo) would take several GB as
Python objects if read with ``json.load``.  Here the file is read in chunks and
the elements of one top-level array are decoded one at a time with the C
decoder of the standard library (``JSONDecoder.raw_decode``), handed to a
callback and dropped; the other top-level members are small and are returned.
Memory is bounded by the largest single element, not by the file.

A value that straddles a chunk boundary fails to decode (or, for a number,
decodes short): it is simply decoded again once more text has been read.  A
value still unreadable at the end of the file, or longer than
``MAX_ELEMENT_CHARS``, is a syntax error, reported with the file and the
character offset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from speciesgan.util.errors import SpeciesganError

CHUNK_CHARS = 1 << 20
MAX_ELEMENT_CHARS = 64 << 20
"""One element (one photo's detections) beyond this is taken for a broken file:
without a cap, a syntax error early on would make the reader buffer the rest."""
WHITESPACE = " \t\n\r"


class _Reader:
    """A sliding text buffer over ``fh`` with the offset of its start in the file."""

    def __init__(self, fh: TextIO, path: Path) -> None:
        self.fh = fh
        self.path = path
        self.buf = ""
        self.pos = 0  # position in buf
        self.offset = 0  # characters of the file before buf[0]
        self.eof = False
        self.decoder = json.JSONDecoder()

    def error(self, what: str) -> SpeciesganError:
        where = self.offset + self.pos
        return SpeciesganError(f"{self.path}: not valid JSON at character {where}: {what}")

    def _more(self) -> bool:
        """Append the next chunk (dropping consumed text first); False at end of file."""
        if self.eof:
            return False
        if self.pos:
            self.offset += self.pos
            self.buf = self.buf[self.pos :]
            self.pos = 0
        chunk = self.fh.read(CHUNK_CHARS)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def peek(self) -> str:
        """The next non-whitespace character (not consumed), "" at end of file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        """Consume the next non-whitespace character, which must be one of ``chars``."""
        found = self.peek()
        if not found or found not in chars:
            shown = repr(found) if found else "end of file"
            raise self.error(f"expected one of {' '.join(chars)}, found {shown}")
        self.pos += 1
        return found

    def value(self) -> Any:
        """Decode the next JSON value, reading more text until it is complete."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > MAX_ELEMENT_CHARS or not self._more():
                    raise self.error(exc.msg) from None
                continue
            # a value that ends exactly at the buffer's end may be a cut number
            if end == len(self.buf) and self._more():
                continue
            self.pos = end
            return value


def read_streamed(path: Path, array_key: str, on_item: Callable[[Any], None]) -> dict[str, Any]:
    """Call ``on_item`` for each element of ``{..., array_key: [...], ...}`` in ``path``.

    Returns the object's other members.  Raises SpeciesganError naming the file
    when it is not a JSON object, has no ``array_key`` or that is not an array.
    """
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise SpeciesganError(f"{path}: cannot read: {exc.strerror or exc}") from None
    members: dict[str, Any] = {}
    seen = False
    try:
        with fh:
            reader = _Reader(fh, path)
            reader.expect("{")
            if reader.peek() == "}":
                reader.expect("}")
            else:
                while True:
                    key = reader.value()
                    if not isinstance(key, str):
                        raise reader.error(f"object key must be a string, not {key!r}")
                    reader.expect(":")
                    if key == array_key:
                        seen = True
                        _stream_array(reader, array_key, on_item)
                    else:
                        members[key] = reader.value()
                    if reader.expect(",}") == "}":
                        break
            if reader.peek():
                raise reader.error("text after the end of the top-level object")
    except UnicodeDecodeError as exc:
        raise SpeciesganError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not seen:
        raise SpeciesganError(
            f"{path}: no {array_key!r} list in the top-level object (keys: {sorted(members)})"
        )
    return members


def _stream_array(reader: _Reader, key: str, on_item: Callable[[Any], None]) -> None:
    if reader.peek() != "[":
        raise reader.error(f"{key!r} must be a list")
    reader.expect("[")
    if reader.peek() == "]":
        reader.expect("]")
        return
    while True:
        on_item(reader.value())
        if reader.expect(",]") == "]":
            return
