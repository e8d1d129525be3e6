"""The repository: objects written through the codec chain, read by their own header.

:meth:`Repository.open` decides, once, whether objects are encrypted: the repository says so
itself (``keys/repository.json``, see :mod:`warroom.repository.keyring`), so a client without
the key is refused (ConfigurationError) rather than writing plaintext into an encrypted
repository, and a client with a key never writes plaintext either: it encrypts an empty
repository, and refuses one that already holds unencrypted objects. In an encrypted repository
an unencrypted object is refused on read (IntegrityError): it is a substitute.

Reads try :meth:`~warroom.repository.storage.Storage.copies` in order and use the first copy
that is present and whose header and first chunk check out; :attr:`Reading.location` says
which. Damage found after bytes were handed out is raised, not papered over.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from os import PathLike
from typing import TYPE_CHECKING, Any, TypeVar

from warroom.codec import Decoder, Digest, Encoder
from warroom.errors import ConfigurationError, IntegrityError, NotFoundError, StorageError
from warroom.repository.layout import KEYS_PREFIX, LOCK_PREFIXES, REPOSITORY_KEY, probe_key
from warroom.repository.storage import (
    ChunkStream,
    Storage,
    open_storage,
)

if TYPE_CHECKING:
    from warroom.codec.aesgcm import DataKeys
    from warroom.repository.keyring import Keyring

__all__ = ["Reading", "Repository", "open_repository", "probe_repository"]

T = TypeVar("T")
# Compressed bytes an encoder holds while another thread opens the keyring (two requests to S3)
# before it waits for its data key: a 16 MiB WAL segment compresses to about that, or less.
_KEYS_AHEAD = 4 << 20


class Reading:
    """The plain bytes of one object (iterate once); ``location`` is the copy they come from,
    ``digest`` and :meth:`check` are the decoder's once iteration has finished. The stream is
    closed when iteration ends; a caller that stops early, or does not iterate, closes it
    (``with repository.read(key) as reading``)."""

    def __init__(
        self,
        first: bytes | None,
        rest: Iterator[bytes],
        stream: ChunkStream,
        decoder: Decoder,
        location: str,
    ) -> None:
        self._first, self._rest, self._stream = first, rest, stream
        self.decoder, self.location = decoder, location

    def __iter__(self) -> Iterator[bytes]:
        with closing(self._stream):
            if self._first is not None:
                yield self._first
                yield from self._rest

    def __enter__(self) -> Reading:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    @property
    def digest(self) -> Digest:
        return self.decoder.digest

    def check(self, plain_sha256: str, stored_sha256: str | None = None) -> None:
        self.decoder.check(plain_sha256, stored_sha256)


class Repository:
    """Objects in ``storage``, encrypted when ``keyring`` is given. With ``master_keys``
    instead, whether it is encrypted is decided as :meth:`open` does, on first use (so a
    repository out of reach fails the operation that needs it, not the program's start)."""

    def __init__(
        self,
        storage: Storage,
        keyring: Keyring | None = None,
        *,
        master_keys: Sequence[bytes] | None = None,
    ) -> None:
        self.storage = storage
        self._keyring = keyring
        self._pending = master_keys
        self._opening = threading.Lock()
        self._keys_given = bool(master_keys)  # then encrypted, or refused when opened

    @property
    def keyring(self) -> Keyring | None:
        with self._opening:
            if self._pending is not None:
                self._keyring = self.open(self.storage, self._pending).keyring
                self._pending = None
        return self._keyring

    @classmethod
    def open(cls, storage: Storage, master_keys: Sequence[bytes] = ()) -> Repository:
        """The repository in ``storage``, with encryption as it says (see the module doc):
        an empty one is made encrypted when ``master_keys`` are given."""
        keyring = _existing_keyring(storage, master_keys)
        if keyring is None and master_keys:
            from warroom.repository.keyring import Keyring

            keyring = Keyring(storage, master_keys).initialize()
        return cls(storage, keyring)

    @property
    def encrypted(self) -> bool:
        return self.keyring is not None

    @property
    def location(self) -> str:
        return self.storage.location

    def write(
        self, key: str, chunks: Iterable[bytes], *, level: int = 3, threads: int = 0
    ) -> Digest:
        """Encode ``chunks`` and store them atomically as ``key``; the digest of both sides.

        While another thread opens the keyring of a repository given master keys (encrypted,
        then, or refused: see :meth:`open`), the encoder takes it on demand: it compresses
        ahead, then asks for the object's data key, before it hands out any byte (``wal push``
        opens it on its lookup thread meanwhile). Otherwise it is opened first."""
        keys: DataKeys | None
        if self._keys_given and self._opening.locked():
            keys, ahead = _KeyringOnDemand(self), _KEYS_AHEAD
        else:
            keys, ahead = self.keyring, 0
        encoder = Encoder(level, threads, keys=keys, context=key.encode(), compress_ahead=ahead)
        self.storage.put(key, encoder.encode(chunks))
        return encoder.digest

    def copies(self) -> list[Repository]:
        """One repository per independent copy (primary, then replicas), with these keys."""
        return [Repository(copy, self.keyring) for copy in self.storage.copies()]

    def first_intact(self, action: Callable[[Repository], T]) -> T:
        """``action(copy)`` of the first copy where it succeeds. A copy without the object
        (NotFoundError), damaged (IntegrityError) or out of reach (StorageError) is passed
        over; when every copy fails, the first failure is raised (NotFoundError only when no
        copy has the object)."""
        failure: Exception | None = None
        missing: NotFoundError | None = None
        for copy in self.copies():
            try:
                return action(copy)
            except NotFoundError as exc:
                missing = missing or exc
            except (IntegrityError, StorageError) as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        raise missing or NotFoundError(f"no copy in {self.location}")

    def exists(self, key: str) -> bool:
        try:
            self.storage.stat(key)
        except NotFoundError:
            return False
        return True

    def put_document(self, key: str, data: bytes) -> None:
        """Store a small document (a manifest, a record) atomically: as it is, as every version
        wrote it, in an unencrypted repository; encrypted like any object otherwise."""
        if self.encrypted:
            self.write(key, [data])
        else:
            self.storage.put(key, [data])

    def get_document(self, key: str, limit: int) -> bytes:
        """The document ``key``, read no further than ``limit`` + 1 plain bytes (a longer one
        is refused by its parser, never held whole). NotFoundError when it is missing."""
        chunks, size = [], 0
        with closing(self.read(key) if self.encrypted else self.storage.get(key)) as stream:
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
        return b"".join(chunks)

    def stored(self, key: str) -> ChunkStream:
        """The stored (encoded) bytes of ``key``, from the first copy that has it."""
        return self.storage.get(key)

    def _decoder(self, key: str, label: str, hash_plain: bool, details: dict[str, Any]) -> Decoder:
        return Decoder(
            label,
            hash_plain=hash_plain,
            keys=self.keyring,
            context=key.encode(),
            require_encryption=self.encrypted,
            **details,
        )

    def read(
        self, key: str, *, label: str | None = None, hash_plain: bool = True, **details: Any
    ) -> Reading:
        """The decoded object ``key`` from the first intact copy. NotFoundError when no copy
        has it; otherwise the first copy's failure (IntegrityError, StorageError)."""
        failure: Exception | None = None
        for copy in self.storage.copies():
            decoder = self._decoder(key, label or key, hash_plain, details)
            try:
                stream = copy.get(key)
            except NotFoundError:
                continue
            except StorageError as exc:
                failure = failure or exc
                continue
            chunks = decoder.decode(stream)
            try:
                first = next(chunks, None)
            except (IntegrityError, StorageError) as exc:
                stream.close()
                failure = failure or exc
                continue
            return Reading(first, chunks, stream, decoder, copy.location)
        if failure is not None:
            raise failure
        raise NotFoundError(f"no object {key!r} in {self.location}", key=key)


class _KeyringOnDemand:
    """The keyring of a repository given master keys, opened (or waited for) on the first data
    key asked for (see :meth:`Repository.write`); the opening's failure is raised there."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository

    def _keyring(self) -> Keyring:
        keyring = self._repository.keyring
        if keyring is None:  # Repository.open encrypts, or refuses, a repository given keys
            raise AssertionError("a repository opened with master keys has a keyring")
        return keyring

    def new_data_key(self) -> tuple[bytes, dict[str, Any]]:
        return self._keyring().new_data_key()

    def data_key(self, parameters: dict[str, Any]) -> bytes:
        return self._keyring().data_key(parameters)


def _existing_keyring(storage: Storage, master_keys: Sequence[bytes]) -> Keyring | None:
    """The keyring of an encrypted repository, opened with ``master_keys``; None for an
    unencrypted one (no keys given) or an empty one (keys given). ConfigurationError when
    the repository and the keys disagree; IntegrityError when no key opens it."""
    if not master_keys:
        try:
            storage.stat(REPOSITORY_KEY)
        except NotFoundError:
            return None
        raise ConfigurationError(
            f"the repository {storage.location} is encrypted: set "
            "WARROOM_ENCRYPTION_KEY_FILE (or WARROOM_ENCRYPTION_KEY) to its key"
        )
    from warroom.repository.keyring import Keyring  # loads cryptography

    keyring = Keyring(storage, master_keys)
    marker = keyring.marker()
    if marker is not None:
        return keyring.open(marker)
    # Key files without the marker: another client is making the repository encrypted (or was
    # stopped before its marker). Not unencrypted objects: this client makes it encrypted too,
    # under a repository key of its own; every key file stays readable, whichever marker wins.
    if any(not info.key.startswith((*LOCK_PREFIXES, KEYS_PREFIX)) for info in storage.list()):
        raise ConfigurationError(
            f"the repository {storage.location} holds unencrypted objects, and an "
            "encryption key is set: encrypt a new, empty repository, or unset the key"
        )
    return None


def probe_repository(url: str | PathLike[str], master_keys: Sequence[bytes] = ()) -> bool:
    """Prove that the repository at ``url`` works as configured, leaving it as it was: it is
    reached, a probe object is stored, read back and deleted, and it is encrypted exactly when
    ``master_keys`` are given (by one of them), or empty. Return whether it is encrypted
    (False for an empty one: its first write encrypts it). StorageError, ConfigurationError
    or IntegrityError say what is wrong."""
    storage = open_storage(url)
    key, probe = probe_key(os.urandom(8).hex()), os.urandom(64)
    storage.put(key, [probe])
    try:
        with closing(storage.get(key)) as stream:
            read = b"".join(stream)
    finally:
        storage.delete(key)
    if read != probe:
        raise IntegrityError(f"the repository {storage.location} returned other bytes")
    return _existing_keyring(storage, master_keys) is not None


def open_repository(
    url: str | PathLike[str],
    master_keys: Sequence[bytes] = (),
    replicas: Sequence[str | PathLike[str]] = (),
    *,
    short_lived: bool = False,
) -> Repository:
    """The repository at ``url``, mirrored to ``replicas`` (every write goes to each, reads
    come from the first intact copy), encrypted as it says (see :meth:`Repository.open`,
    decided on first use). ``short_lived``: see :func:`~warroom.repository.storage.open_storage`."""
    storage = open_storage(url, short_lived=short_lived)
    if replicas:
        from warroom.repository.wrappers import MirrorStorage

        copies = [open_storage(replica, short_lived=short_lived) for replica in replicas]
        storage = MirrorStorage(storage, copies)
    return Repository(storage, master_keys=master_keys)
