"""The storage conformance suite: every backend must pass it (today: the local directory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from warroom.errors import NotFoundError, StorageError
from warroom.storage import Storage, open_storage


@pytest.fixture(params=["file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage(f"file://{tmp_path}/repo")


def test_put_get_stat_list(backend: Storage) -> None:
    assert backend.put("a/b/one", [b"hello ", b"world"]) == 11
    backend.put("a/two", [b"x" * (3 << 20)])
    assert b"".join(backend.get("a/b/one")) == b"hello world"
    assert backend.stat("a/two").size == 3 << 20
    assert [info.key for info in backend.list("a/")] == ["a/b/one", "a/two"]
    assert [info.key for info in backend.list("a/b")] == ["a/b/one"]
    assert backend.children("a") == ["b", "two"]


def test_put_replaces_atomically(backend: Storage) -> None:
    backend.put("k", [b"old"])
    backend.put("k", [b"new"])
    assert b"".join(backend.get("k")) == b"new"


def test_failed_put_leaves_nothing_visible(backend: Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial data"
        raise RuntimeError("source died")

    backend.put("keep", [b"old"])
    with pytest.raises(RuntimeError):
        backend.put("keep", broken())
    with pytest.raises(RuntimeError):
        backend.put("new", broken())
    assert b"".join(backend.get("keep")) == b"old"
    with pytest.raises(NotFoundError):
        backend.stat("new")
    assert [info.key for info in backend.list()] == ["keep"]


def test_missing_objects_raise_not_found(backend: Storage) -> None:
    with pytest.raises(NotFoundError):
        backend.get("nope")
    with pytest.raises(NotFoundError):
        backend.stat("nope")
    assert list(backend.list("nope/")) == [] and backend.children("nope") == []


def test_delete_is_idempotent(backend: Storage) -> None:
    backend.put("d/x", [b"1"])
    backend.put("d/y", [b"2"])
    backend.delete("d/x")
    backend.delete("d/x")
    assert [info.key for info in backend.list()] == ["d/y"]
    backend.delete_prefix("d/")
    backend.delete_prefix("d/")
    assert list(backend.list()) == []


def test_closing_a_stream_early(backend: Storage) -> None:
    backend.put("big", [b"z" * (5 << 20)])
    stream = backend.get("big")
    assert next(stream)
    stream.close()


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_keys_are_checked(backend: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        backend.put(key, [b""])


def test_unwritable_repository_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    storage = open_storage(tmp_path / "file" / "repo")
    with pytest.raises(StorageError, match="cannot"):
        storage.put("x", [b"1"])


def test_unknown_scheme_is_refused() -> None:
    from warroom.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ftp"):
        open_storage("ftp://host/x")
