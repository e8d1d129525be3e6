"""The PostgreSQL tool wrappers: version order, and programs that cannot be started."""

from __future__ import annotations

import pytest

from warroom.database.pgtools import PgTool, newest_first, run_tool
from warroom.database.pitr import _expand
from warroom.errors import ConfigurationError


def test_versions_sort_as_numbers() -> None:
    paths = [f"/usr/lib/postgresql/{v}/bin/pg_ctl" for v in ("9.6", "16", "15", "10")]
    assert [path.split("/")[4] for path in newest_first(paths)] == ["16", "15", "10", "9.6"]


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
