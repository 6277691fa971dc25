"""Raw disk images: the file's bytes are the disk's bytes.

Allocated extents come from ``SEEK_DATA``/``SEEK_HOLE``; where the filesystem cannot tell
(it reports the whole file as data), callers still get correct bytes, only no holes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from ..errors import InvalidArgument, TooLarge, from_oserror
from ..fsutil import start_writeback
from .base import Guarded, pause_for_tests, pread_full, pwrite_full, sync_close
from .source import allocated_extents, close_any

#: ext4 with 4 KiB blocks stops at 16 TiB per file; other filesystems are checked by ftruncate.
EXT4_MAX_FILE = 16 * 2**40 - 4096


class RawReader(Guarded):
    format = "raw"

    def __init__(self, path: str, fd: int | None = None, *, size: int | None = None) -> None:
        """``size``: the disk's size when the caller knows it (a block device's, by seeking)."""
        self.path = path
        try:
            self.fd = fd if fd is not None else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self.virtual_size = size if size is not None else os.fstat(self.fd).st_size
        except OSError as e:
            raise from_oserror(e, path) from None

    def extents(self) -> Iterator[tuple[int, int]]:
        return allocated_extents(self.fd, self.virtual_size, self.path)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.virtual_size:
            raise InvalidArgument(
                f"{self.path}: read of {length} bytes at {offset} outside the virtual size "
                f"{self.virtual_size}")
        try:
            data = pread_full(self.fd, length, offset, self.path)
        except OSError as e:
            raise from_oserror(e, self.path) from None
        pause_for_tests()
        return data

    def close(self) -> None:
        self.fd = close_any(self.fd)


class RawWriter:
    """Sparse raw output: the file is truncated to the virtual size, data written with pwrite.

    ``write`` may be called from several threads at once for distinct ranges (``concurrent``);
    ``written`` starts writeback of a finished range, so the final fsync has little left to do.
    """

    format = "raw"
    concurrent = True

    def __init__(self, path: str, virtual_size: int) -> None:
        self.path = path
        self.virtual_size = virtual_size
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise from_oserror(e, path) from None
        try:
            os.ftruncate(self.fd, virtual_size)
        except OSError as e:
            os.close(self.fd)
            if e.errno in (errno.EFBIG, errno.EINVAL):
                raise TooLarge(
                    f"{path}: a raw disk of {virtual_size} bytes is larger than this "
                    f"filesystem allows for one file"
                ) from None
            raise from_oserror(e, path) from None

    def write(self, offset: int, data: bytes | memoryview) -> None:
        try:
            pwrite_full(self.fd, data, offset)
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def written(self, offset: int, length: int) -> None:
        """Start writeback of a range that is complete (asynchronous; like sync_file_range
        with SYNC_FILE_RANGE_WRITE): overlaps disk writes with the rest of the work."""
        start_writeback(self.fd, offset, length)

    def clone(self, src_fd: int, src_off: int, offset: int, length: int) -> bool:
        """Share ``length`` bytes of ``src_fd`` at ``src_off`` into the disk at ``offset``
        (FICLONERANGE) instead of copying. False when the filesystem cannot; then write."""
        from ..accel import reflink_range

        try:
            return reflink_range(src_fd, src_off, self.fd, offset, length)
        except OSError:
            return False

    def finish(self) -> None:
        fd, self.fd = self.fd, -1
        sync_close(fd, self.path)

    def abort(self) -> None:
        self.fd = close_any(self.fd)
