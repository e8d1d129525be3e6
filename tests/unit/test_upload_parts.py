"""How write_stream cuts a stream into parts: exact sizes, offsets, and the last one marked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from warroom.repository.storage import Part, _parts, part_length


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


def test_parts_double_in_size_every_tier() -> None:
    """Two parts of 2 bytes, two of 4, then 8: the offsets follow, and the stream's bytes are
    all there whatever the chunks."""
    stream = bytes(range(25))
    for chunk in (1, 3, 7, 25):
        chunks = [stream[start : start + chunk] for start in range(0, len(stream), chunk)]
        parts = list(_parts(iter(chunks), 2, per_tier=2))
        assert [len(part.data) for part in parts] == [2, 2, 4, 4, 8, 5]
        assert [part.offset for part in parts] == [0, 2, 4, 8, 12, 20]
        assert [part.number for part in parts] == [1, 2, 3, 4, 5, 6]
        assert b"".join(part.data for part in parts) == stream and parts[-1].last


def test_part_lengths() -> None:
    assert [part_length(number, 8, None) for number in (1, 1000, 10_000)] == [8, 8, 8]
    assert [part_length(number, 8, 1000) for number in (1, 1000, 1001, 2001, 9282)] == [
        8,
        8,
        16,
        32,
        8 << 9,
    ]
