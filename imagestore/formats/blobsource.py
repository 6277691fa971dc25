"""A blob in Azure Blob Storage as a read-only source file for the disk readers.

``open_blob_source(url)`` returns a :class:`BlobSource`: ``pread`` is a ranged *Get Blob*;
for a **page blob** ``data_extents`` are its page ranges (*Get Page Ranges*), so the raw and
fixed-VHD readers read only the written pages and a dynamic VHD's own block table needs only
its metadata and blocks -- a sparse 1 TiB page blob with 2 GiB written costs 2 GiB of reads.
A block blob has no page map: all data, like a file on a filesystem without ``SEEK_DATA``.

Reads of disk data (64 KiB and more) fetch exactly their written ranges; small reads (the VHD
and VHDX readers' tables, bitmaps and headers; one request each would be slow over a network)
are served from cached 256 KiB windows, clipped to the written ranges. ``stats`` counts the
requests and bytes, for tests and benchmarks.

The guard of a blob source is its ETag: a blob written while it is captured changes its ETag,
and the capture is refused (:class:`~imagestore.formats.base.SourceChanged`) instead of
publishing torn content.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

from ..azblob import (
    Credential,
    blob_client,
    check_account_of,
    parse_blob_url,
    resolve_credential,
    service_errors,
)
from ..errors import BadImage
from .base import SourceChanged

#: small reads (tables, bitmaps, headers) are served from cached windows of this size
WINDOW = 256 << 10
#: reads at least this long fetch exactly their written ranges, uncached
DIRECT = 64 << 10
#: page ranges closer than this are read as one (fewer requests, a few zero bytes more)
PAGE_MERGE = 64 << 10


@dataclass
class SourceStats:
    requests: int = 0
    bytes_read: int = 0
    page_range_calls: int = 0


class BlobSource:
    def __init__(self, url: str, client, props) -> None:
        self.path = url
        self.client = client
        self.size = int(props.size)
        self.etag = props.etag
        self.blob_type = str(getattr(props.blob_type, "value", props.blob_type))
        self.stats = SourceStats()
        self._ranges: list[tuple[int, int]] | None = None
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    @property
    def is_page_blob(self) -> bool:
        return self.blob_type.lower().startswith("page")

    # -- reads ---------------------------------------------------------------------------

    def _get(self, offset: int, length: int) -> bytes:
        with service_errors(self.path):
            data = self.client.download_blob(offset=offset, length=length,
                                             etag=self.etag, match_condition=_if_match(),
                                             max_concurrency=1).readall()
        with self._lock:
            self.stats.requests += 1
            self.stats.bytes_read += len(data)
        return data

    def pread(self, length: int, offset: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        if length >= DIRECT:  # disk data: exactly the written ranges, zeros between
            segs = self.data_extents(offset, offset + length)
            if segs is None:
                return self._get(offset, length)
            out = bytearray(length)
            for o, n in segs:
                out[o - offset: o - offset + n] = self._get(o, n)
            return bytes(out)
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            lo, hi = self._window(pos)
            if lo is None:  # unwritten pages of a page blob: zeros, no request
                n = min(end, hi) - pos
                out += bytes(n)
                pos += n
                continue
            with self._lock:
                buf = self._cache.get(lo)
            if buf is None:
                buf = self._get(lo, hi - lo)
                with self._lock:
                    if len(self._cache) > 8:
                        self._cache.pop(next(iter(self._cache)))
                    self._cache[lo] = buf
            take = buf[pos - lo: min(end - lo, len(buf))]
            if not take:
                break
            out += take
            pos += len(take)
        return bytes(out)

    def _window(self, pos: int) -> tuple[int | None, int]:
        """The cached window holding ``pos``: an aligned WINDOW, clipped to the written page
        range that holds ``pos`` for a page blob; (None, next written offset) where nothing
        is written."""
        lo, hi = pos - pos % WINDOW, min(pos - pos % WINDOW + WINDOW, self.size)
        if not self.is_page_blob:
            return lo, hi
        ranges = self.page_ranges()
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos < ranges[i][0] + ranges[i][1]:
            return max(lo, ranges[i][0]), min(hi, ranges[i][0] + ranges[i][1])
        nxt = ranges[i + 1][0] if i + 1 < len(ranges) else self.size
        return None, nxt

    # -- allocation ----------------------------------------------------------------------

    def page_ranges(self) -> list[tuple[int, int]]:
        """(offset, length) of the written pages, merged where close."""
        if self._ranges is None:
            with service_errors(self.path):
                got: list[tuple[int, int]] = []
                for r in self.client.list_page_ranges():
                    if getattr(r, "cleared", False):
                        continue
                    got.append((r.start, r.end + 1 - r.start))
            self.stats.page_range_calls += 1
            got.sort()
            merged: list[tuple[int, int]] = []
            for o, n in got:
                if merged and o - (merged[-1][0] + merged[-1][1]) <= PAGE_MERGE:
                    po, pn = merged[-1]
                    merged[-1] = (po, max(pn, o + n - po))
                else:
                    merged.append((o, n))
            self._ranges = merged
            self._starts = [o for o, _n in merged]
        return self._ranges

    def data_extents(self, start: int, end: int) -> list[tuple[int, int]] | None:
        if not self.is_page_blob:
            return None
        out = []
        for o, n in self.page_ranges():
            a, b = max(o, start), min(o + n, end)
            if a < b:
                out.append((a, b - a))
        return out

    # -- identity ------------------------------------------------------------------------

    def guard(self) -> BlobGuard:
        return BlobGuard(self)

    def close(self) -> None:
        self._cache.clear()


def _if_match():
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


class BlobGuard:
    """:class:`~imagestore.formats.base.SourceGuard` for a blob: its ETag (reads are
    conditional on it, too: a blob rewritten meanwhile fails the read)."""

    def __init__(self, src: BlobSource) -> None:
        self.src = src
        self.path = src.path

    def cover(self, offset: int, length: int) -> None:
        pass  # the ETag covers every byte

    def changes(self) -> list[str]:
        with service_errors(self.path):
            props = self.src.client.get_blob_properties()
        out = []
        if props.etag != self.src.etag:
            out.append("its ETag")
        if int(props.size) != self.src.size:
            out.append("size")
        return out

    def check(self, activity: str = "captured") -> None:
        changed = self.changes()
        if changed:
            raise SourceChanged(f"{self.path}: the blob changed while it was being {activity} "
                                f"({', '.join(changed)})")


def open_blob_source(url: str, *, credential: Credential | None = None,
                     field: str = "source.uri", account: str | None = None) -> BlobSource:
    """Open the blob at ``url`` (credentials: SAS in the URL, else the environment, see
    ``imagestore/azblob.py``). ``account``: ``--os-vhd-storage-account``, which must name the
    URL's account."""
    bu = parse_blob_url(url, field)
    if account is not None:
        check_account_of(url, account, "--os-vhd-storage-account")
    cred = resolve_credential(bu.account, credential)
    client = blob_client(bu, cred)
    with service_errors(bu.url):
        props = client.get_blob_properties()
    if int(props.size) == 0:
        raise BadImage(f"{bu.url}: empty blob, not a disk image")
    return BlobSource(bu.url, client, props)
