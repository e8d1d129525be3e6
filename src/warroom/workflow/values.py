"""How workflow values (inputs, step results, states, outputs) are stored.

Every stored value starts with a one-byte tag:

- ``j``: JSON, the default; reading it never runs code;
- ``p``: pickle, only when the engine opts in with a signing key: ``p`` + HMAC-SHA256 of the
  pickle + the pickle. A value whose signature does not match is refused before unpickling;
- ``b``: a reference (``b`` + SHA-256 hex) to a content-addressed blob in the checkpoint
  repository (``workflow/blobs/<sha256>``, zstd-compressed with the codec header), used for
  values above the blob threshold, so identical large states are stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from contextlib import closing
from typing import Any

from warroom.codec import Decoder, Encoder
from warroom.errors import ConfigurationError, InputError, IntegrityError, NotFoundError
from warroom.storage import Storage

__all__ = ["BLOB_PREFIX", "ValueCodec"]

JSON_TAG, PICKLE_TAG, BLOB_TAG = b"j", b"p", b"b"
BLOB_PREFIX = "workflow/blobs/"
SERIALIZERS = ("json", "pickle")


class ValueCodec:
    """Turns values into stored bytes and back (see the module docstring for the format)."""

    def __init__(
        self,
        storage: Storage,
        serializer: str = "json",
        signing_key: bytes | None = None,
        blob_threshold: int = 256 * 1024,
    ) -> None:
        if serializer not in SERIALIZERS:
            raise ConfigurationError(
                f"unknown workflow serializer {serializer!r}: use 'json' (default) or 'pickle'"
            )
        if serializer == "pickle" and not signing_key:
            raise ConfigurationError(
                "the pickle serializer needs a signing key: set WARROOM_PICKLE_SIGNING_KEY "
                "(or pass signing_key=...), so that tampered checkpoints are refused"
            )
        self.storage = storage
        self.serializer = serializer
        self._key = signing_key
        self.blob_threshold = blob_threshold

    # -- writing ----------------------------------------------------------------------------

    def dump(self, value: Any, what: str = "value") -> bytes:
        data = self._serialize(value, what)
        if len(data) <= self.blob_threshold:
            return data
        digest = hashlib.sha256(data).hexdigest()
        key = BLOB_PREFIX + digest
        try:
            self.storage.stat(key)
        except NotFoundError:
            self.storage.put(key, Encoder().encode([data]))
        return BLOB_TAG + digest.encode()

    def _serialize(self, value: Any, what: str) -> bytes:
        if self.serializer == "pickle":
            assert self._key is not None
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            return PICKLE_TAG + hmac.new(self._key, payload, hashlib.sha256).digest() + payload
        try:
            return JSON_TAG + json.dumps(value, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{what} cannot be stored as JSON ({exc}); return plain data (dict, list, str, "
                "numbers, bool, None) or opt in to the signed pickle serializer",
            ) from exc

    # -- reading ----------------------------------------------------------------------------

    def load(self, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        if tag == BLOB_TAG:
            return self.load(self._read_blob(body.decode("ascii")))
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
        decoder = Decoder(f"blob {digest[:16]}", blob=digest)
        try:
            stream = self.storage.get(BLOB_PREFIX + digest)
        except NotFoundError as exc:
            raise IntegrityError(f"workflow blob {digest} is missing", blob=digest) from exc
        with closing(stream):
            data = b"".join(decoder.decode(stream))
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"workflow blob {digest} is damaged", blob=digest)
        return data
