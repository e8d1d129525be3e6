"""How write_stream cuts a stream into parts: exact sizes, offsets, and the last one marked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from warroom.repository.storage import Part, _parts


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([], [Part(1, 0, b"", last=True)]),
        ([b"", b""], [Part(1, 0, b"", last=True)]),
        ([b"ab"], [Part(1, 0, b"ab", last=True)]),
        ([b"abcd"], [Part(1, 0, b"abcd", last=True)]),  # full, and the end: one part
        ([b"ab", b"cd", b""], [Part(1, 0, b"abcd", last=True)]),
        ([b"abcd", b"e"], [Part(1, 0, b"abcd"), Part(2, 4, b"e", last=True)]),
        (
            [b"abcdefghij"],  # one chunk of several parts
            [Part(1, 0, b"abcd"), Part(2, 4, b"efgh"), Part(3, 8, b"ij", last=True)],
        ),
        ([b"abc", b"defgh"], [Part(1, 0, b"abcd"), Part(2, 4, b"efgh", last=True)]),
    ],
)
def test_parts_are_cut_at_the_size_and_the_last_is_marked(
    chunks: list[bytes], expected: list[Part]
) -> None:
    assert list(_parts(iter(chunks), 4)) == expected


def test_a_full_part_waits_only_for_the_next_chunk() -> None:
    """A part is handed out as soon as the next chunk shows it is not the last: a writer reads
    one chunk ahead, never a whole part."""
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for number, chunk in enumerate([b"abcd", b"e", b"fgh", b"ijkl"]):
            pulled.append(number)
            yield chunk

    parts = _parts(chunks(), 4)
    assert next(parts) == Part(1, 0, b"abcd") and pulled == [0, 1]
    assert next(parts) == Part(2, 4, b"efgh") and pulled == [0, 1, 2, 3]
    assert next(parts) == Part(3, 8, b"ijkl", last=True)
