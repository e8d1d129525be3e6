"""The PostgreSQL tool wrappers: version order, finding a program, and programs that cannot
be started."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from warroom.database.pgtools import PgTool, find_tools, newest_first, run_tool
from warroom.database.pitr import _expand
from warroom.errors import ConfigurationError


def test_versions_sort_as_numbers() -> None:
    paths = [f"/usr/lib/postgresql/{v}/bin/pg_ctl" for v in ("9.6", "16", "15", "10")]
    assert [path.split("/")[4] for path in newest_first(paths)] == ["16", "15", "10", "9.6"]


def test_the_first_usable_program_is_taken_without_probing_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest installed pg_dump is used; one on PATH (Debian's pg_wrapper, a Perl script)
    is only run when no installed one will do, and is then named in the error."""
    installed = newest_first(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))
    if not installed:
        pytest.skip("no PostgreSQL client in /usr/lib/postgresql")
    probed = tmp_path / "probed"
    on_path = tmp_path / "pg_dump"
    on_path.write_text(f"#!/bin/sh\n/usr/bin/touch {probed}\necho 'pg_dump (PostgreSQL) 9.6.1'\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    major = int(installed[0].split("/")[4].split(".")[0])
    assert find_tools(major, None, "pg_dump")["pg_dump"].path == installed[0]
    assert not probed.exists()
    with pytest.raises(ConfigurationError, match=f"{on_path} \\(9.6.1\\)"):
        find_tools(major + 1, None, "pg_dump")
    assert probed.exists()


def test_a_missing_runuser_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    tool = PgTool("pg_ctl", "/usr/lib/postgresql/15/bin/pg_ctl", "15.0")
    with pytest.raises(ConfigurationError, match="cannot run runuser: .*runuser \\(util-linux\\)"):
        run_tool(tool, ["--version"], as_user="postgres")


def test_a_missing_program_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot run /nonexistent/pg_ctl"):
        run_tool(PgTool("pg_ctl", "/nonexistent/pg_ctl", "15.0"), ["--version"])


def test_wal_commands_expand_as_postgresql_expands_them() -> None:
    command = "BACKUP_DIR='/srv/100%%' warroom wal fetch %f %p %r"
    expanded = _expand(command, f="000000010000000000000001", p="pg_wal/it's")
    assert expanded == (
        "BACKUP_DIR='/srv/100%' warroom wal fetch 000000010000000000000001 'pg_wal/it'\"'\"'s' %r"
    )
