"""PostgreSQL connections and client tools: the state every part of the engine shares.

:class:`PostgresConnection` parses the URL (the password kept apart, never in argv, logs or
messages), builds libpq connection strings, opens connections (:meth:`~PostgresConnection._connect`
translates psycopg's errors), finds the client programs matching the server's version and runs
them with the password in their environment. It also tells the database's identity and source,
and makes a sibling: the same server, another database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from warroom.database import Source
from warroom.database.pgtools import PgProcess, PgTool, find_tools
from warroom.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseUnreachableError,
    InputError,
)
from warroom.redact import redact_text, redact_url

__all__ = ["LOAD_OPTIONS", "MAINTENANCE_DB", "MAX_DB_NAME", "SESSION_OPTIONS", "PostgresConnection"]

MAX_DB_NAME = 63
MAINTENANCE_DB = "postgres"

SESSION_OPTIONS = "-c idle_in_transaction_session_timeout=0 -c statement_timeout=0"
# A restore's load commits many small transactions (a statement of pre-data each): none waits
# for its WAL to reach the disk. A crash may lose the last of them, in a staging or scratch
# database that no one uses yet; the swap that puts it in place commits synchronously, which
# flushes all the WAL before it.
LOAD_OPTIONS = "-c synchronous_commit=off"


class PostgresConnection:
    """One PostgreSQL database's address, connections and tools; the base of every part of
    :class:`~warroom.database.postgres.PostgresEngine`. ``_claim`` is the lifecycle's (a work
    database's claim, :mod:`.lifecycle`): state lives here, so a sibling starts without one."""

    scheme = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pg_bin_dir: Path | None,
        connect_timeout: int,
        lock_wait_timeout: int = 600,
    ) -> None:
        self.display = redact_url(url)
        usage = "expected postgresql://user:password@host:5432/dbname"
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            # libpq's message quotes the offending text, which may be the password.
            raise ConfigurationError(
                f"invalid PostgreSQL URL {self.display!r}: it cannot be parsed; {usage}"
            ) from exc
        if not params.get("dbname"):
            raise ConfigurationError(f"the URL {self.display!r} names no database; add it: {usage}")
        for key in ("port", "connect_timeout"):
            if not all(part.strip().isdigit() for part in str(params.get(key, "0")).split(",")):
                raise ConfigurationError(f"the URL {self.display!r} has a non-numeric {key}")
        if "sslpassword" in params:
            raise ConfigurationError(
                "sslpassword in the URL is not supported: pg_dump would need it on its command "
                "line; use a client key without a passphrase"
            )
        password = params.pop("password", None)
        self._params: dict[str, Any] = params
        self._password: str | None = str(password) if password is not None else None
        self._pg_bin_dir = pg_bin_dir
        self._connect_timeout = connect_timeout
        self._lock_wait_timeout = lock_wait_timeout
        self._claim: ExitStack | None = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def database_name(self) -> str:
        return str(self._params["dbname"])

    @property
    def identity(self) -> str:
        host = self._params.get("host") or "localhost"
        return f"postgresql://{host}:{self._params.get('port') or 5432}/{self.database_name}"

    def source(self) -> Source:
        address = self.identity
        try:
            with self._connect() as conn:
                (system_id,) = conn.execute(
                    "SELECT system_identifier FROM pg_control_system()"
                ).fetchone()
        except DatabaseError:
            return Source(id=address, address=address, label=self.display)
        return Source(
            id=f"postgresql:{system_id}/{self.database_name}", address=address, label=self.display
        )

    def sibling(self, database_name: str) -> Self:
        if not 0 < len(database_name.encode()) <= MAX_DB_NAME:
            raise InputError(
                f"database name {database_name!r} must be 1 to {MAX_DB_NAME} bytes long"
            )
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._params = {**self._params, "dbname": database_name}
        clone.display = self.display.rsplit("/", 1)[0] + "/" + database_name
        clone._claim = None
        return clone

    def _conninfo(self, dbname: str | None = None, loading: bool = False) -> str:
        """Connection parameters without the password. Server-side timeouts that the database
        or role may set (idle in transaction, statement) would kill a long backup: off.
        ``loading``: a session of a restore's load (LOAD_OPTIONS)."""
        params = {**self._params, "dbname": dbname or self.database_name}
        params.setdefault("connect_timeout", self._connect_timeout)
        params.setdefault("application_name", "warroom")
        params["options"] = " ".join(
            filter(
                None,
                [
                    str(params.get("options") or ""),
                    SESSION_OPTIONS,
                    f"-c lock_timeout={self._lock_wait_timeout}s",
                    LOAD_OPTIONS if loading else "",
                ],
            )
        )
        return make_conninfo(**params)

    def _tool_env(self) -> dict[str, str]:
        env = {"PGCONNECT_TIMEOUT": str(self._connect_timeout), "PGAPPNAME": "warroom"}
        if self._password:
            env["PGPASSWORD"] = self._password
        return env

    @contextmanager
    def _connect(
        self, dbname: str | None = None, autocommit: bool = True, loading: bool = False
    ) -> Iterator[Any]:
        where = self.display if dbname is None else self.sibling(dbname).display
        try:
            conn = psycopg.connect(
                self._conninfo(dbname, loading), autocommit=autocommit, password=self._password
            )
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(
                f"invalid connection parameters in {self.display!r}: "
                f"{redact_text(str(exc).strip(), self._password)}"
            ) from exc
        except psycopg.OperationalError as exc:
            reason = redact_text(str(exc).strip(), self._password)
            raise DatabaseUnreachableError(
                f"cannot connect to {where}: {reason}", database=where
            ) from exc
        try:
            with conn:
                if conn.info.parameter_status("client_encoding") == "SQL_ASCII":
                    # psycopg returns SQL_ASCII text as bytes: read names as UTF-8 (the server
                    # checks them), and statements go out in it.
                    conn.execute("SET client_encoding = 'UTF8'")
                    conn.commit()
                yield conn
        except psycopg.Error as exc:
            reason = redact_text(str(exc).strip(), self._password)
            raise DatabaseError(f"{where}: {reason}", database=where) from exc

    def _tools(self, conn: Any, *names: str) -> dict[str, PgTool]:
        major = int(conn.info.server_version) // 10000
        return find_tools(major, self._pg_bin_dir, *names)

    def _run(self, tool: PgTool, args: list[str], **kwargs: Any) -> PgProcess:
        """Start ``tool``; the password travels in PGPASSWORD, never on the command line."""
        return PgProcess(tool, args, env=self._tool_env(), secrets=(self._password,), **kwargs)

    def ping(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT 1")

    def client_tool(self, name: str) -> PgTool:
        """The client program ``name``, no older than this database's server."""
        with self._connect() as conn:
            return self._tools(conn, name)[name]
