"""Refusing an over-long JSON string before the parser sees it.

The JSON parser (yajl) re-reads a string that spans its input buffers from the start
each time a buffer arrives, so a 40 MiB string costs time that grows with the square of
its length. This scan runs ahead of it on the raw bytes, at C speed and in linear time,
and stops a string as soon as it passes the limit: escape pairs are blanked out (so no
quote inside a string is left), then the chunk is split at its quotes, and every other
piece is a string's content.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: A backslash and the byte it escapes; blanked to two bytes that are not quotes.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


class StringTooLongError(Exception):
    """A string in the document is longer than ``limit`` bytes, in the chunk at ``offset``."""

    def __init__(self, limit: int, offset: int) -> None:
        super().__init__(limit, offset)
        self.limit = limit
        self.offset = offset


class _Scan:
    """Where the scan stands between chunks: inside a string or not, and how long it is."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = False
        self.length = 0  # of the string the last chunk ended in
        self.escaped = False  # the last chunk ended on a backslash inside a string
        self.offset = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.escaped:
            chunk = b"_" + chunk[1:]  # what the backslash escaped: never a closing quote
        blanked = _ESCAPE.sub(b"__", chunk)
        pieces = blanked.split(b'"')
        if self.inside:  # the first piece ends the string the last chunk ended in
            self._check(self.length + len(pieces[0]))
        contents = pieces[2::2] if self.inside else pieces[1::2]
        if contents:
            self._check(max(map(len, contents)))
        ends_inside = self.inside != (len(pieces) % 2 == 0)  # an odd number of quotes flips it
        if ends_inside:
            carried = self.length if self.inside and len(pieces) == 1 else 0
            self.length = carried + len(pieces[-1])
        self.inside = ends_inside
        self.escaped = ends_inside and blanked.endswith(b"\\")
        self.offset += len(chunk)

    def _check(self, length: int) -> None:
        if length > self.limit:
            raise StringTooLongError(self.limit, self.offset)


def refuse_long_strings(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """``chunks`` unchanged; raises ``StringTooLongError`` at the first chunk in which a string's
    content (its raw bytes, escapes included) passes ``limit`` bytes."""
    scan = _Scan(limit)
    for chunk in chunks:
        scan.feed(chunk)
        yield chunk
