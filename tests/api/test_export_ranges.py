"""Range header parsing for exported disks: the forms curl and azure-storage-blob send, and
hostile ones refused (416)."""

from __future__ import annotations

import pytest

from imagestore.api.ranges import MAX_RANGES, Multipart, RangeNotSatisfiable, parse

pytestmark = pytest.mark.one_pass  # no native/pure backend code involved

N = 1000


@pytest.mark.parametrize("header, want", [
    (None, None), ("", None),
    ("bytes=0-99", [(0, 99)]),
    ("bytes=990-", [(990, 999)]),
    ("bytes=-10", [(990, 999)]),
    ("bytes=-5000", [(0, 999)]),          # a suffix longer than the body: all of it
    ("bytes=0-33554431", [(0, 999)]),     # azure-storage-blob's first 32 MiB: cut to the size
    ("bytes=0-0,-1", [(0, 0), (999, 999)]),
    ("bytes=0-99, 200-299", [(0, 99), (200, 299)]),
    ("BYTES=5-5", [(5, 5)]),
    ("bytes=500-600,2000-3000", [(500, 600)]),  # the unsatisfiable one is left out
    ("items=0-5", None),                  # another unit: ignored, the whole body
])
def test_forms(header, want):
    assert parse(header, N) == want


@pytest.mark.parametrize("header", [
    "bytes=1000-", "bytes=1000-2000", "bytes=5000-1", "bytes=9-3", "bytes=abc", "bytes=-",
    "bytes=1-2-3", "bytes=0-1;2-3", "garbage", "bytes=" + "9" * 25 + "-",
    "bytes=-0", "bytes=0-10,5-20", "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1)),
    "bytes= , ",
])
def test_hostile(header):
    with pytest.raises(RangeNotSatisfiable):
        parse(header, N)


def test_empty_body_has_no_satisfiable_range():
    with pytest.raises(RangeNotSatisfiable):
        parse("bytes=0-", 0)


def test_multipart_length_is_exact():
    body = bytes(range(256)) * 4
    ranges = parse("bytes=0-9,100-199,-3", len(body))
    mp = Multipart(ranges, len(body), "BOUNDARY")
    out = b"".join(mp.pieces(lambda a, n: iter([body[a:a + n]])))
    assert len(out) == mp.length
    assert out.count(b"--BOUNDARY") == 4 and out.endswith(b"--BOUNDARY--\r\n")
    assert b"Content-Range: bytes 100-199/1024\r\n\r\n" + body[100:200] in out
