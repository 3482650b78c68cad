"""Damage a saved torch file the way a disk fault or a bad copy does: same size, other bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path


def overwrite_tensor_bytes(path: Path, count: int = 400, fill: int = 0xFF) -> bytes:
    """Overwrite ``count`` bytes inside the largest tensor storage of ``path``; return the file.

    torch saves a zip with one stored (uncompressed) member per tensor storage, so
    the bytes land in tensor data and ``torch.load`` still succeeds: only a content
    check can tell.
    """
    with zipfile.ZipFile(path) as archive:
        members = [i for i in archive.infolist() if "/data/" in i.filename]
        largest = max(members, key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    # local file header: 30 fixed bytes, then the name and the extra field
    name_length = int.from_bytes(
        data[largest.header_offset + 26 : largest.header_offset + 28], "little"
    )
    extra_length = int.from_bytes(
        data[largest.header_offset + 28 : largest.header_offset + 30], "little"
    )
    start = largest.header_offset + 30 + name_length + extra_length
    count = min(count, largest.file_size)
    data[start : start + count] = bytes([fill]) * count
    path.write_bytes(bytes(data))
    return bytes(data)
