"""Over-long strings are refused as soon as they pass their limit, however the bytes arrive."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statewright.workflows.relocation.strings import StringTooLongError, refuse_long_strings


def longest_string(document: bytes) -> int:
    """The longest string's raw length (its content between the quotes), byte by byte."""
    longest, inside, escaped, length = 0, False, False, 0
    for byte in document:
        if not inside:
            if byte == ord('"'):
                inside, length = True, 0
            continue
        if escaped:
            escaped, length = False, length + 1
        elif byte == ord("\\"):
            escaped, length = True, length + 1
        elif byte == ord('"'):
            inside, longest = False, max(longest, length)
        else:
            length += 1
    return max(longest, length if inside else 0)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('ab"\\\n\x00é😀')),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON, cuts=st.lists(st.integers(0, 10_000), max_size=12), limit=st.integers(1, 40))
def test_a_string_is_refused_exactly_when_it_passes_the_limit(
    value: object, cuts: list[int], limit: int
) -> None:
    """Cut anywhere (inside a string, between a backslash and what it escapes), the scan
    refuses a document exactly when one of its strings is longer than the limit."""
    data = json.dumps(value, ensure_ascii=bool(limit % 2)).encode()
    chunks = cut(data, cuts)
    if longest_string(data) > limit:
        with pytest.raises(StringTooLongError):
            list(refuse_long_strings(iter(chunks), limit))
    else:
        assert b"".join(refuse_long_strings(iter(chunks), limit)) == data


TRICKY = [
    json.dumps({"k\\": 'x"y\\"' + "z" * 12, "q": "\\"}).encode(),
    json.dumps(["\\", '"' * 9, "ab\\" * 4]).encode(),
]


@pytest.mark.parametrize("data", TRICKY)
def test_every_cut_of_escapes_and_quotes_is_scanned_exactly(data: bytes) -> None:
    """Cut at every pair of places, a document with escaped quotes and backslashes passes at
    its longest string's length and is refused one byte below it."""
    longest = longest_string(data)
    for first in range(len(data) + 1):
        for second in range(first, len(data) + 1):
            chunks = cut(data, [first, second])
            assert b"".join(refuse_long_strings(iter(chunks), longest)) == data
            with pytest.raises(StringTooLongError):
                list(refuse_long_strings(iter(chunks), longest - 1))


def test_a_40_mib_string_is_refused_in_its_first_mebibyte() -> None:
    """A 40 MiB string stops the reading after the first mebibyte of it, not at its end."""
    pulled = 0

    def endless_string() -> Iterator[bytes]:
        nonlocal pulled
        yield b'{"format": "statewright.relocation", "version": 1, "source": {"a": "'
        for _ in range(40):
            pulled += 1
            yield b"A" * (1 << 20)

    with pytest.raises(StringTooLongError) as refused:
        list(refuse_long_strings(endless_string(), 24_576))
    assert pulled == 1
    assert refused.value.limit == 24_576
