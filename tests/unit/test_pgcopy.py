"""Copy parts: how a stream of several tables' COPY rows is split and counted, whatever the
chunking, and how a damaged one is refused."""

from __future__ import annotations

import pytest

from warroom.database import pgcopy
from warroom.database.pgcopy import CopyTable, TableFrames, copy_in_statement, plan_parts
from warroom.database.postgres import _dependencies, split_list_setting
from warroom.errors import IntegrityError

# Three tables: two rows (one with an escaped newline and values that start with a backslash or
# contain "\."), none, and one row that is itself "\\." (a backslash and a dot).
TABLES = [b"1\ta\\nb\n2\t\\\\.x\\.\n", b"", b"\\\\.\n"]
STREAM = b"".join(rows + b"\\.\n" for rows in TABLES)


def split(stream: bytes, tables: int, size: int) -> tuple[list[bytes], list[int]]:
    frames = TableFrames("part", tables, count_rows=True)
    out = [b""] * tables
    for offset in range(0, len(stream), size):
        for index, piece in frames.feed(stream[offset : offset + size]):
            out[index] += bytes(piece)
    frames.finish()
    return out, frames.rows


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 1 << 20])
def test_every_chunking_gives_each_table_its_rows(size: int) -> None:
    out, rows = split(STREAM, 3, size)
    assert out == TABLES
    assert rows == [2, 0, 1]


def test_a_single_table_part_is_passed_through_without_its_end_line() -> None:
    out, rows = split(b"a\nb\n\\.\n", 1, 2)
    assert out == [b"a\nb\n"]
    assert rows == [2]


@pytest.mark.parametrize(
    "stream",
    [
        STREAM[:-1],  # truncated inside the last end line
        STREAM[:-3],  # the last end line missing
        STREAM[:10],  # truncated inside the first table
        STREAM + b"x\n",  # data after the last table
        b"1\n\\.\n",  # fewer tables than the manifest lists
    ],
)
def test_a_damaged_part_is_refused(stream: bytes) -> None:
    with pytest.raises(IntegrityError, match="part is damaged"):
        split(stream, 3, 4)


def test_counted_passes_chunks_through_and_counts() -> None:
    frames = TableFrames("part", 3, count_rows=True)
    chunks = [STREAM[:5], STREAM[5:]]
    assert list(frames.counted(chunks)) == chunks
    assert frames.rows == [2, 0, 1]


def test_big_tables_get_parts_of_their_own_and_small_ones_share() -> None:
    big, medium, small = (CopyTable("s", name, ("id",)) for name in ("big", "medium", "small"))
    plan = plan_parts([(small, 10), (big, 100), (medium, 60)], target_bytes=64)
    assert plan == [(big,), (medium,), (small,)]
    assert plan_parts([(small, 10), (medium, 40)], target_bytes=64) == [(medium, small)]


def test_empty_tables_share_parts_of_bounded_table_counts() -> None:
    empty = [(CopyTable("s", f"t{i}", ("id",)), 0) for i in range(2 * pgcopy.PART_MAX_TABLES + 1)]
    plan = plan_parts(empty)
    assert [len(part) for part in plan] == [pgcopy.PART_MAX_TABLES, pgcopy.PART_MAX_TABLES, 1]
    assert [table for part in plan for table in part] == [table for table, _ in empty]


def test_copy_statements_quote_every_name() -> None:
    table = CopyTable('we"ird', "Tab le", ("a b", "c"))
    statement = copy_in_statement(table, freeze=True).as_string(None)
    assert statement == 'COPY "we""ird"."Tab le" ("a b", "c") FROM STDIN (FREEZE)'
    no_columns = CopyTable("s", "t", ())
    assert copy_in_statement(no_columns, freeze=False).as_string(None) == 'COPY "s"."t" FROM STDIN'


@pytest.mark.parametrize(
    ("stored", "items"),
    [
        ('"it\'s", "a,b", public, "$user"', ["it's", "a,b", "public", "$user"]),
        ('""', [""]),
        ('"say ""hi""",x', ['say "hi"', "x"]),
        ("  a ,  b  ", ["a", "b"]),
        ("", []),
    ],
)
def test_list_settings_split_as_postgresql_stores_them(stored: str, items: list[str]) -> None:
    assert split_list_setting(stored) == items


def test_a_via_root_table_loads_through_its_root_without_freezing() -> None:
    leaf = CopyTable("s", "leaf", ("a", "b"), via=("r", "root"))
    assert CopyTable.from_dict(leaf.to_dict()) == leaf
    assert copy_in_statement(leaf, freeze=True).as_string(None) == (
        'COPY "r"."root" ("a", "b") FROM STDIN'
    )
    plain = CopyTable("s", "t", ())
    assert "via" not in plain.to_dict()
    assert (
        copy_in_statement(plain, freeze=True).as_string(None) == 'COPY "s"."t" FROM STDIN (FREEZE)'
    )


def test_dependencies_are_read_from_a_verbose_listing() -> None:
    listing = (
        ";\n; Archive created at 2026-12-01\n"
        "214; 1259 21549 TABLE public p postgres\n"
        "3214; 2620 21558 TRIGGER public p tr postgres\n;\tdepends on: 214 219\n"
        "3215; 2620 21559 TRIGGER public p1 tr postgres\n;\tdepends on: 215 215 219 3214\n"
    )
    assert _dependencies(listing) == {3214: [214, 219], 3215: [215, 215, 219, 3214]}
