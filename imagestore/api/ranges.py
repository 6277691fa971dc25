"""HTTP byte ranges (RFC 9110 §14) for the exported disks: parsing ``Range`` / Azure
Storage's ``x-ms-range`` and laying out a ``multipart/byteranges`` body.

Forms accepted: ``bytes=A-B``, ``bytes=A-`` (to the end), ``bytes=-N`` (the last N bytes)
and lists of them (``curl -r 0-99,200-299``). An end past the size is cut to the size, as
the RFC says. Refused with 416 (:class:`RangeNotSatisfiable`): a range starting at or after
the end, a malformed one (garbage, ``B < A``, numbers of more than 19 digits), more than
:data:`MAX_RANGES` ranges, and overlapping ranges in a list (a client gains nothing from
them; a hostile one multiplies the work). A unit other than ``bytes`` is ignored (the whole
body), as the RFC allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_RANGES = 32
_SPEC = re.compile(r"^(\d{0,19})-(\d{0,19})$")


class RangeNotSatisfiable(Exception):
    """The Range header cannot be served (HTTP 416)."""


def parse(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The (start, end inclusive) ranges ``header`` asks for in a body of ``size`` bytes, or
    None for the whole body (no header, or a unit other than bytes)."""
    if header is None or not header.strip():
        return None
    unit, sep, specs = header.strip().partition("=")
    if not sep:
        raise RangeNotSatisfiable(f"malformed range {header!r}")
    if unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in specs.split(",")]
    if len(parts) > MAX_RANGES:
        raise RangeNotSatisfiable(f"{len(parts)} ranges asked for, at most {MAX_RANGES} served")
    out: list[tuple[int, int]] = []
    for p in parts:
        m = _SPEC.match(p)
        if not m or (not m.group(1) and not m.group(2)):
            raise RangeNotSatisfiable(f"malformed range {p!r}")
        a, b = m.group(1), m.group(2)
        if not a:  # suffix: the last N bytes
            n = int(b)
            if n == 0 or size == 0:
                continue
            out.append((max(0, size - n), size - 1))
            continue
        start = int(a)
        end = int(b) if b else size - 1
        if b and end < start:
            raise RangeNotSatisfiable(f"malformed range {p!r} (its end is before its start)")
        if start >= size:
            continue  # unsatisfiable on its own; the others may still be served
        out.append((start, min(end, size - 1)))
    if not out:
        raise RangeNotSatisfiable(f"range {header.strip()!r} is outside the {size}-byte body")
    if len(out) > 1:
        ordered = sorted(out)
        for (_a0, b0), (a1, _b1) in zip(ordered, ordered[1:], strict=False):
            if a1 <= b0:
                raise RangeNotSatisfiable("overlapping ranges are not served")
    return out


def content_range(start: int, end: int, size: int) -> str:
    """The ``Content-Range`` value of one range."""
    return f"bytes {start}-{end}/{size}"


class Multipart:
    """The layout of a ``multipart/byteranges`` body: part headers and their exact length."""

    def __init__(self, ranges: list[tuple[int, int]], size: int, boundary: str,
                 content_type: str = "application/octet-stream") -> None:
        self.ranges = ranges
        self.boundary = boundary
        self.heads = [
            (f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
             f"Content-Range: {content_range(a, b, size)}\r\n\r\n").encode()
            for a, b in ranges
        ]
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = f"multipart/byteranges; boundary={boundary}"
        self.length = (sum(len(h) for h in self.heads) + len(self.tail)
                       + sum(b - a + 1 for a, b in ranges))

    def pieces(self, read_range) -> Iterator[bytes]:  # noqa: ANN001 - (start, length) -> iter
        """The body: each part's header, then ``read_range(start, length)``'s pieces."""
        for head, (a, b) in zip(self.heads, self.ranges, strict=True):
            yield head
            yield from read_range(a, b - a + 1)
        yield self.tail
