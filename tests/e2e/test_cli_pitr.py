"""Point-in-time recovery commands: their input checks and setup-pitr (the recovery itself is
tested against a throwaway cluster in tests/integration/test_pitr.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cli import cli_env, run_warroom


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-time", "yesterday", "--data-dir", "d"], "is not a time"),
        (["--target-time", "2026-11-26 14:03:00", "--data-dir", "d"], "has no time zone"),
        (["--target-lsn", "zz/1", "--data-dir", "d"], "invalid LSN"),
        (["--target-time", "latest"], "needs --data-dir"),
        (["--target-time", "latest", "--target-lsn", "0/1", "--data-dir", "d"], "give one of"),
        ([], "name the checkpoint to restore"),
    ],
)
def test_bad_recovery_targets_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_warroom("restore", "database", *args, env=cli_env(tmp_path), cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert message in result.stderr


def test_no_physical_backup_yet(tmp_path: Path) -> None:
    result = run_warroom(
        "restore",
        "database",
        "--target-time",
        "latest",
        "--data-dir",
        str(tmp_path / "new"),
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.code == 2 and "no physical base backup" in result.stderr


def test_setup_pitr_prints_the_settings(tmp_path: Path) -> None:
    result = run_warroom("setup-pitr", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.code == 0
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert lines["wal_level"] == "'replica'" and lines["archive_mode"] == "'on'"
    assert "wal push %p" in lines["archive_command"]
    assert f"BACKUP_DIR={tmp_path / 'backups'}" in lines["archive_command"]


def test_wal_push_and_fetch_from_the_command_line(tmp_path: Path) -> None:
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(b"\0" * (16 << 20))
    result = run_warroom("wal", "push", str(segment), env=cli_env(tmp_path), cwd=tmp_path)
    assert result.code == 0, result.stderr
    fetched = run_warroom(
        "wal",
        "fetch",
        segment.name,
        str(tmp_path / "out" / "seg"),
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert fetched.code == 0 and (tmp_path / "out" / "seg").read_bytes() == segment.read_bytes()
    missing = run_warroom(
        "wal",
        "fetch",
        "000000010000000000000002",
        str(tmp_path / "x"),
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert missing.code == 1 and "not in the archive" in missing.stderr
    again = run_warroom("wal", "push", str(segment), env=cli_env(tmp_path), cwd=tmp_path)
    assert again.code == 0
    bad = run_warroom("wal", "push", env=cli_env(tmp_path), cwd=tmp_path)
    assert bad.code == 2 and "usage" in bad.stderr


def test_wal_check_proves_a_push_can_work_and_leaves_nothing(tmp_path: Path) -> None:
    result = run_warroom("wal", "check", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert list((tmp_path / "backups" / "wal" / "checks").iterdir()) == []
    (tmp_path / "a-file").write_text("")
    env = cli_env(tmp_path, BACKUP_DIR=str(tmp_path / "a-file"))
    broken = run_warroom("wal", "check", env=env, cwd=tmp_path)
    assert broken.code == 1 and "warroom wal check:" in broken.stderr
