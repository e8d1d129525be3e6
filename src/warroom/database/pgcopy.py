"""Table data as ``COPY`` text: how a PostgreSQL backup stores its tables' rows.

A *copy part* holds one or more tables' rows, in the order its manifest entry lists them. Each
table's rows are exactly what ``COPY table (columns) TO STDOUT`` wrote (text format, the
database's encoding), followed by an end-of-table line ``\\.``, which no row can be: a
backslash at the start of a value is written ``\\\\``. So a part is read as a sequence of
tables, and in COPY text format every row ends with a newline (a newline inside a value is
written ``\\n``): a table's row count is the number of newlines before its end line.

The backup writes a part with one ``psql`` per part, inside the backup's exported snapshot
(:func:`copy_out_script`); the restore splits it with :class:`TableFrames` and streams each
table into its own ``COPY ... FROM STDIN`` (:func:`copy_in_statement`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from warroom.errors import IntegrityError

__all__ = [
    "CopyTable",
    "TableFrames",
    "copy_in_statement",
    "copy_out_script",
    "plan_parts",
    "session_settings",
]

END_OF_TABLE = b"\\.\n"
NEWLINE = 0x0A
# The settings of every session that writes or reads copy parts, whatever the server's, the
# database's or the role's defaults: those pg_dump and pg_restore use. Under them every value's
# text form reads back exactly; an empty search_path writes names (regclass, regtype, ...)
# schema-qualified.
COPY_SETTINGS = {
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "row_security": "off",
    "standard_conforming_strings": "on",
    "search_path": "",
    "xmloption": "content",
    "client_min_messages": "warning",
}
PART_TARGET_BYTES = 64 << 20
# A restore loads a part's tables in one transaction, holding a lock on each: a part of
# thousands of empty tables would exhaust the server's lock table (max_locks_per_transaction).
PART_MAX_TABLES = 200


@dataclass(frozen=True)
class CopyTable:
    """A table whose rows are stored as COPY text, and the columns copied (in that order).

    ``via``: for a partition whose rows must be routed again on restore (its partition tree
    hashes a key whose hash depends on OIDs, such as an enum), the ``(schema, name)`` of the
    tree's root, which a restore loads its rows through, as ``pg_dump
    --load-via-partition-root`` does."""

    schema: str
    name: str
    columns: tuple[str, ...]
    via: tuple[str, str] | None = None

    @property
    def qualified(self) -> str:
        """``schema.name``, unquoted: the table's key in a manifest's row counts."""
        return f"{self.schema}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": self.schema,
            "name": self.name,
            "columns": list(self.columns),
        }
        if self.via is not None:
            data["via"] = list(self.via)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CopyTable:
        via = data.get("via")
        return cls(
            str(data["schema"]),
            str(data["name"]),
            tuple(map(str, data["columns"])),
            (str(via[0]), str(via[1])) if via else None,
        )

    @property
    def identifier(self) -> sql.Composed:
        """The quoted ``"schema"."name"``."""
        return _qualified(self.schema, self.name)

    def _target(self, table: sql.Composed | None = None) -> sql.Composed:
        """``schema.name (columns)`` (``table`` instead of this one's name); without columns
        (a table of generated columns only, or of none) COPY's default, every non-generated
        column, is that same empty list."""
        table = table or self.identifier
        if not self.columns:
            return table
        columns = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        return table + sql.SQL(" ({})").format(columns)


def _qualified(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def plan_parts(
    tables: list[tuple[CopyTable, int]], target_bytes: int | None = None
) -> list[tuple[CopyTable, ...]]:
    """Group ``(table, size in bytes)`` into parts, largest first: a table of ``target_bytes``
    (default :data:`PART_TARGET_BYTES`) or more is a part of its own; smaller ones share parts
    of about ``target_bytes`` and at most :data:`PART_MAX_TABLES` tables. A restore loads parts
    in parallel, so big tables never share."""
    target_bytes = target_bytes or PART_TARGET_BYTES
    parts: list[list[CopyTable]] = []
    batch: list[CopyTable] = []
    batch_bytes = 0
    for table, size in sorted(tables, key=lambda item: -item[1]):
        if size >= target_bytes:
            parts.append([table])
            continue
        if batch and (batch_bytes + size > target_bytes or len(batch) == PART_MAX_TABLES):
            parts.append(batch)
            batch, batch_bytes = [], 0
        batch.append(table)
        batch_bytes += size
    if batch:
        parts.append(batch)
    return [tuple(part) for part in parts]


def copy_out_script(snapshot: str, encoding: str, tables: tuple[CopyTable, ...]) -> str:
    """The ``psql`` script that writes one copy part to its stdout: every table's rows in
    ``snapshot``, each followed by the end-of-table line. ``psql`` must run with ``-X -q``.

    The tables are locked NOWAIT first, in one statement: the backup already holds them, so a
    lock can only be refused because another session (an ALTER TABLE) waits for it, queued
    behind the backup. Waiting there would stall that session and every query queued behind
    it until the backup gave up; failing at once lets them through."""
    lock = sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT;").format(
        sql.SQL(", ").join(table.identifier for table in tables)
    )
    lines = [
        "\\set ON_ERROR_STOP on",
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;",
        f"SET TRANSACTION SNAPSHOT '{snapshot}';",
        *(statement.as_string(None) + ";" for statement in session_settings(encoding)),
        lock.as_string(None),
    ]
    for table in tables:
        lines += [f"COPY {table._target().as_string(None)} TO STDOUT;", "\\echo '\\\\.'"]
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def copy_in_statement(table: CopyTable, freeze: bool) -> sql.Composed:
    """``COPY table (columns) FROM STDIN``, or through the root the table's rows are loaded
    :attr:`~CopyTable.via`; ``freeze`` writes the rows already frozen, which needs the table
    created or truncated in the same transaction (never through a root)."""
    if table.via is not None:
        return sql.SQL("COPY {} FROM STDIN").format(table._target(_qualified(*table.via)))
    option = sql.SQL(" (FREEZE)") if freeze else sql.SQL("")
    return sql.SQL("COPY {} FROM STDIN{}").format(table._target(), option)


def session_settings(encoding: str) -> list[sql.Composed]:
    """The ``SET`` statements of a session that writes or reads copy parts."""
    settings = {"client_encoding": encoding, **COPY_SETTINGS}
    return [
        sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
        for name, value in settings.items()
    ]


class TableFrames:
    """Splits a copy part's plain stream into its tables' rows.

    ``feed(chunk)`` returns ``(table index, rows)`` pieces, in order, with the end-of-table
    lines removed; :meth:`finish` raises IntegrityError unless the stream ended exactly with
    the last table's end line. With ``count_rows``, ``rows[i]`` is the number of rows seen for
    table ``i``. Only the end lines of the tables before the last are searched for: the last
    one ends the stream, so a single-table part is not scanned at all.
    """

    def __init__(self, part: str, tables: int, *, count_rows: bool = False) -> None:
        self.part = part
        self.tables = tables
        self.rows = [0] * tables
        self.index = 0
        self._count = count_rows
        self._held = b""  # the last bytes seen, which may be (the start of) an end line
        self._line_start = True  # whether _held (or the next chunk) starts a line

    def feed(self, chunk: bytes) -> Iterator[tuple[int, memoryview]]:
        data = self._held + chunk if self._held else chunk
        view = memoryview(data)
        start = 0
        while self.index < self.tables - 1 and (end := self._find_end(data, start)) >= 0:
            yield from self._piece(data, view, start, end)
            self.index += 1
            start = end + len(END_OF_TABLE)
        held = len(END_OF_TABLE) - (0 if self.index == self.tables - 1 else 1)
        keep = max(start, len(data) - held)
        yield from self._piece(data, view, start, keep)
        self._line_start = self._at_line_start(data, keep)
        self._held = data[keep:]

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` unchanged, splitting (and counting) as they pass; :meth:`finish` at the
        end."""
        for chunk in chunks:
            for _ in self.feed(chunk):
                pass
            yield chunk
        self.finish()

    def finish(self) -> None:
        ended = self._held == END_OF_TABLE and self._line_start
        if self.index != self.tables - 1 or not ended:
            raise IntegrityError(
                f"{self.part} is damaged: its table data ends inside table "
                f"{self.index + 1} of {self.tables}",
                part=self.part,
            )
        self.index = self.tables
        self._held = b""

    def _find_end(self, data: bytes, start: int) -> int:
        """Where the first end line at or after ``start`` begins, or -1."""
        while (found := data.find(END_OF_TABLE, start)) >= 0:
            if self._at_line_start(data, found):
                return found
            start = found + 1
        return -1

    def _at_line_start(self, data: bytes, position: int) -> bool:
        return self._line_start if position == 0 else data[position - 1] == NEWLINE

    def _piece(
        self, data: bytes, view: memoryview, start: int, end: int
    ) -> Iterator[tuple[int, memoryview]]:
        if end > start:
            if self._count:
                self.rows[self.index] += data.count(b"\n", start, end)
            yield self.index, view[start:end]
