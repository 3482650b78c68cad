"""Safe, atomic extraction of dataset archives.

Archives come from the internet (or a mirror a user configured), so a member
must never land outside the output folder: absolute names, ``..`` components,
links and device/FIFO members are refused, naming the archive and member.  The
whole set of archives is unpacked into a temporary sibling folder that is
renamed onto ``out_dir`` only at the end, so a job killed half-way (SLURM time
limit) leaves no complete-looking ``extracted/`` for Snakemake to trust.

Tar archives are read in one streaming pass (``r|*``: no seeking, no member
table held in memory), which matters for the 20k-member Stanford Dogs tar.
Member paths are kept as they are: the source readers expect the real layout.

A decompression bomb (a small archive that expands to fill the disk) is
refused by its declared sizes before its data is written: members' sizes are
added up as their headers are read (tar) or from the central directory (zip;
``zipfile`` never returns more than a member declares), against a total cap
and a cap on the expansion per archive byte (``ExtractLimits``).  Photos are
already compressed, so real dataset archives expand about 1:1.

A staging folder left by a killed job is removed by the next extraction into
the same folder (``atomic.remove_stale_temps``).
"""

from __future__ import annotations

import logging
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from speciesgan.util.atomic import atomic_folder
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress

log = logging.getLogger(__name__)

COPY_BUFFER = 1 << 20


@dataclass(frozen=True)
class ExtractLimits:
    """How much extraction may write before the archives count as a decompression bomb.

    ``max_total_bytes``: all archives of one dataset together (1 TiB; the largest
    public animal collections are a few hundred GB).  ``max_ratio``: uncompressed
    bytes per byte of one archive, enforced once it expands past
    ``ratio_floor_bytes`` (small text archives compress well and are harmless);
    JPEG collections are ~1:1, text rarely beats 20:1, a bomb is 1000:1 or more.
    """

    max_total_bytes: int = 1 << 40
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 256 << 20


class _Budget:
    """Running totals of declared member sizes, checked before each member is written."""

    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self.total = 0

    def start(self, archive: Path) -> None:
        self.archive = archive
        self.archive_size = archive.stat().st_size
        self.archive_total = 0

    def take(self, name: str, size: int) -> None:
        self.total += size
        self.archive_total += size
        limits = self.limits
        if self.total > limits.max_total_bytes:
            raise SpeciesganError(
                f"{self.archive}: refusing member {name!r}: the archives would expand to more "
                f"than {limits.max_total_bytes} bytes in all (a decompression bomb?)"
            )
        allowed = max(limits.ratio_floor_bytes, limits.max_ratio * self.archive_size)
        if self.archive_total > allowed:
            raise SpeciesganError(
                f"{self.archive}: refusing member {name!r}: the {self.archive_size}-byte archive "
                f"would expand to {self.archive_total} bytes or more, a compression ratio above "
                f"{limits.max_ratio:g} (a decompression bomb?)"
            )


def safe_member_path(archive: Path, name: str) -> PurePosixPath:
    """The relative path a member may be written to; raises for unsafe names.

    Backslashes count as separators too: a Windows-made zip can smuggle
    ``..\\..\\x`` past a check that only splits on ``/``.
    """
    unified = name.replace("\\", "/")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise SpeciesganError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in parts:
        raise SpeciesganError(f"{archive}: refusing member {name!r}: '..' in path")
    if not parts:
        raise SpeciesganError(f"{archive}: refusing member {name!r}: empty path")
    return PurePosixPath(*parts)


def _write_member(data, target: Path) -> None:  # noqa: ANN001 - a binary file object
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as fh:
        shutil.copyfileobj(data, fh, COPY_BUFFER)


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> int:
    count = 0
    with tarfile.open(archive, mode="r|*") as tar:
        for member in progress(tar, desc=archive.name, unit="file"):
            rel = safe_member_path(archive, member.name)
            if member.issym() or member.islnk():
                raise SpeciesganError(
                    f"{archive}: refusing member {member.name!r}: link to {member.linkname!r}"
                )
            if member.isdir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                budget.take(member.name, member.size)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise SpeciesganError(f"{archive}: cannot read member {member.name!r}")
                _write_member(source, dest / rel)
                count += 1
            else:
                raise SpeciesganError(
                    f"{archive}: refusing member {member.name!r}: device, FIFO or other special file"
                )
    return count


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():  # the whole budget first: nothing written for a bomb
            if not info.is_dir():
                budget.take(info.filename, info.file_size)
        for info in progress(zf.infolist(), desc=archive.name, unit="file"):
            rel = safe_member_path(archive, info.filename)
            mode = info.external_attr >> 16  # Unix st_mode when made on Unix; file type may be 0
            if stat.S_ISLNK(mode):
                raise SpeciesganError(
                    f"{archive}: refusing member {info.filename!r}: symbolic link"
                )
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise SpeciesganError(
                    f"{archive}: refusing member {info.filename!r}: device, FIFO or other special file"
                )
            if info.is_dir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as source:
                _write_member(source, dest / rel)
            count += 1
    return count


def _extract_one(archive: Path, dest: Path, budget: _Budget) -> int:
    if not archive.is_file():
        raise SpeciesganError(f"cannot extract {archive}: no such file")
    budget.start(archive)
    try:
        if zipfile.is_zipfile(archive):
            return _extract_zip(archive, dest, budget)
        return _extract_tar(archive, dest, budget)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise SpeciesganError(
            f"cannot extract {archive}: not a readable tar/zip archive or truncated ({exc}); "
            "delete it to download it again"
        ) from None
    except OSError as exc:
        raise SpeciesganError(f"cannot extract {archive}: {exc}") from None


def extract_archives(
    archives: list[Path], out_dir: Path, limits: ExtractLimits | None = None
) -> None:
    """Unpack ``archives`` (tar, tar.gz/tgz/bz2/xz, zip) together into ``out_dir``.

    An existing ``out_dir`` is replaced only once everything has been unpacked.
    ``limits`` defaults to ``ExtractLimits()``.
    """
    budget = _Budget(limits or ExtractLimits())
    with atomic_folder(out_dir) as staging:
        for archive in archives:
            count = _extract_one(Path(archive), staging, budget)
            log.info("extracted %d files from %s", count, archive)
