"""download(): resume, retry, checksum, atomic output, clear errors, file:// URLs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from speciesgan.cli import main
from speciesgan.data.download import download, part_path
from speciesgan.util.errors import SpeciesganError
from tests.helpers.http_server import ServerState, etag_of, serve

PAYLOAD = np.random.default_rng(7).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


OTHER = np.random.default_rng(8).integers(0, 256, len(PAYLOAD), dtype=np.uint8).tobytes()
"""Another version of the file, as when a mirror replaces an archive between two runs."""


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def interrupted_download(state: ServerState, url: str, out: Path) -> int:
    """Leave the resume state a killed run leaves: the connection drops half-way, no retry."""
    state.cut_first = 1
    with pytest.raises(SpeciesganError, match="rerun to (resume|start over)"):
        download(url, out, retries=0)
    assert not out.exists()
    state.range_headers.clear()
    state.if_range_headers.clear()
    return part_path(out).stat().st_size


def test_plain_download_verifies_and_leaves_only_the_output(tmp_path: Path) -> None:
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        out = download(f"{base}/a.tar", tmp_path / "dl" / "a.tar", sha256=PAYLOAD_SHA)
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "dl") == ["a.tar"]
    assert state.range_headers == [None]


def test_connection_cut_midway_is_resumed_with_a_range_request(tmp_path: Path) -> None:
    state = ServerState(files={"/a.tar": PAYLOAD}, cut_first=1)
    with serve(state) as base:
        out = download(f"{base}/a.tar", tmp_path / "a.tar", sha256=PAYLOAD_SHA, backoff_s=0.01)
    assert out.read_bytes() == PAYLOAD
    assert state.range_headers[0] is None
    assert len(state.range_headers) == 2
    resumed_from = int(state.range_headers[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from < len(PAYLOAD)
    assert not part_path(out).exists()


def test_part_file_from_a_killed_run_is_continued_if_the_file_is_unchanged(
    tmp_path: Path,
) -> None:
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        kept = interrupted_download(state, f"{base}/a.tar", out)
        download(f"{base}/a.tar", out, sha256=PAYLOAD_SHA)
    assert state.range_headers == [f"bytes={kept}-"]
    assert state.if_range_headers == [etag_of(PAYLOAD)]
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["a.tar"]


def test_part_file_of_a_replaced_file_is_not_resumed_into_a_mix(tmp_path: Path) -> None:
    """The server's file changed since the killed run: If-Range makes it send the new one whole.

    Without a pinned sha256 (the official archives have none) a mix of the old
    file's head and the new one's tail would be accepted as the archive.
    """
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        interrupted_download(state, f"{base}/a.tar", out)
        state.files["/a.tar"] = OTHER
        download(f"{base}/a.tar", out)
    assert out.read_bytes() == OTHER
    assert state.if_range_headers == [etag_of(PAYLOAD)]  # it asked, the server said "changed"
    assert _leftovers(tmp_path) == ["a.tar"]


def test_replaced_file_is_caught_even_if_the_server_ignores_if_range(tmp_path: Path) -> None:
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD}, honour_if_range=False)
    with serve(state) as base:
        interrupted_download(state, f"{base}/a.tar", out)
        state.files["/a.tar"] = OTHER
        download(f"{base}/a.tar", out, backoff_s=0.01)
    assert out.read_bytes() == OTHER


def test_without_etag_or_last_modified_a_part_file_is_not_resumed(tmp_path: Path) -> None:
    """Nothing can tell whether the bytes kept belong to the file served now: start over."""
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD}, validators=False)
    with serve(state) as base:
        interrupted_download(state, f"{base}/a.tar", out)
        state.files["/a.tar"] = OTHER
        download(f"{base}/a.tar", out)
    assert state.range_headers == [None]
    assert out.read_bytes() == OTHER


def test_part_file_without_resume_state_is_not_trusted(tmp_path: Path) -> None:
    """A ``.part`` left by something else (or an older version) is not continued."""
    out = tmp_path / "a.tar"
    part_path(out).write_bytes(OTHER[:1_000_000])
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        download(f"{base}/a.tar", out)
    assert state.range_headers == [None]
    assert out.read_bytes() == PAYLOAD


def test_server_that_ignores_range_restarts_from_zero(tmp_path: Path) -> None:
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD}, ignore_range=True)
    with serve(state) as base:
        interrupted_download(state, f"{base}/a.tar", out)
        download(f"{base}/a.tar", out, sha256=PAYLOAD_SHA)
    assert out.read_bytes() == PAYLOAD


def test_complete_part_file_gets_416_and_is_accepted(tmp_path: Path) -> None:
    """Killed after the last byte arrived but before the rename."""
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        interrupted_download(state, f"{base}/a.tar", out)
        part_path(out).write_bytes(PAYLOAD)
        download(f"{base}/a.tar", out, sha256=PAYLOAD_SHA)
    assert out.read_bytes() == PAYLOAD
    assert state.range_headers == [f"bytes={len(PAYLOAD)}-"]


def test_oversized_part_file_is_discarded_after_416(tmp_path: Path) -> None:
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        interrupted_download(state, f"{base}/a.tar", out)
        part_path(out).write_bytes(PAYLOAD + b"garbage")
        download(f"{base}/a.tar", out, sha256=PAYLOAD_SHA, backoff_s=0.01)
    assert out.read_bytes() == PAYLOAD


def test_transient_5xx_is_retried(tmp_path: Path) -> None:
    state = ServerState(files={"/a.tar": PAYLOAD}, fail_first=2)
    with serve(state) as base:
        out = download(f"{base}/a.tar", tmp_path / "a.tar", backoff_s=0.01)
    assert out.read_bytes() == PAYLOAD
    assert len(state.range_headers) == 3


def test_retries_exhausted_is_a_clear_error_and_keeps_no_output(tmp_path: Path) -> None:
    state = ServerState(files={"/a.tar": PAYLOAD}, fail_first=10)
    with serve(state) as base, pytest.raises(SpeciesganError, match="503") as info:
        download(f"{base}/a.tar", tmp_path / "a.tar", retries=2, backoff_s=0.01)
    assert "/a.tar" in str(info.value)
    assert "3 attempts" in str(info.value)
    assert not (tmp_path / "a.tar").exists()


def test_wrong_checksum_removes_everything_and_names_both_sums(tmp_path: Path) -> None:
    wrong = "0" * 64
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base, pytest.raises(SpeciesganError) as info:
        download(f"{base}/a.tar", tmp_path / "a.tar", sha256=wrong)
    message = str(info.value)
    assert wrong in message and PAYLOAD_SHA in message and f"{base}/a.tar" in message
    assert _leftovers(tmp_path) == []


def test_404_is_a_clear_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ServerState(files={})
    with serve(state) as base:
        status = main(
            ["download", "--url", f"{base}/missing.tar", "--out", str(tmp_path / "m.tar")]
        )
    err = capsys.readouterr().err
    assert status == 1
    assert "404" in err and f"{base}/missing.tar" in err
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == []
    assert len(state.range_headers) == 1  # a 404 is not retried


def test_file_url_absolute(tmp_path: Path) -> None:
    source = tmp_path / "src" / "x.tar"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    out = download(f"file://{source}", tmp_path / "out" / "x.tar", sha256=PAYLOAD_SHA)
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "out") == ["x.tar"]


def test_file_url_without_third_slash_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data" / "demo").mkdir(parents=True)
    (tmp_path / "data" / "demo" / "x.tar").write_bytes(b"demo bytes")
    monkeypatch.chdir(tmp_path)
    out = download("file://data/demo/x.tar", Path("downloads/x.tar"))
    assert (tmp_path / "downloads" / "x.tar").read_bytes() == b"demo bytes"
    assert out == Path("downloads/x.tar")


def test_missing_local_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="no such file"):
        download(f"file://{tmp_path}/nope.tar", tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_partial_answer_without_a_validator_is_not_appended_to_a_stale_part(
    tmp_path: Path,
) -> None:
    """A stale ``.part`` and a server that answers 206 with no ETag or Last-Modified (and
    ignores If-Range): the old bytes and the new file's tail must not be joined."""
    out = tmp_path / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        kept = interrupted_download(state, f"{base}/a.tar", out)
        assert 0 < kept < len(PAYLOAD)
        state.files["/a.tar"] = OTHER
        state.validators, state.honour_if_range = False, False
        download(f"{base}/a.tar", out, backoff_s=0.01)
    assert out.read_bytes() == OTHER
    assert state.range_headers[0] is not None  # it did try to resume, and refused the answer


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_full_disk_names_the_file_and_the_size(
    tmp_path: Path, small_disk: Path, scheme: str
) -> None:
    """3 MB into a 512 KiB file system: a user error naming the file, not a raw ENOSPC."""
    source = tmp_path / "a.tar"
    source.write_bytes(PAYLOAD)
    out = small_disk / "a.tar"
    state = ServerState(files={"/a.tar": PAYLOAD})
    with serve(state) as base:
        url = source.as_uri() if scheme == "file" else f"{base}/a.tar"
        with pytest.raises(SpeciesganError) as error:
            download(url, out, retries=0)
    message = str(error.value)
    assert str(part_path(out)) in message and "no space left" in message
    assert f"{len(PAYLOAD):,}" in message  # the space the whole file needs
    assert not out.exists()
    if scheme == "file":  # a local copy restarts at no cost: nothing is kept
        assert list(small_disk.iterdir()) == []
