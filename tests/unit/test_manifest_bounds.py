"""Manifests and check records are hostile input: every bound refuses, naming what is wrong,
and the status read from check records never promotes what was not proved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from warroom.database import PartRecord
from warroom.database.manifest import Manifest, _document_sha256
from warroom.database.verification import CheckRecord, status_of
from warroom.errors import IntegrityError

AT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
SHA = "ab" * 32


def _manifest(**changes: Any) -> Manifest:
    fields: dict[str, Any] = {
        "name": "db-1",
        "engine": "postgresql",
        "kind": "logical",
        "created_at": AT,
        "completed_at": AT,
        "source": "postgresql://app@db:5432/prod",
        "source_database": "prod",
        "server_version": "15.19",
        "tool": "pg_dump",
        "tool_version": "15.19",
        "codec": ["zstd"],
        "parts": [PartRecord("schema", "schema", 10, SHA, 20, SHA)],
        "tables": {"public.t": 3},
        "source_id": "postgresql:7714/prod",
        "source_address": "postgresql://db:5432/prod",
    }
    return Manifest(**(fields | changes))


def forged(edit: Any) -> bytes:
    """A manifest edited by ``edit(document)``, with every checksum made to match (as an
    attacker who can write the repository would)."""
    document = json.loads(_manifest().to_json())
    document.pop("manifest_sha256")
    edit(document)
    document["manifest_sha256"] = _document_sha256(document)
    return json.dumps(document).encode()


def test_a_manifest_round_trips_with_its_source_and_safety() -> None:
    manifest = _manifest(safety=True)
    back = Manifest.from_json("db-1", manifest.to_json())
    assert back == manifest
    assert back.source_info.id == "postgresql:7714/prod"


def test_a_manifest_written_before_sources_reads_its_source_from_its_label() -> None:
    def legacy(document: dict[str, Any]) -> None:
        for key in ("source_id", "source_address", "safety"):
            document.pop(key)
        document["name"] = "safety-prod-20261126T030000000000Z"

    back = Manifest.from_json("safety-prod-20261126T030000000000Z", forged(legacy))
    assert back.source_id == "postgresql://db:5432/prod" and back.safety


def _set(path: str, value: Any) -> Any:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        *parents, last = path.split("/")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("parts/0/plain_size", 10**30), "parts.0.plain_size"),
        (_set("parts/0/stored_size", -1), "parts.0.stored_size"),
        (_set("tables/public.t", 10**30), "tables.public.t"),
        (_set("parts/0/name", "../../etc/passwd"), "parts.0.name"),
        (_set("parts/0/stored_sha256", "not hex"), "parts.0.stored_sha256"),
        (_set("engine", "oracle"), "engine"),
        (_set("codec", ["zstd", "rot13"]), "codec"),
        (_set("source", "x" * 100_000), "source"),
        (_set("created_at", "yesterday"), "created_at"),
        (_set("parts", {"not": "a list"}), "parts"),
    ],
)
def test_out_of_bounds_fields_are_refused_by_name(edit: Any, message: str) -> None:
    with pytest.raises(IntegrityError, match=r"damaged: " + message.replace(".", r"\.")):
        Manifest.from_json("db-1", forged(edit))


def test_deep_nesting_and_garbage_are_refused_not_crashes() -> None:
    deep = b'{"format": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(IntegrityError, match="nested too deeply"):
        Manifest.from_json("db-1", deep)
    for garbage in (b"\xff\xfe", b"[1, 2]", b"", b"null"):
        with pytest.raises(IntegrityError, match="damaged"):
            Manifest.from_json("db-1", garbage)


def test_an_oversized_manifest_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(IntegrityError, match="bytes long"):
        Manifest.from_json("db-1", b" " * ((256 << 20) + 1))


def _check(result: str, hours: int) -> CheckRecord:
    return CheckRecord("db-1", result, AT + timedelta(hours=hours))


def test_status_is_the_strongest_result_since_the_last_damage() -> None:
    assert status_of([]) == ("completed", None)
    assert status_of([_check("checked", 1)])[0] == "checked"
    assert status_of([_check("restore-tested", 1), _check("checked", 2)])[0] == "restore-tested"
    assert status_of([_check("restore-tested", 1), _check("damaged", 2)])[0] == "damaged"
    # Repaired and checked again: the restore test from before the damage no longer counts.
    repaired = [_check("restore-tested", 1), _check("damaged", 2), _check("checked", 3)]
    assert status_of(repaired) == ("checked", AT + timedelta(hours=3))


def test_check_records_that_are_not_sane_are_ignored() -> None:
    good = _check("restore-tested", 1)
    assert CheckRecord.from_json("db-1", good.to_json()) == good
    assert CheckRecord.from_json("other", good.to_json()) is None  # copied from another backup
    for bad in (b"{}", b"[" * 10_000, b'{"format": 1, "name": "db-1", "result": "blessed"}'):
        assert CheckRecord.from_json("db-1", bad) is None
    naive = good.to_json().replace(b"+00:00", b"")
    assert CheckRecord.from_json("db-1", naive) is None
