"""Source files: what the disk readers read from, a local file descriptor or a read-only
random-access object (a blob in Azure Blob Storage, ``formats/blobsource.py``).

The readers (raw, VHD, VHDX) were written against a file descriptor; they take either. A
:class:`SourceFile` offers what they use of one:

* ``pread(length, offset)`` -- the bytes there (short only at the end);
* ``data_extents(start, end)`` -- the allocated ranges, as ``SEEK_DATA``/``SEEK_HOLE`` give
  them for a sparse file (a page blob's page ranges), or None when unknown (all data);
* ``close()``; and the identity its :class:`SourceGuard`-like ``guard()`` checks at the end.

The helpers below dispatch on the kind: an ``int`` is a descriptor.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Protocol

from ..errors import from_oserror


class SourceFile(Protocol):
    path: str
    size: int

    def pread(self, length: int, offset: int) -> bytes: ...

    def data_extents(self, start: int, end: int) -> list[tuple[int, int]] | None: ...

    def guard(self): ...

    def close(self) -> None: ...


def is_fd(src) -> bool:
    return isinstance(src, int)


def pread_any(src, length: int, offset: int) -> bytes:
    """One ``pread`` of a descriptor or a source file."""
    if is_fd(src):
        return os.pread(src, length, offset)
    return src.pread(length, offset)


def close_any(src) -> int:
    """Close a descriptor (if >= 0) or a source file; returns -1 for the reader to keep."""
    if is_fd(src):
        if src >= 0:
            os.close(src)
    elif src is not None:
        src.close()
    return -1


def source_extents(src, start: int, end: int) -> list[tuple[int, int]] | None:
    """Allocated ranges of a source file in [start, end) (None: it cannot tell, all data).
    Descriptors are handled by the readers themselves (``SEEK_DATA``/``SEEK_HOLE``)."""
    return src.data_extents(start, end)


def allocated_extents(src, size: int, path: str) -> Iterator[tuple[int, int]]:
    """Allocated ranges of the first ``size`` bytes of ``src``: a descriptor's from
    ``SEEK_DATA``/``SEEK_HOLE`` (all of it where the filesystem cannot tell), a source file's
    from :func:`source_extents`. For readers whose disk bytes are the file's (raw, fixed VHD)."""
    if not is_fd(src):  # a source file (a page blob: its written pages)
        got = source_extents(src, 0, size)
        yield from ([(0, size)] if got is None else got)
        return
    pos = 0
    while pos < size:
        try:
            start = os.lseek(src, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no more data after pos
                return
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # cannot tell: all data
                yield (pos, size - pos)
                return
            raise from_oserror(e, path) from None
        if start >= size:
            return
        try:
            end = min(os.lseek(src, start, os.SEEK_HOLE), size)
        except OSError as e:
            raise from_oserror(e, path) from None
        yield (start, end - start)
        pos = end
