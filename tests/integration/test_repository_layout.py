"""The repository's key layout is on-disk format: existing repositories were written with these
keys and must stay readable, so this pins the keys of a real (encrypted) backup, its check
record, archived WAL, a restore point and a workflow blob; and no module outside
``warroom.repository`` spells a key prefix of its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from warroom.config import Settings
from warroom.repository import layout
from warroom.repository.keyring import generate_key
from warroom.services import build_services
from warroom.workflow.values import ValueCodec

ROOT = Path(__file__).resolve().parents[2]
HEX = r"[0-9a-f]+"


def _shapes(keys: list[str]) -> set[str]:
    """Each key with its variable parts (hex ids, times, the workflow blob) abstracted."""
    shapes = set()
    for key in keys:
        key = re.sub(r"/\d{8}T\d{12}Z\.json$", "/<time>.json", key)
        key = re.sub(rf"^keys/{HEX}\.json$", "keys/<id>.json", key)
        key = re.sub(rf"^workflow/blobs/{HEX}$", "workflow/blobs/<sha256>", key)
        shapes.add(key)
    return shapes


def test_a_real_repository_keeps_its_keys(tmp_path: Path, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g")
    key_file = tmp_path / "key"
    key_file.write_text(generate_key() + "\n")
    settings = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        encryption_key_file=key_file,
    )
    segment = tmp_path / "000000010000000000000003"
    segment.write_bytes(bytes(1 << 16))
    history = tmp_path / "00000002.history"
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    with build_services(settings) as services:
        services.backups.create(url=pg_db, name="pinned")
        assert services.backups.verify("pinned").status == "checked"
        services.wal.push(segment)
        services.wal.push(history)
        services.wal.record_restore_point("before-change", {"lsn": "0/3000060"})
        ValueCodec(services.repository, blob_threshold=16).dump("x" * 64)
        listed = [info.key for info in services.repository.storage.list()]
        manifest = services.backups.manifest("pinned")
    keys = [key for key in listed if not key.startswith(layout.LOCK_PREFIXES)]
    assert any(key.startswith(".locks/name_pinned-") for key in listed)  # flock files
    parts = {f"database/pinned/{part.name}" for part in manifest.parts}
    assert parts and all(re.fullmatch(r"database/pinned/[a-z]+(-\d{5})?", p) for p in parts)
    assert _shapes(keys) == parts | {
        "database/pinned/manifest.json",
        "database/pinned/checks/<time>.json",
        "wal/00000001/000000010000000000000003",
        "wal/00000001/000000010000000000000003.json",
        "wal/history/00000002.history",
        "wal/history/00000002.history.json",
        "wal/restore-points/before-change.json",
        "workflow/blobs/<sha256>",
        "keys/repository.json",
        "keys/<id>.json",
    }
    assert layout.check_key("pinned", datetime(2026, 1, 2, 3, 4, 5, 6, UTC)) == (
        "database/pinned/checks/20260102T030405000006Z.json"
    )


def test_no_module_outside_the_repository_spells_a_key_prefix() -> None:
    spelled = re.compile(r"""["'](database|wal|workflow/blobs|keys|checks|locks)/""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "src" / "warroom").rglob("*.py")
        if path.parent.name != "repository"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line)
    ]
    assert offenders == []
