"""Encrypted repositories: every kind of tampering is an IntegrityError (exit 3), a client
without the key cannot write plaintext into an encrypted repository, and key rotation rewraps
keys without touching objects. Local directory and S3 (moto's server on loopback)."""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.s3server import S3Server
from warroom.codec import Decoder, Encoder
from warroom.config import Settings
from warroom.errors import ConfigurationError, IntegrityError
from warroom.repository import Repository, Storage
from warroom.repository.keyring import Keyring, generate_key, key_id, load_master_keys
from warroom.repository.layout import REPOSITORY_KEY
from warroom.repository.local import LocalStorage
from warroom.repository.s3 import S3Storage

PLAIN = os.urandom(700_000) + b"row\n" * 200_000  # several 256 KiB cipher chunks
KEY = "database/b/copy-00001"
T = TypeVar("T")


def key() -> bytes:
    return base64.b64decode(generate_key())


@pytest.fixture(params=["local", "s3"])
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "repo")
    server: S3Server = request.getfixturevalue("s3_server")
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    return S3Storage(server.new_bucket(), "enc")


def stored(storage: Storage, name: str = KEY) -> bytes:
    return b"".join(storage.get(name))


def read(repository: Repository, name: str = KEY) -> bytes:
    with repository.read(name) as reading:
        return b"".join(reading)


def test_round_trip_and_nothing_in_clear(storage: Storage) -> None:
    master = key()
    repository = Repository.open(storage, [master])
    digest = repository.write(KEY, [PLAIN])
    raw = stored(storage)
    assert b"row\n" * 4 not in raw and base64.b64encode(master) not in raw
    for info in storage.list("keys/"):
        assert master not in stored(storage, info.key)
    reading = Repository.open(storage, [master]).read(KEY)
    assert b"".join(reading) == PLAIN
    reading.check(digest.plain_sha256, digest.stored_sha256)


def test_wrong_key_is_an_integrity_error(storage: Storage) -> None:
    Repository.open(storage, [key()]).write(KEY, [PLAIN])
    with pytest.raises(IntegrityError, match="none of the configured keys") as raised:
        Repository.open(storage, [key()])
    assert raised.value.exit_code == 3


def test_a_client_without_the_key_cannot_write_plaintext(storage: Storage) -> None:
    Repository.open(storage, [key()]).write(KEY, [PLAIN])
    with pytest.raises(ConfigurationError, match="is encrypted"):
        Repository.open(storage)


def test_a_key_never_writes_into_an_unencrypted_repository(storage: Storage) -> None:
    Repository.open(storage).write(KEY, [PLAIN])
    with pytest.raises(ConfigurationError, match="unencrypted objects"):
        Repository.open(storage, [key()])
    assert read(Repository.open(storage)) == PLAIN  # unencrypted repositories keep working


def test_two_clients_encrypting_an_empty_repository_at_once_both_succeed(
    storage: Storage,
) -> None:
    """Client A has written its repository key but not yet the marker naming it (or was
    killed there) when client B opens the repository: B is not refused for "unencrypted
    objects", and whichever marker wins, every object of both stays readable."""
    master = key()
    first = Keyring(storage, [master])
    first_key = first._new_repository_key()  # A, stopped before its marker
    second = Repository.open(storage, [master])  # B
    second.write(KEY, [PLAIN])
    first._set_current(first_key)  # A's marker, written last, wins
    assert read(Repository.open(storage, [master])) == PLAIN
    Repository.open(storage, [master]).write(OTHER, [b"under A's key"])
    assert read(Repository.open(storage, [master]), OTHER) == b"under A's key"


OTHER = "database/b/copy-00002"


