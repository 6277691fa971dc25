"""Write a fixed VHD straight into a page blob (an Azure-ready upload).

``PageBlobVhdWriter(url, virtual_size)`` is a :class:`~imagestore.formats.base.DiskWriter`:

1. the page blob is created with the disk's size rounded up to a whole MiB plus the 512-byte
   footer, only if no blob of that name exists (``If-None-Match: *``: never overwrites);
2. ``write`` receives the disk's non-zero runs in increasing order; they are gathered into
   512-byte-aligned pages and uploaded with *Put Page* (at most 4 MiB each, several in
   flight). Pages never written stay unwritten: a sparse page blob costs what the disk holds;
3. ``finish`` waits for every page, then writes the VHD footer *last*: until then the blob is
   not a valid VHD (the write-then-publish order of a file, where a blob cannot be renamed);
4. ``abort`` deletes the blob (a failed or interrupted disk creation leaves none behind).
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from ..azblob import blob_client, parse_blob_url, resolve_credential, service_errors
from ..errors import Conflict, InvalidArgument

SECTOR = 512
MAX_PUT = 4 << 20
THREADS = 4


class PageBlobVhdWriter:
    format = "vhd-fixed"
    concurrent = False

    def __init__(self, url: str, virtual_size: int) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError

        from .vhd import FIXED_ALIGN, VHD_MAX_SIZE, too_large

        bu = parse_blob_url(url, "--path")
        self.path = bu.url
        if virtual_size < 0:
            raise InvalidArgument(f"{self.path}: negative virtual size {virtual_size}")
        self.virtual_size = -(-virtual_size // FIXED_ALIGN) * FIXED_ALIGN
        if self.virtual_size > VHD_MAX_SIZE:
            raise too_large(self.path, virtual_size)
        self.client = blob_client(bu, resolve_credential(bu.account))
        with service_errors(self.path):
            try:
                self.client.create_page_blob(size=self.virtual_size + SECTOR,
                                             match_condition=MatchConditions.IfMissing)
            except ResourceExistsError:
                raise Conflict(f"{self.path}: blob exists") from None
        self.pool = ThreadPoolExecutor(max_workers=THREADS)
        self.pending: list[Future] = []
        self.cur_off = -1
        self.cur = bytearray()
        self.pages_put = 0
        self.bytes_put = 0
        self._done = False

    def write(self, offset: int, data: bytes | memoryview) -> None:
        n = len(data)
        if offset < 0 or offset + n > self.virtual_size:
            raise InvalidArgument(f"{self.path}: write of {n} bytes at {offset} outside the "
                                  f"virtual size {self.virtual_size}")
        if not n:
            return
        if self.cur_off >= 0:
            end = self.cur_off + len(self.cur)
            if offset <= -(-end // SECTOR) * SECTOR:  # same or next sector: extend
                self.cur += bytes(offset - end)
                self.cur += data
                self._spill()
                return
            self._flush()
        start = offset - offset % SECTOR
        self.cur_off = start
        self.cur = bytearray(offset - start)
        self.cur += data
        self._spill()

    def _spill(self) -> None:
        """Upload whole MAX_PUT pieces of the run being gathered."""
        while len(self.cur) >= MAX_PUT:
            self._put(self.cur_off, bytes(self.cur[:MAX_PUT]))
            self.cur_off += MAX_PUT
            del self.cur[:MAX_PUT]
        if not self.cur:
            self.cur_off = -1

    def _flush(self) -> None:
        if self.cur_off < 0 or not self.cur:
            self.cur_off = -1
            return
        pad = -len(self.cur) % SECTOR
        self.cur += bytes(pad)
        self._put(self.cur_off, bytes(self.cur))
        self.cur_off, self.cur = -1, bytearray()

    def _put(self, offset: int, data: bytes) -> None:
        while len(self.pending) >= THREADS * 2:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._upload, offset, data))

    def _upload(self, offset: int, data: bytes) -> None:
        with service_errors(self.path):
            self.client.upload_page(data, offset=offset, length=len(data))
        self.pages_put += 1
        self.bytes_put += len(data)

    def finish(self) -> None:
        from .vhd import DISK_FIXED, NO_DATA_OFFSET, build_footer

        self._flush()
        for f in self.pending:
            f.result()
        self.pending = []
        footer = build_footer(self.virtual_size, DISK_FIXED, NO_DATA_OFFSET, uuid.uuid4().bytes)
        self._upload(self.virtual_size, footer)  # last: now the blob is a VHD
        self.pool.shutdown()
        self._done = True

    def abort(self) -> None:
        for f in self.pending:
            f.cancel()
        self.pool.shutdown(wait=True)
        if not self._done:
            try:
                self.client.delete_blob()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
