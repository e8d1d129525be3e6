"""The keyring of an encrypted repository: envelope encryption in two levels.

- **Master keys** are the user's: 32 random bytes, base64, from ``WARROOM_ENCRYPTION_KEY`` or
  ``WARROOM_ENCRYPTION_KEY_FILE`` (one key per line, the first is current, the others still
  open what they wrapped). A master key is known by its id, the first 16 hex digits of a
  SHA-256 of it, which reveals nothing of the key. Master keys never enter the repository.
- **Repository keys** live in ``keys/<id>.json``, each wrapped (AES key wrap, RFC 3394) under
  one or more master keys: ``{"format": 1, "id": ..., "created_at": ..., "wrapped":
  {master id: base64}}``. ``keys/repository.json`` says the repository is encrypted and which
  repository key new objects use.
- **Data keys**: every object gets a fresh one, wrapped under the current repository key, and
  stored in the object's header (:mod:`warroom.codec.aesgcm`).

``rotate()``, with the new master key first and the old one after it, wraps every repository
key under the new master key too and starts a new repository key (wrapped under both) for what
is written from then on: no object is read or re-encrypted, and the old master key keeps
opening everything until ``retire(its id)`` removes its wrappings. A key
that unwraps nothing is an IntegrityError (exit 3), as is an altered key file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from warroom.codec.aesgcm import DataKeys
from warroom.errors import ConfigurationError, IntegrityError, NotFoundError
from warroom.repository.layout import KEYS_PREFIX, REPOSITORY_KEY, key_document, key_identity
from warroom.repository.storage import Storage

__all__ = ["Keyring", "generate_key", "key_id", "load_master_keys"]

MAX_KEY_FILE = 1 << 16


def generate_key() -> str:
    """A new master key, as ``warroom key generate`` prints it: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"warroom master key id\0" + key).hexdigest()[:16]


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigurationError(
            f"{where} is not an encryption key: it must be base64 of 32 bytes, as "
            "`warroom key generate` prints"
        )
    return key


