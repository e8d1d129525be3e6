"""How workflow values (inputs, step results, states, outputs) are stored.

Every stored value starts with a one-byte tag:

- ``m``: the default, MessagePack that keeps Python's types (tuples, sets, dates, Decimal,
  UUID, allowed enums, dataclasses and pydantic models: see :mod:`warroom.workflow.typed`);
  reading it never runs code;
- ``j``: JSON, what versions before ``m`` wrote (still read; written only when the serializer
  is set to ``json``);
- ``p``: pickle, only when the engine opts in with a signing key: ``p`` + HMAC-SHA256 of the
  pickle + the pickle. A value whose signature does not match is refused before unpickling;
- ``b``: a reference (``b`` + SHA-256 hex) to a content-addressed blob in the checkpoint
  repository (``workflow/blobs/<sha256>``, an object of the repository: compressed, and
  encrypted when the repository is), used for
  values above the blob threshold, so identical large states are stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Iterable
from typing import Any

from warroom.errors import (
    ConfigurationError,
    IntegrityError,
    NotFoundError,
    UnstorableValueError,
)
from warroom.repository import Repository
from warroom.repository.layout import blob_key
from warroom.workflow.typed import TypedCodec

__all__ = ["ValueCodec"]

MSGPACK_TAG, JSON_TAG, PICKLE_TAG, BLOB_TAG = b"m", b"j", b"p", b"b"
SERIALIZERS = ("msgpack", "json", "pickle")


class ValueCodec:
    """Turns values into stored bytes and back (see the module docstring for the format)."""

    def __init__(
        self,
        repository: Repository,
        serializer: str = "msgpack",
        signing_key: bytes | None = None,
        blob_threshold: int = 256 * 1024,
        allowed_types: Iterable[type] = (),
    ) -> None:
        if serializer not in SERIALIZERS:
            raise ConfigurationError(
                f"unknown workflow serializer {serializer!r}: use 'msgpack' (default), 'json' "
                "or 'pickle'"
            )
        if serializer == "pickle" and not signing_key:
            raise ConfigurationError(
                "the pickle serializer needs a signing key: set WARROOM_PICKLE_SIGNING_KEY "
                "(or pass signing_key=...), so that tampered checkpoints are refused"
            )
        self.repository = repository
        self.storage = repository.storage
        self.serializer = serializer
        self._key = signing_key
        self.blob_threshold = blob_threshold
        self.typed = TypedCodec(allowed_types)

    # -- writing ----------------------------------------------------------------------------

    def dump(self, value: Any, what: str = "value") -> bytes:
        """The stored form of ``value``; UnstorableValueError (before anything is written)
        when the serializer cannot hold it."""
        data = self._serialize(value, what)
        if len(data) <= self.blob_threshold:
            return data
        digest = hashlib.sha256(data).hexdigest()
        key = blob_key(digest)
        if not self.repository.exists(key):
            self.repository.write(key, [data])
        return BLOB_TAG + digest.encode()

    def dump_record(self, record: dict[str, Any]) -> bytes:
        """A record the engine writes (a step's failure) in the typed encoding, whatever the
        serializer (its fields are plain data)."""
        return MSGPACK_TAG + self.typed.dumps(record)

    def _serialize(self, value: Any, what: str) -> bytes:
        if self.serializer == "pickle":
            assert self._key is not None
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            return PICKLE_TAG + hmac.new(self._key, payload, hashlib.sha256).digest() + payload
        try:
            if self.serializer == "json":
                return JSON_TAG + json.dumps(value, separators=(",", ":")).encode()
            return MSGPACK_TAG + self.typed.dumps(value)
        except UnstorableValueError as exc:
            raise UnstorableValueError(f"{what}: {exc.message}", **exc.details) from exc
        except (TypeError, ValueError) as exc:
            raise UnstorableValueError(
                f"{what} cannot be stored as JSON ({exc}); return plain data (dict, list, str, "
                "numbers, bool, None) or use the default serializer",
            ) from exc

    # -- reading ----------------------------------------------------------------------------

    def load(self, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        if tag == BLOB_TAG:
            return self.load(self._read_blob(body.decode("ascii")))
        if tag == MSGPACK_TAG:
            return self.typed.loads(body)
        if tag == JSON_TAG:
            return json.loads(body)
        if tag == PICKLE_TAG:
            if not self._key:
                raise ConfigurationError(
                    "this checkpoint was stored with the pickle serializer: configure its "
                    "signing key (WARROOM_PICKLE_SIGNING_KEY) to read it"
                )
            signature, payload = body[:32], body[32:]
            expected = hmac.new(self._key, payload, hashlib.sha256).digest()
            if not hmac.compare_digest(signature, expected):
                raise IntegrityError(
                    "a pickled checkpoint failed its signature check (tampered, or signed with "
                    "another key); it was not unpickled"
                )
            return pickle.loads(payload)  # noqa: S301 - signature verified above
        raise IntegrityError(f"a stored workflow value has an unknown format tag {tag!r}")

    def _read_blob(self, digest: str) -> bytes:
        try:
            reading = self.repository.read(
                blob_key(digest), label=f"blob {digest[:16]}", blob=digest
            )
        except NotFoundError as exc:
            raise IntegrityError(f"workflow blob {digest} is missing", blob=digest) from exc
        with reading:
            data = b"".join(reading)
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"workflow blob {digest} is damaged", blob=digest)
        return data
