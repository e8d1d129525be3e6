"""The database lifecycle: create, drop, replace by renaming, and warroom's own work databases.

Restores load a staging database and retire the one they replace; restore tests load a scratch
one. Each is claimed, from before it exists until it is gone, by a session-level advisory lock
on the maintenance database (:data:`WORK_CLAIM_KEY`), so a process killed meanwhile releases
its claim and leaves a database that :meth:`DatabaseLifecycle.sweep_abandoned` drops.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Self

import psycopg
from psycopg import sql

from warroom.critical import fault_point, signals_deferred
from warroom.database.postgres.connection import MAINTENANCE_DB, PostgresConnection
from warroom.errors import (
    DatabaseError,
    WarroomError,
)

__all__ = [
    "REAP_INTERVAL",
    "SWAP_ATTEMPTS",
    "SWAP_WAIT",
    "WORK_CLAIM_KEY",
    "WORK_DATABASE",
    "DatabaseLifecycle",
]

# The databases warroom creates for its own use while it works: restores load a staging database
# and retire the one they replace; restore tests load a scratch one. Each is claimed, from
# before it exists until it is gone, by a session-level advisory lock on the maintenance
# database, so a process killed meanwhile releases its claim and leaves a sweepable database.
WORK_DATABASE = re.compile(r"^warroom_(?:restore|scratch|retired)_[0-9a-f]{12}$")
WORK_CLAIM_KEY = 22354  # the first key of every claim; the second is hashtext(name)
_CLAIM = f"SELECT pg_advisory_lock({WORK_CLAIM_KEY}, hashtext(%s))"
_TRY_CLAIM = f"SELECT pg_try_advisory_lock({WORK_CLAIM_KEY}, hashtext(%s))"
_UNCLAIM = f"SELECT pg_advisory_unlock({WORK_CLAIM_KEY}, hashtext(%s))"
_RENAME = sql.SQL("ALTER DATABASE {} RENAME TO {}")

_TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = %s AND pid <> pg_backend_pid()"
)
# A swap is tried this many times when sessions do not end (or its lock does not come) in
# SWAP_WAIT; its reaper terminates the sessions on the database every REAP_INTERVAL seconds.
SWAP_ATTEMPTS = 3
SWAP_WAIT = "5s"
REAP_INTERVAL = 0.1
_BUSY = (psycopg.errors.ObjectInUse, psycopg.errors.LockNotAvailable)

_SUBSCRIBED_QUERY = """
SELECT d.datallowconn, EXISTS (SELECT 1 FROM pg_subscription s WHERE s.subdbid = d.oid)
FROM pg_database d WHERE d.datname = %s
"""


class DatabaseLifecycle(PostgresConnection):
    """Creating, dropping and replacing this database; claiming and sweeping work databases."""

    # -- warroom's own work databases -------------------------------------------------------

    def _claim_name(self) -> None:
        """Claim this work database's name (see WORK_DATABASE) until :meth:`_release` or the
        process ends; other names need no claim."""
        if self._claim is not None or not WORK_DATABASE.match(self.database_name):
            return
        claim = ExitStack()
        conn = claim.enter_context(self._connect(MAINTENANCE_DB))
        try:
            conn.execute(_CLAIM, (self.database_name,))
        except BaseException as exc:
            claim.__exit__(type(exc), exc, exc.__traceback__)  # raises it as a DatabaseError
            raise
        self._claim = claim

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None

    def sweep_abandoned(self) -> list[str]:
        """Drop the work databases on this server whose process is gone (killed during a
        restore or a restore test); return their names."""
        dropped = []
        with self._connect(MAINTENANCE_DB) as conn:
            names = [
                name
                for (name,) in conn.execute("SELECT datname FROM pg_database ORDER BY 1")
                if WORK_DATABASE.match(name)
            ]
            for name in names:
                if conn.execute(_TRY_CLAIM, (name,)).fetchone()[0]:
                    try:
                        self.sibling(name).drop()
                        dropped.append(name)
                    finally:
                        conn.execute(_UNCLAIM, (name,))
        return dropped

    def exists(self) -> bool:
        with self._connect(MAINTENANCE_DB) as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.database_name,)
                ).fetchone()
            )

    @contextmanager
    def scratch(self) -> Iterator[Self]:
        scratch = self.sibling(f"warroom_scratch_{uuid.uuid4().hex[:12]}")
        try:
            yield scratch
        finally:
            scratch.drop()

    def create_empty(self, database: dict[str, Any]) -> None:
        """CREATE DATABASE with the recorded encoding, locale and owner (from template0)."""
        options: list[sql.Composable] = [sql.SQL("TEMPLATE template0")]
        keywords = [("encoding", "ENCODING"), ("collate", "LC_COLLATE"), ("ctype", "LC_CTYPE")]
        if database.get("locale_provider") == "i" and database.get("icu_locale"):
            keywords += [("icu_locale", "ICU_LOCALE")]
            options.append(sql.SQL("LOCALE_PROVIDER icu"))
        for key, keyword in keywords:
            if database.get(key):
                options.append(sql.SQL(keyword + " {}").format(sql.Literal(database[key])))
        if database.get("owner"):
            options.append(sql.SQL("OWNER {}").format(sql.Identifier(database["owner"])))
        statement = sql.SQL("CREATE DATABASE {} ").format(
            sql.Identifier(self.database_name)
        ) + sql.SQL(" ").join(options)
        self._claim_name()
        with self._connect(MAINTENANCE_DB) as conn:
            conn.execute(statement)

    def drop(self) -> None:
        """DROP DATABASE, whatever it holds: its subscriptions, which DROP DATABASE refuses,
        are dropped first without touching their publishers' slots."""
        name = sql.Identifier(self.database_name)
        try:
            with self._connect(MAINTENANCE_DB) as conn:
                row = conn.execute(_SUBSCRIBED_QUERY, (self.database_name,)).fetchone()
                if row is not None and row[1]:
                    if not row[0]:  # a retired database no longer takes connections
                        conn.execute(
                            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name)
                        )
                    self._drop_subscriptions()
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        finally:  # a failed DROP leaves the claim's connection to the next sweep, not to GC
            self._release()

    def _drop_subscriptions(self) -> None:
        """Drop this database's subscriptions, each disabled and detached from its slot first
        (a drop would otherwise connect to the publisher to drop the slot)."""
        with self._connect() as conn:
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT subname FROM pg_subscription WHERE subdbid ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ]
            for name in names:
                subscription = sql.Identifier(name)
                for statement in (
                    "ALTER SUBSCRIPTION {} DISABLE",
                    "ALTER SUBSCRIPTION {} SET (slot_name = NONE)",
                    "DROP SUBSCRIPTION {}",
                ):
                    conn.execute(sql.SQL(statement).format(subscription))

    def owner(self) -> str:
        with self._connect(MAINTENANCE_DB) as conn:
            row = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                (self.database_name,),
            ).fetchone()
        if row is None:
            raise DatabaseError(f"database {self.display} does not exist")
        return str(row[0])

    def replace_with(self, staging: Any, overwrite: bool) -> None:
        """Make ``staging`` (a restored sibling) this database by renaming: at every instant
        this name holds the old database or the new one, accepting connections.

        Without ``overwrite`` it is one rename, which fails if this name appeared meanwhile.
        With it, :meth:`_swap` renames this database to a claimed ``warroom_retired_*`` name and
        ``staging`` to this name in one transaction, then the retired database is dropped. A
        hang-up, SIGTERM or Ctrl-C meanwhile waits until that is done; a kill or a server crash
        leaves a work database that the next restore or restore test on the server drops."""
        if not overwrite:
            with self._connect(MAINTENANCE_DB) as conn:
                conn.execute(
                    _RENAME.format(
                        sql.Identifier(staging.database_name), sql.Identifier(self.database_name)
                    )
                )
            staging._release()
            return
        retired = self.sibling(f"warroom_retired_{uuid.uuid4().hex[:12]}")
        retired._claim_name()  # killed before its DROP, it is swept by the next restore
        try:
            with signals_deferred():
                self._swap(staging, retired)
                staging._release()
                retired.drop()
        finally:
            retired._release()

    def _swap(self, staging: DatabaseLifecycle, retired: DatabaseLifecycle) -> None:
        """Rename this database to ``retired`` and ``staging`` to this name, in one transaction.

        Why there is no window: nothing outside that transaction changes any database (no
        ALLOW_CONNECTIONS, no connection limit, nothing a kill could leave behind). The first
        rename takes PostgreSQL's ACCESS EXCLUSIVE lock on this database, held until the
        transaction ends, then waits up to 5 s (PostgreSQL's own wait) for the other sessions
        on it to end. A session connecting from then on waits for the lock before it joins the
        database, so the sessions that a second connection keeps terminating meanwhile
        (:meth:`_sessions_ended`) are the last: the rename goes through once they are gone.
        Until COMMIT, every other session sees the old database under this name; a kill of this
        process (its connection closes, the transaction rolls back), or a server crash (crash
        recovery discards the uncommitted transaction) leaves it there, accepting connections.
        After COMMIT the new one is there; the sessions that waited are refused once ("it
        seems to have just been dropped or renamed") and reconnect to it. A session that will
        not end (a prepared transaction, one we may not terminate) makes the attempt fail and
        roll back; after SWAP_ATTEMPTS the swap is refused, this database untouched."""
        name = sql.Identifier(self.database_name)
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            refused: list[WarroomError] = []
            try:
                with self._connect(MAINTENANCE_DB) as conn, conn.transaction():
                    # A frozen process must not hold this database's lock for long.
                    conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{SWAP_WAIT}'")
                    conn.execute(f"SET LOCAL lock_timeout = '{SWAP_WAIT}'")
                    with self._sessions_ended(refused):
                        conn.execute(_RENAME.format(name, sql.Identifier(retired.database_name)))
                    fault_point("swap-locked")
                    conn.execute(_RENAME.format(sql.Identifier(staging.database_name), name))
                    fault_point("swap-renamed")
                fault_point("swap-committed")
                return
            except DatabaseError as exc:
                if refused:
                    raise refused[0] from exc
                if not isinstance(exc.__cause__, _BUSY):
                    raise  # the connection was lost, perhaps in COMMIT: say no more than that
                if attempt < SWAP_ATTEMPTS:
                    continue
                raise DatabaseError(
                    f"the restored database could not replace {self.display}, which is "
                    f"unchanged: {exc.message}",
                    database=self.display,
                ) from exc

    @contextmanager
    def _sessions_ended(self, refused: list[WarroomError]) -> Iterator[None]:
        """While inside, a thread keeps terminating every session on this database from a
        connection of its own; why it could not (permission denied) is added to ``refused``
        once the block is left."""
        stop = threading.Event()

        def reap() -> None:
            try:
                with self._connect(MAINTENANCE_DB) as conn:
                    while True:
                        conn.execute(_TERMINATE, (self.database_name,))
                        if stop.wait(REAP_INTERVAL):
                            return
            except WarroomError as exc:
                refused.append(exc)

        reaper = threading.Thread(target=reap, name="warroom-reaper", daemon=True)
        reaper.start()
        try:
            yield
        finally:
            stop.set()
            reaper.join()
