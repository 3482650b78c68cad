"""A content hash sealed into every saved checkpoint and model, checked on load.

``torch.load`` checks no sums: bytes overwritten inside a tensor's storage (a disk
fault, a bad copy, a hand edit) load without complaint as other numbers, and a run
resumed from them trains on, or exports, garbage.  So every payload this package
saves carries ``content_sha256``: a SHA-256 over its structure, its plain values
and the raw bytes of each tensor, and every loader recomputes and compares it.

The hash is of the contents, not of the file: it does not depend on how torch
lays out the zip, so equal payloads give equal hashes (and files stay
byte-identical across resumed and uninterrupted runs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

CONTENT_HASH_KEY = "content_sha256"


def _feed(digest: Any, value: Any) -> None:
    """Write a tagged, unambiguous encoding of ``value`` into ``digest``."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        header = f"T{value.dtype}{tuple(value.shape)}{flat.numel()}:"
        digest.update(header.encode())
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: repr(item[0]))
        digest.update(f"D{len(items)}:".encode())
        for key, item in items:
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, bool | int | float | str | bytes):
        text = repr(value)
        digest.update(f"{type(value).__name__[0]}{len(text)}:{text}".encode())
    else:  # torch.dtype, torch.Size and other plain values torch may save
        text = repr(value)
        digest.update(f"O{type(value).__name__}{len(text)}:{text}".encode())


def content_sha256(payload: Mapping[str, Any]) -> str:
    """SHA-256 of everything in ``payload`` except its own ``content_sha256`` entry."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != CONTENT_HASH_KEY})
    return digest.hexdigest()


def sealed(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with its content hash added (as the last key)."""
    body = {k: v for k, v in payload.items() if k != CONTENT_HASH_KEY}
    return {**body, CONTENT_HASH_KEY: content_sha256(body)}


def seal_problem(payload: Any, *, required: bool = False) -> str | None:
    """Why ``payload`` fails its content hash, or None when it matches.

    A payload without a hash was written before hashes were added: accepted (None)
    unless ``required``.  Callers put the file's name and their advice around it.
    """
    if not isinstance(payload, Mapping):
        return None  # not ours: the caller's own checks say what it is
    recorded = payload.get(CONTENT_HASH_KEY)
    if recorded is None:
        return "it carries no content hash, so it cannot be checked" if required else None
    actual = content_sha256(payload)
    if actual != recorded:
        return (
            f"its contents do not match the content hash it was written with (recorded "
            f"{str(recorded)[:12]}..., now {actual[:12]}...): its bytes changed after it was "
            "saved (a disk fault, a bad copy, an edit)"
        )
    return None
