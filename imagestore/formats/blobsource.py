"""A blob in Azure Blob Storage as a read-only source file for the disk readers.

``open_blob_source(url)`` returns a :class:`BlobSource`: ``pread`` is a ranged *Get Blob*;
for a **page blob** ``data_extents`` are its page ranges (*Get Page Ranges*), so the raw and
fixed-VHD readers read only the written pages and a dynamic VHD's own block table needs only
its metadata and blocks -- a sparse 1 TiB page blob with 2 GiB written costs 2 GiB of reads.
A block blob has no page map: all data, like a file on a filesystem without ``SEEK_DATA``.

Reads are served from aligned 1 MiB windows, each fetched once however many threads ask (a
page blob's window: only its written ranges, zeros between, so unwritten pages cost no
request); a read of disk data starts fetching the next windows meanwhile (readahead, 4
threads), so a capture streams instead of paying one round trip per chunk. The VHD and VHDX
readers' many small table and bitmap reads come from the same windows. ``stats`` counts the
requests and bytes, for tests and benchmarks.

The guard of a blob source is its ETag: a blob written while it is captured changes its ETag,
and the capture is refused (:class:`~imagestore.formats.base.SourceChanged`) instead of
publishing torn content.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
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

#: reads are served from aligned windows of this size, each fetched once (its written ranges)
WINDOW = 1 << 20
#: windows kept
CACHED_WINDOWS = 32
#: a read of disk data (at least DIRECT bytes) starts fetching the next READAHEAD windows
DIRECT = 64 << 10
READAHEAD = 6
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
        self._cache: dict[int, Future] = {}
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
        end = offset + length
        first, last = offset // WINDOW, (end - 1) // WINDOW
        if length >= DIRECT:  # disk data, read in order: fetch the next windows meanwhile
            for w in range(last + 1, min(last + 1 + READAHEAD, -(-self.size // WINDOW))):
                self._window(w, wait=False)
        out = bytearray(length)
        for w in range(first, last + 1):
            buf = self._window(w)
            lo = w * WINDOW
            a, b = max(offset, lo), min(end, lo + WINDOW)
            out[a - offset: b - offset] = buf[a - lo: b - lo]
        return bytes(out)

    def _window(self, w: int, *, wait: bool = True) -> bytes | None:
        """Window ``w`` (WINDOW bytes at ``w * WINDOW``), fetched once however many threads
        ask for it: only its written ranges for a page blob, zeros between."""
        with self._lock:
            fut = self._cache.get(w)
            if fut is None:
                fut = Future()
                self._cache[w] = fut
                while len(self._cache) > CACHED_WINDOWS:
                    self._cache.pop(next(iter(self._cache)))
                mine = True
            else:
                self._cache[w] = self._cache.pop(w)  # most recently used last
                mine = False
        if mine:
            if wait:
                self._fill(w, fut)
            else:
                _pool().submit(self._fill, w, fut)
        return fut.result() if wait else None

    def _fill(self, w: int, fut: Future) -> None:
        lo, hi = w * WINDOW, min((w + 1) * WINDOW, self.size)
        try:
            segs = self.data_extents(lo, hi)
            if segs is None:
                fut.set_result(self._get(lo, hi - lo))
                return
            buf = bytearray(hi - lo)
            for o, n in segs:
                buf[o - lo: o - lo + n] = self._get(o, n)
            fut.set_result(bytes(buf))
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the window
            with self._lock:
                if self._cache.get(w) is fut:
                    del self._cache[w]
            fut.set_exception(e)

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


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The readahead threads (shared by every source of the process)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-readahead")
        return _POOL


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
