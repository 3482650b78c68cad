"""extract_archives(): good archives unpack in place; malicious ones are refused whole."""

from __future__ import annotations

import io
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from speciesgan.data.extract import extract_archives
from speciesgan.util.errors import SpeciesganError


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _only_out_dir_siblings(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_tar_gz_and_zip_are_merged_keeping_member_paths(tmp_path: Path) -> None:
    images = _tar(
        tmp_path / "images.tgz", [("Images/a/1.jpg", b"one"), ("Images/b/2.jpg", b"two")], "w:gz"
    )
    lists = tmp_path / "lists.zip"
    with zipfile.ZipFile(lists, "w") as zf:
        zf.writestr("lists/train.txt", "1\n")
    out = tmp_path / "work" / "extracted"
    extract_archives([images, lists], out)
    assert (out / "Images" / "a" / "1.jpg").read_bytes() == b"one"
    assert (out / "Images" / "b" / "2.jpg").read_bytes() == b"two"
    assert (out / "lists" / "train.txt").read_text() == "1\n"
    assert _only_out_dir_siblings(tmp_path / "work") == ["extracted"]


def test_existing_output_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "extracted"
    (out / "stale").mkdir(parents=True)
    extract_archives([_tar(tmp_path / "a.tar", [("new.txt", b"x")])], out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (("/etc/evil", b"x"), "absolute path"),
        (("ok/../../evil", b"x"), "'..'"),
        (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_special("hard", tarfile.LNKTYPE, "ok/file"), "link"),
        (_special("fifo", tarfile.FIFOTYPE), "FIFO"),
        (_special("dev", tarfile.CHRTYPE), "device"),
    ],
    ids=["absolute", "dotdot", "symlink", "hardlink", "fifo", "chardev"],
)
def test_malicious_tar_member_is_refused_and_nothing_is_left(
    tmp_path: Path, member: tarfile.TarInfo | tuple[str, bytes], problem: str
) -> None:
    archive = _tar(tmp_path / "bad.tar", [("ok/file", b"fine"), member])
    out = tmp_path / "out" / "extracted"
    name = member.name if isinstance(member, tarfile.TarInfo) else member[0]
    with pytest.raises(SpeciesganError, match=problem) as info:
        extract_archives([archive], out)
    assert str(archive) in str(info.value) and name in str(info.value)
    assert not out.exists()
    assert _only_out_dir_siblings(tmp_path / "out") == []
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a\\..\\..\\evil.txt"])
def test_malicious_zip_member_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(name, "evil")
    with pytest.raises(SpeciesganError, match="refusing member"):
        extract_archives([archive], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(SpeciesganError, match="symbolic link"):
        extract_archives([archive], tmp_path / "out")


def test_second_bad_archive_leaves_no_output_from_the_first(tmp_path: Path) -> None:
    good = _tar(tmp_path / "good.tar", [("a.txt", b"a")])
    bad = _tar(tmp_path / "bad.tar", [("../b.txt", b"b")])
    with pytest.raises(SpeciesganError):
        extract_archives([good, bad], tmp_path / "out" / "x")
    assert _only_out_dir_siblings(tmp_path / "out") == []


def test_truncated_or_non_archive_is_a_clear_error(tmp_path: Path) -> None:
    whole = _tar(tmp_path / "whole.tgz", [(f"f{i}", bytes(5000)) for i in range(20)], "w:gz")
    truncated = tmp_path / "cut.tgz"
    truncated.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(SpeciesganError, match="cut.tgz"):
        extract_archives([truncated], tmp_path / "out")
    html = tmp_path / "page.tar"
    html.write_text("<html>Access denied</html>")
    with pytest.raises(SpeciesganError, match="page.tar"):
        extract_archives([html], tmp_path / "out")
    with pytest.raises(SpeciesganError, match="no such file"):
        extract_archives([tmp_path / "absent.tar"], tmp_path / "out")


def test_many_members_stream_quickly(tmp_path: Path) -> None:
    members = [(f"Images/d{i % 100:03d}/img_{i:05d}.jpg", b"x" * 64) for i in range(5000)]
    archive = _tar(tmp_path / "many.tar", members)
    start = time.perf_counter()
    extract_archives([archive], tmp_path / "out")
    elapsed = time.perf_counter() - start
    assert sum(1 for _ in (tmp_path / "out" / "Images").rglob("*.jpg")) == 5000
    assert elapsed < 20, f"5000 members took {elapsed:.1f} s"


def test_killed_extraction_leaves_a_staging_folder_the_next_run_removes(tmp_path: Path) -> None:
    from tests.helpers.killed_run import run_killed_at_rename

    archive = _tar(tmp_path / "a.tar", [("Images/a/1.jpg", b"one" * 10_000)])
    out = tmp_path / "work" / "extracted"
    run_killed_at_rename(
        f"""
        from pathlib import Path
        from speciesgan.data.extract import extract_archives
        extract_archives([Path({str(archive)!r})], Path({str(out)!r}))
        """
    )
    debris = _only_out_dir_siblings(tmp_path / "work")
    assert len(debris) == 1 and debris[0].startswith(".extracted.")
    extract_archives([archive], out)
    assert _only_out_dir_siblings(tmp_path / "work") == ["extracted"]
    assert (out / "Images" / "a" / "1.jpg").read_bytes() == b"one" * 10_000


def _gzip_of_zeros_tar(path: Path, member_size: int) -> Path:
    """A genuine .tar.gz (one gzip member) holding ``member_size`` zero bytes, made in ~0.2 s.

    Deflating half a gigabyte takes seconds, so the stream is assembled: after a
    full flush a deflate encoder keeps no history, so the bytes it emits for one
    MiB of zeros are valid wherever they are repeated.  The gzip frame (header,
    CRC-32, length) is written by hand around the raw deflate data.
    """
    info = tarfile.TarInfo("zeros.bin")
    info.size = member_size
    header, chunk, end = info.tobuf(format=tarfile.GNU_FORMAT), bytes(1 << 20), bytes(1024)
    assert member_size % len(chunk) == 0
    encoder = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = zlib.crc32(header)
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        fh.write(encoder.compress(header) + encoder.flush(zlib.Z_FULL_FLUSH))
        block = encoder.compress(chunk) + encoder.flush(zlib.Z_FULL_FLUSH)
        for _ in range(member_size // len(chunk)):
            fh.write(block)
            crc = zlib.crc32(chunk, crc)
        fh.write(encoder.compress(end) + encoder.flush(zlib.Z_FINISH))  # end-of-archive blocks
        crc = zlib.crc32(end, crc)
        fh.write(struct.pack("<II", crc, (len(header) + member_size + len(end)) & 0xFFFFFFFF))
    return path


def test_decompression_bomb_tar_is_refused_before_it_fills_the_disk(tmp_path: Path) -> None:
    """512 MiB of zeros from a ~0.5 MB .tar.gz: refused by the default limits, nothing written."""
    archive = _gzip_of_zeros_tar(tmp_path / "bomb.tar.gz", 512 << 20)
    assert archive.stat().st_size < 1 << 20
    with tarfile.open(archive, "r|gz") as tar:  # a well-formed archive, not a broken one
        first = tar.next()
        assert first is not None and first.size == 512 << 20
    out = tmp_path / "out" / "extracted"
    with pytest.raises(SpeciesganError, match="compression ratio") as info:
        extract_archives([archive], out)
    assert str(archive) in str(info.value)
    assert _only_out_dir_siblings(tmp_path / "out") == []


def test_zip_bomb_is_refused_by_its_declared_sizes(tmp_path: Path) -> None:
    from speciesgan.data.extract import ExtractLimits

    limits = ExtractLimits(ratio_floor_bytes=1 << 20)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(20 << 20))
    with pytest.raises(SpeciesganError, match="compression ratio") as info:
        extract_archives([bomb], tmp_path / "out", limits=limits)
    assert str(bomb) in str(info.value)
    assert not (tmp_path / "out").exists()
    honest = tmp_path / "photos.zip"
    with zipfile.ZipFile(honest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("noise.bin", np.random.default_rng(0).bytes(2 << 20))
    extract_archives([honest], tmp_path / "out", limits=limits)
    assert (tmp_path / "out" / "noise.bin").stat().st_size == 2 << 20


def test_total_size_cap_names_the_archive_that_crosses_it(tmp_path: Path) -> None:
    from speciesgan.data.extract import ExtractLimits

    rng = np.random.default_rng(1)
    first = _tar(tmp_path / "first.tar", [("a.bin", rng.bytes(600_000))])
    second = _tar(tmp_path / "second.tar", [("b.bin", rng.bytes(600_000))])
    limits = ExtractLimits(max_total_bytes=1_000_000)
    with pytest.raises(SpeciesganError, match="second.tar") as info:
        extract_archives([first, second], tmp_path / "out", limits=limits)
    assert "b.bin" in str(info.value)
    assert not (tmp_path / "out").exists()