@pytest.mark.parametrize("case", ["wrong key", "no key", "key into unencrypted"])
def test_writing_while_another_thread_opens_the_keys_refuses_as_open_does(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """What ``wal push`` does: a thread opens the repository's keys (slowly here) while the
    object is written; given keys, the object is compressed meanwhile, and then refused as
    :meth:`Repository.open` refuses, before anything is stored."""
    first = [key()] if case != "key into unencrypted" else []
    Repository.open(storage, first).write(KEY, [PLAIN])
    given = {"wrong key": [key()], "no key": [], "key into unencrypted": [key()]}[case]
    error, exit_code = (IntegrityError, 3) if case == "wrong key" else (ConfigurationError, 2)
    opening = threading.Event()

    def slowly(method: Callable[[str], T]) -> Callable[[str], T]:
        def call(name: str) -> T:
            if name == REPOSITORY_KEY:
                opening.set()
                time.sleep(0.3)
            return method(name)

        return call

    monkeypatch.setattr(storage, "get", slowly(storage.get))
    monkeypatch.setattr(storage, "stat", slowly(storage.stat))
    repository = Repository(storage, master_keys=given)
    events = []

    def open_keys() -> None:
        with contextlib.suppress(error):
            assert repository.keyring is not None
        events.append("opened")

    def chunks() -> Iterator[bytes]:
        yield PLAIN
        events.append("compressed")

    opener = threading.Thread(target=open_keys)
    opener.start()
    opening.wait()
    with pytest.raises(error) as raised:
        repository.write(OTHER, chunks())
    opener.join()
    assert raised.value.exit_code == exit_code
    assert events[0] == ("compressed" if given else "opened")
    assert [info.key for info in storage.list("database/")] == [KEY]


def _tamper(data: bytes, how: str, other: bytes) -> bytes:
    header = data.index(b"}") + 1  # end of the JSON parameters
    record = 256 * 1024 + 16
    body = data[header:]
    if how == "flip":
        return data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
    if how == "truncate-mid":
        return data[:-10]
    if how == "truncate-chunk":
        return data[: header + record]
    if how == "reorder":
        return data[:header] + body[record : 2 * record] + body[:record] + body[2 * record :]
    if how == "swap-chunk":
        return data[:header] + other[other.index(b"}") + 1 :][:record] + body[record:]
    if how == "swap-object":
        return other
    if how == "header":
        return data.replace(b'"chunk":262144', b'"chunk":262143', 1)
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["flip", "truncate-mid", "truncate-chunk", "reorder", "swap-chunk", "swap-object", "header"],
)
def test_tampering_is_an_integrity_error(tmp_path: Path, how: str) -> None:
    storage = LocalStorage(tmp_path / "repo")
    repository = Repository.open(storage, [key()])
    repository.write(KEY, [os.urandom(len(PLAIN))])  # incompressible: several cipher chunks
    repository.write("database/b/copy-00002", [os.urandom(len(PLAIN))])
    assert len(stored(storage)) > 3 * (256 * 1024 + 16)
    damaged = _tamper(stored(storage), how, stored(storage, "database/b/copy-00002"))
    (tmp_path / "repo" / KEY).write_bytes(damaged)
    with pytest.raises(IntegrityError):
        read(repository)


def test_a_plaintext_object_in_an_encrypted_repository_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    repository = Repository.open(storage, [key()])
    repository.write(KEY, [PLAIN])
    storage.put(KEY, Encoder().encode([b"forged"]))
    with pytest.raises(IntegrityError, match="not encrypted"):
        read(repository)


def test_rotation_rewraps_keys_without_touching_objects(storage: Storage) -> None:
    old, new = key(), key()
    Repository.open(storage, [old]).write(KEY, [PLAIN])
    before = stored(storage)

    rotated = Repository.open(storage, [new, old])  # the new key first: it is current
    assert rotated.keyring is not None
    rotated.keyring.rotate()
    rotated.write("database/c/copy-00001", [b"after rotation"])
    assert stored(storage) == before  # no object rewritten

    for masters in ([new], [old]):  # the old key still reads, until retired
        assert read(Repository.open(storage, masters)) == PLAIN
    assert read(Repository.open(storage, [new]), "database/c/copy-00001") == b"after rotation"

    assert rotated.keyring.retire(key_id(old)) == 2  # the first repository key and the new one
    assert read(Repository.open(storage, [new])) == PLAIN
    with pytest.raises(IntegrityError, match="retired"):
        Repository.open(storage, [old])


def test_retiring_the_only_wrapping_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    old, new = key(), key()
    Repository.open(storage, [old]).write(KEY, [PLAIN])
    repository = Repository.open(storage, [new, old])
    assert repository.keyring is not None
    with pytest.raises(ConfigurationError, match="only under"):
        repository.keyring.retire(key_id(old))
    with pytest.raises(ConfigurationError, match="current key"):
        repository.keyring.retire(key_id(new))


def test_keys_come_from_the_settings_and_never_show(tmp_path: Path) -> None:
    first, second = generate_key(), generate_key()
    (tmp_path / "keys").write_text(f"# current first\n{first}\n{second}\n")
    settings = Settings(encryption_key_file=tmp_path / "keys")
    keys = load_master_keys(None, settings.encryption_key_file)
    assert keys == [base64.b64decode(first), base64.b64decode(second)]
    secret = Settings(encryption_key=first).encryption_key
    assert secret is not None and first not in repr(secret)
    with pytest.raises(ConfigurationError) as raised:
        load_master_keys(first[:-4])
    assert first[:-4] not in raised.value.message


def test_today_s_objects_stay_readable() -> None:
    legacy = b"WRCK\x01\x04zstd" + b"".join(Encoder().encode([b"old"]))[10:]
    assert b"".join(Decoder("legacy").decode([legacy])) == b"old"
