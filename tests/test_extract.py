"""extract_archives(): good archives unpack in place; malicious ones are refused whole."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from speciesgan.data.extract import extract_archives
from speciesgan.errors import SpeciesganError


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
