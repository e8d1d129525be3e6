"""Base backups are extracted safely on every Python 3.11: through tarfile's data filter where it
exists (3.11.4+), through warroom's own member checks before that (forced here by hiding the
filter; tests/integration/test_pitr.py also runs under Debian 12's python3, 3.11.2)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from warroom.database.pitr import extract_safely
from warroom.errors import IntegrityError


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    buffer.seek(0)
    return buffer


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o600 if kind == tarfile.REGTYPE else 0o700
    return info


@pytest.fixture(params=["data filter", "own checks"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "data filter" and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter (older than 3.11.4)")
    if request.param == "own checks":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)


def _extract(buffer: io.BytesIO, destination: Path) -> None:
    with tarfile.open(fileobj=buffer, mode="r|") as archive:
        extract_safely(archive, destination, "base")


def test_a_plain_data_directory_is_extracted(mode: str, tmp_path: Path) -> None:
    destination = tmp_path / "data"
    destination.mkdir()
    _extract(
        _tar(
            (_member("global", tarfile.DIRTYPE), b""),
            (_member("global/pg_control"), b"control"),
            (_member("PG_VERSION"), b"15\n"),
            (_member("pg_wal", tarfile.SYMTYPE, "global"), b""),
            (_member("copy", tarfile.LNKTYPE, "PG_VERSION"), b""),
        ),
        destination,
    )
    assert (destination / "global" / "pg_control").read_bytes() == b"control"
    assert (destination / "pg_wal").resolve() == (destination / "global").resolve()
    assert (destination / "copy").read_bytes() == b"15\n"


@pytest.mark.parametrize(
    "member",
    [
        _member("../escaped"),
        _member("a/../../escaped"),
        _member("escaped", tarfile.SYMTYPE, "/etc"),
        _member("escaped", tarfile.SYMTYPE, "../outside"),
        _member("escaped", tarfile.LNKTYPE, "../outside"),
        _member("device", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "abs-symlink", "symlink-out", "hardlink-out", "chr", "fifo"],
)
def test_unsafe_members_are_refused(mode: str, tmp_path: Path, member: tarfile.TarInfo) -> None:
    (tmp_path / "outside").write_bytes(b"keep")
    destination = tmp_path / "data"
    destination.mkdir()
    with pytest.raises(IntegrityError, match="base backup base holds an unsafe member"):
        _extract(_tar((member, b"")), destination)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "outside"]
    assert list(destination.iterdir()) == []


def test_an_absolute_path_never_lands_outside(mode: str, tmp_path: Path) -> None:
    destination = tmp_path / "data"
    destination.mkdir()
    outside = tmp_path / "abs-target"
    try:
        _extract(_tar((_member(str(outside)), b"x")), destination)  # the filter strips the /
    except IntegrityError:
        assert mode == "own checks"  # which refuse it
    assert not outside.exists()
