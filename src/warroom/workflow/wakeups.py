"""Waking this process's waits when the catalog changes: LISTEN/NOTIFY on PostgreSQL.

A wait (``recv``, ``get_event``, ``handle.get_result``, an idle worker) takes a :meth:`token`
*before* it looks at the catalog, and then :meth:`Wakeups.wait` s on it for at most its poll
interval: a wake that came after the token was taken, even before the wait began, ends the wait
at once, so no wake is lost between a look and a wait. The engine :meth:`announce` s the
changes waits look for (a message sent, an event set, an execution ended, enqueued, forked or
asked to resume).

On SQLite an announcement wakes only this process's waits; the others find the change at their
next poll. On PostgreSQL (:class:`ListeningWakeups`) it is also a ``NOTIFY`` on the channel
``warroom_workflow``, and each engine keeps one connection ``LISTEN`` ing in a daemon thread
(started by its first wait), so a change made by any process wakes the waits of every other
at once. Polling stays as the fallback while the listener is down.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import text

from warroom.catalog import Catalog
from warroom.errors import WarroomError

__all__ = ["CHANNEL", "ListeningWakeups", "Wakeups"]

log = logging.getLogger("warroom.workflow")
CHANNEL = "warroom_workflow"
RECONNECT_SECONDS = 5.0


class Wakeups:
    """Tokens, waits and wakes of one engine; announcements wake this process only."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._event = threading.Event()

    @staticmethod
    def for_catalog(catalog: Catalog) -> Wakeups:
        if catalog.engine.dialect.name == "postgresql":
            return ListeningWakeups(catalog)
        return Wakeups(catalog)

    def token(self) -> threading.Event:
        """Take before looking at the catalog; pass to :meth:`wait`."""
        return self._event

    def wait(self, token: threading.Event, seconds: float) -> None:
        """Return after ``seconds``, or as soon as a wake came after ``token`` was taken."""
        token.wait(seconds)

    def wake(self) -> None:
        """Wake every wait of this process. Takes no lock: safe from a signal handler."""
        event, self._event = self._event, threading.Event()
        event.set()

    def announce(self) -> None:
        """A change that waits look for was committed: wake them."""
        self.wake()

    def close(self) -> None:
        """Stop listening (nothing to stop here)."""


class ListeningWakeups(Wakeups):
    """:class:`Wakeups` over PostgreSQL's LISTEN/NOTIFY."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        # The password stays in this object: never shown, never logged.
        self._conninfo = catalog.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._started = threading.Lock()

    def token(self) -> threading.Event:
        if self._listener is None:
            with self._started:
                if self._listener is None and not self._closed.is_set():
                    self._listener = threading.Thread(
                        target=self._listen, name="warroom-wakeups", daemon=True
                    )
                    self._listener.start()
        return super().token()

    def announce(self) -> None:
        super().announce()
        self._notify()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._notify()  # ends the listener's wait at once
            self._listener.join(timeout=RECONNECT_SECONDS)

    def _notify(self) -> None:
        try:
            with self.catalog.single() as conn:
                conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
        except WarroomError as exc:
            log.warning("cannot notify the other workers (they poll): %s", exc.message)

    def _listen(self) -> None:
        """Wake this process's waits at each notification, until closed; reconnect after a
        lost connection (the waits poll meanwhile). The listener is this module's adapter of
        psycopg: its errors end here, as warnings."""
        import psycopg  # the driver is loaded only where a PostgreSQL catalog listens

        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake()  # what changed before LISTEN is looked at again
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=RECONNECT_SECONDS, stop_after=1):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("workflow wakeups: listening failed, polling meanwhile: %s", exc)
                self._closed.wait(RECONNECT_SECONDS)
