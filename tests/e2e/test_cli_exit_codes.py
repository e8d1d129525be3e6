"""Exit codes the README promises, where they were wrong: ``wal fetch`` as PostgreSQL's
restore_command (1: not archived, the normal end of recovery; 255: damaged or unreachable, so
PostgreSQL stops recovery instead of ending it early), and ``--data-dir`` naming a file (2)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import cli_env, run_warroom

SEGMENT = "000000010000000000000001"


def _fetch(tmp_path: Path, name: str, **env: str) -> tuple[int, str]:
    result = run_warroom(
        "wal",
        "fetch",
        name,
        str(tmp_path / "pg_wal" / name),
        env=cli_env(tmp_path, **env),
        cwd=tmp_path,
    )
    return result.code, result.stderr


def test_wal_fetch_exit_codes_follow_restore_command_semantics(tmp_path: Path) -> None:
    segment = tmp_path / SEGMENT
    segment.write_bytes(bytes(range(256)) * 4096)
    assert run_warroom("wal", "push", str(segment), env=cli_env(tmp_path), cwd=tmp_path).code == 0
    assert _fetch(tmp_path, SEGMENT)[0] == 0

    code, stderr = _fetch(tmp_path, "000000010000000000000002")
    assert code == 1 and "not in the archive" in stderr

    stored = tmp_path / "backups" / "wal" / "00000001" / SEGMENT
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    code, stderr = _fetch(tmp_path, SEGMENT)
    assert code == 255 and "corrupt" in stderr, stderr

    (tmp_path / "a-file").write_text("")
    code, stderr = _fetch(tmp_path, SEGMENT, BACKUP_DIR=str(tmp_path / "a-file"))
    assert code == 255 and "a-file" in stderr, stderr


def test_data_dir_naming_a_file_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = run_warroom(
        "restore",
        "database",
        "--target-time",
        "latest",
        "--data-dir",
        str(tmp_path / "a-file"),
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.code == 2, result.stderr
    assert "is not a directory" in result.stderr and "bug" not in result.stderr
