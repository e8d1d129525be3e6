"""The local-directory storage backend (``file://`` or a plain path).

Writes are atomic in the way restic's local backend is: a temporary file in the destination
directory, written (parts at their offsets, so they may arrive in any order), fsynced, renamed
over the final name, then the directory fsynced. Temporary files start with ``.tmp-``, are never
listed, and are what :meth:`LocalStorage.sweep_uploads` removes once they are old. Files and
directories get the modes :mod:`warroom.storage.files` gives them.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from warroom.errors import NotFoundError
from warroom.repository.storage import MiB, ObjectInfo, Part, PartWiseWrites, check_key
from warroom.storage.files import make_dirs, open_new, storage_error

__all__ = ["LocalStorage"]

READ_CHUNK = MiB
TEMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileChunks:
    """A file read in chunks, closed when exhausted or by ``close``."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self._handle = handle
        self._path = path

    def __iter__(self) -> _FileChunks:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = self._handle.read(READ_CHUNK)
        except OSError as exc:
            self.close()
            raise storage_error("read", self._path, exc) from exc
        except ValueError:  # read after close
            raise StopIteration from None
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._handle.close()


class _FileUpload:
    """A temporary file beside ``path``, renamed over it by ``commit``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        make_dirs(path.parent)
        self._temp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.urandom(16).hex()}"
        self._fd: int | None = open_new(self._temp)

    def write(self, part: Part) -> None:
        assert self._fd is not None, "write after commit or abort"
        try:
            view = memoryview(part.data)
            while view:
                view = view[os.pwrite(self._fd, view, part.offset + len(part.data) - len(view)) :]
        except OSError as exc:
            raise storage_error("write", self._path, exc) from exc

    def commit(self, size: int, parts: int) -> None:
        assert self._fd is not None, "commit after commit or abort"
        try:
            os.ftruncate(self._fd, size)  # a part written again with less data
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.replace(self._temp, self._path)
            _fsync_dir(self._path.parent)
        except OSError as exc:
            self.abort()
            raise storage_error("write", self._path, exc) from exc

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._temp.unlink(missing_ok=True)


class LocalStorage(PartWiseWrites):
    """A repository in a local (or mounted) directory."""

    # A part is joined from the encoder's pieces before it is written: the bigger it is, the
    # more each writer holds (8 MiB parts cost a --jobs 1 backup 14 MB of peak RSS); pwrite
    # is no slower in 1 MiB pieces.
    part_size = MiB
    parallel_parts = 1  # the disk is not faster with more writers; the encoder is the work
    upload_slots = None  # one part at a time per object already
    parts_per_tier = None  # a file takes any number of parts: they stay MiB-long

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key

    def begin(self, key: str) -> _FileUpload:
        return _FileUpload(self._path(key))

    def get(self, key: str) -> _FileChunks:
        path = self._path(key)
        try:
            return _FileChunks(open(path, "rb"), path)  # noqa: SIM115 - _FileChunks closes it
        except FileNotFoundError as exc:
            raise NotFoundError(f"no object {key!r} in {self.root}", key=key) from exc
        except OSError as exc:
            raise storage_error("read", path, exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise NotFoundError(f"no object {key!r} in {self.root}", key=key) from exc
        except OSError as exc:
            raise storage_error("read", path, exc) from exc
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        found: builtins.list[ObjectInfo] = []
        # Walk only the directory the prefix names (all of "wal/" is not read to list a
        # backup's checks).
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        try:
            for dirpath, _dirs, files in os.walk(start):
                for filename in files:
                    if filename.startswith(TEMP_PREFIX):
                        continue
                    full = Path(dirpath) / filename
                    key = full.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        st = full.stat()
                        found.append(
                            ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
                        )
        except OSError as exc:
            raise storage_error("list", self.root, exc) from exc
        yield from sorted(found, key=lambda info: info.key)

    def children(self, prefix: str) -> builtins.list[str]:
        path = self._path(prefix.rstrip("/"))
        try:
            return sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
        except OSError as exc:
            raise storage_error("list", path, exc) from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error("delete", path, exc) from exc

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        try:
            if path.is_dir():
                import shutil  # here, not at the top: wal push imports this module

                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            if path.parent.exists():
                _fsync_dir(path.parent)
        except OSError as exc:
            raise storage_error("delete", path, exc) from exc

    def sweep_uploads(self, older_than: datetime) -> int:
        removed = 0
        limit = older_than.timestamp()
        try:
            for dirpath, _dirs, files in os.walk(self.root):
                for filename in files:
                    full = Path(dirpath) / filename
                    if not filename.startswith(TEMP_PREFIX):
                        continue
                    with suppress(FileNotFoundError):  # finished meanwhile
                        if full.stat().st_mtime < limit:
                            full.unlink()
                            removed += 1
        except OSError as exc:
            raise storage_error("sweep", self.root, exc) from exc
        return removed

    def free_bytes(self) -> int | None:
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        import shutil

        return shutil.disk_usage(probe).free