def load_master_keys(key: str | None = None, key_file: Path | None = None) -> list[bytes]:
    """The configured master keys, current first (empty: the client does not encrypt).
    ConfigurationError for a malformed key, never showing it."""
    keys = [_decode_key(key, "WARROOM_ENCRYPTION_KEY")] if key else []
    if key_file is not None:
        try:
            text = key_file.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read WARROOM_ENCRYPTION_KEY_FILE {key_file}: {exc.strerror}"
            ) from exc
        lines = [line.strip() for line in text.splitlines()]
        for number, line in enumerate(lines, 1):
            if line and not line.startswith("#"):
                keys.append(_decode_key(line, f"line {number} of {key_file}"))
    return keys


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Keyring(DataKeys):
    """The repository keys of one encrypted repository, opened with the master keys: the
    codec's :class:`~warroom.codec.aesgcm.DataKeys` (so whichever thread opens it loads the
    codec's cipher too; ``wal push`` opens it on a thread of its own)."""

    def __init__(self, storage: Storage, masters: Sequence[bytes]) -> None:
        if not masters:
            raise ConfigurationError("an encrypted repository needs a master key")
        self.storage = storage
        self.masters = {key_id(master): master for master in masters}
        self.current_master = key_id(masters[0])
        self._keys: dict[str, bytes] = {}
        self.current = ""

    # -- the repository's key files -------------------------------------------------------

    def _read_json(self, key: str) -> dict[str, Any]:
        with closing(self.storage.get(key)) as stream:
            data = b""
            for chunk in stream:
                data += chunk
                if len(data) > MAX_KEY_FILE:
                    break
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise IntegrityError(f"the key file {key} is damaged", key=key)
        return document

    def _write_json(self, key: str, document: dict[str, Any]) -> None:
        self.storage.put(key, [json.dumps(document, indent=1, sort_keys=True).encode()])

    def _key_file(self, repository_key: str) -> dict[str, Any]:
        return self._read_json(key_document(repository_key))

    def _unwrap(self, repository_key: str, document: dict[str, Any]) -> bytes:
        wrapped = document.get("wrapped")
        if document.get("id") != repository_key or not isinstance(wrapped, dict):
            raise IntegrityError(f"the key file of repository key {repository_key} is damaged")
        for master_id, text in wrapped.items():
            master = self.masters.get(master_id)
            if master is None or not isinstance(text, str):
                continue
            try:
                return aes_key_unwrap(master, base64.b64decode(text))
            except (InvalidUnwrap, ValueError):
                break  # the id matches but the wrapping does not: altered
        raise IntegrityError(
            f"none of the configured keys ({', '.join(self.masters)}) opens repository key "
            f"{repository_key} (wrapped for {', '.join(map(str, wrapped)) or 'no key'}): "
            "the key is wrong, retired, or the key file was altered",
            key=repository_key,
        )

    def repository_key(self, repository_key: str) -> bytes:
        if not re.fullmatch(r"[0-9a-f]{16}", repository_key):
            raise IntegrityError(f"{repository_key!r} is not a repository key id")
        if repository_key not in self._keys:
            try:
                document = self._key_file(repository_key)
            except NotFoundError:
                raise IntegrityError(
                    f"repository key {repository_key} is missing from {self.storage.location}",
                    key=repository_key,
                ) from None
            self._keys[repository_key] = self._unwrap(repository_key, document)
        return self._keys[repository_key]

    def _new_repository_key(self) -> str:
        secret = os.urandom(32)
        identity = os.urandom(8).hex()
        self._write_json(
            key_document(identity),
            {
                "format": 1,
                "id": identity,
                "created_at": datetime.now(UTC).isoformat(),
                "wrapped": {
                    master_id: _b64(aes_key_wrap(master, secret))
                    for master_id, master in self.masters.items()
                },
            },
        )
        self._keys[identity] = secret
        return identity

    def _set_current(self, repository_key: str) -> None:
        self._write_json(
            REPOSITORY_KEY, {"format": 1, "encrypted": True, "current": repository_key}
        )
        self.current = repository_key

    def open(self, marker: dict[str, Any]) -> Keyring:
        """Load the current repository key that ``keys/repository.json`` names."""
        current = marker.get("current")
        if not isinstance(current, str):
            raise IntegrityError(f"{REPOSITORY_KEY} is damaged")
        self.repository_key(current)
        self.current = current
        return self

    def initialize(self) -> Keyring:
        """Make the repository encrypted: a first repository key, then the marker."""
        self._set_current(self._new_repository_key())
        return self

    def marker(self) -> dict[str, Any] | None:
        """``keys/repository.json``, or None when the repository is not encrypted."""
        try:
            return self._read_json(REPOSITORY_KEY)
        except NotFoundError:
            return None

    def _repository_keys(self) -> Iterable[str]:
        for info in self.storage.list(KEYS_PREFIX):
            identity = key_identity(info.key)
            if identity is not None:
                yield identity

    def wrappings(self) -> dict[str, list[str]]:
        """Each master key id that wraps a repository key, with the repository keys it wraps
        (sorted): what ``key list`` shows and ``key retire`` takes."""
        wrapped_by: dict[str, list[str]] = {}
        for identity in sorted(self._repository_keys()):
            for master_id in self._key_file(identity).get("wrapped", {}):
                wrapped_by.setdefault(str(master_id), []).append(identity)
        return wrapped_by

    # -- rotation -------------------------------------------------------------------------

    def rotate(self) -> str:
        """Wrap every repository key under the current master key as well, then start a new
        repository key for new objects; return its id. No object is touched."""
        master = self.masters[self.current_master]
        for identity in list(self._repository_keys()):
            document = self._key_file(identity)
            secret = self._unwrap(identity, document)
            document["wrapped"][self.current_master] = _b64(aes_key_wrap(master, secret))
            self._write_json(key_document(identity), document)
        new = self._new_repository_key()  # wrapped under every configured master key
        self._set_current(new)
        return new

    def retire(self, master_id: str) -> int:
        """Remove master key ``master_id``'s wrappings; return how many were removed. Refused
        for the current master key, and where it is a repository key's only wrapping."""
        if master_id == self.current_master:
            raise ConfigurationError(
                f"key {master_id} is the current key; put the new key first in "
                "WARROOM_ENCRYPTION_KEY_FILE and run key rotate before retiring it"
            )
        documents = {identity: self._key_file(identity) for identity in self._repository_keys()}
        for identity, document in documents.items():
            if set(document.get("wrapped", {})) <= {master_id}:
                raise ConfigurationError(
                    f"repository key {identity} is wrapped only under key {master_id}; run "
                    "key rotate first"
                )
        removed = 0
        for identity, document in documents.items():
            if master_id in document["wrapped"]:
                del document["wrapped"][master_id]
                self._write_json(key_document(identity), document)
                removed += 1
        return removed

    # -- the codec's DataKeys -------------------------------------------------------------

    def new_data_key(self) -> tuple[bytes, dict[str, Any]]:
        data_key = os.urandom(32)
        wrapped = aes_key_wrap(self.repository_key(self.current), data_key)
        return data_key, {"key": self.current, "wrapped": _b64(wrapped)}

    def data_key(self, parameters: dict[str, Any]) -> bytes:
        identity, wrapped = parameters.get("key"), parameters.get("wrapped")
        if not isinstance(identity, str) or not isinstance(wrapped, str):
            raise IntegrityError("an encrypted object's header names no data key")
        try:
            return aes_key_unwrap(self.repository_key(identity), base64.b64decode(wrapped))
        except (InvalidUnwrap, ValueError):
            raise IntegrityError(
                f"an object's data key does not unwrap under repository key {identity}: "
                "its header was altered"
            ) from None
