"""The format layer's two interfaces: a disk image to read, a disk image to write.

A reader exposes the virtual size, the *allocated extents* taken from the format's own tables
(so that callers never read unallocated space), and the bytes. A writer receives the non-zero
extents of a disk in increasing offset order and produces a file in its format; holes stay holes.

This layer knows nothing about chunks, stores or galleries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol


class DiskReader(Protocol):
    """A readable virtual disk."""

    path: str
    #: format name, e.g. "raw", "vhd-fixed", "vhd-dynamic", "vhd-differencing",
    #: "vhdx-fixed", "vhdx-dynamic", "vhdx-differencing"
    format: str
    virtual_size: int

    def extents(self) -> Iterator[tuple[int, int]]:
        """Yield (offset, length) of allocated ranges, sorted, non-overlapping.

        Everything outside these ranges reads as zeros. Ranges may contain zeros too.
        For differencing disks this is the union over the whole parent chain.
        """
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Return ``length`` bytes at ``offset`` (zeros where unallocated).

        ``offset + length`` must not exceed ``virtual_size``.
        """
        ...

    def close(self) -> None: ...


class DiskWriter(Protocol):
    """A disk image being written. Created by a ``create_writer`` function with the
    output path and the virtual size; checks limits before writing any byte."""

    path: str
    virtual_size: int

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Write non-zero ``data`` at ``offset``. Calls come in increasing offset order and
        never overlap; ranges never written read back as zeros."""
        ...

    def finish(self) -> None:
        """Write metadata (tables, footers), fsync, and close."""
        ...

    def abort(self) -> None:
        """Close without finishing; the caller removes the file."""
        ...


def coalesce(extents: Iterator[tuple[int, int]] | list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge sorted or unsorted (offset, length) ranges into sorted, non-overlapping ranges."""
    items = sorted((o, n) for o, n in extents if n > 0)
    out: list[tuple[int, int]] = []
    for off, n in items:
        if out and off <= out[-1][0] + out[-1][1]:
            last_off, last_n = out[-1]
            out[-1] = (last_off, max(last_off + last_n, off + n) - last_off)
        else:
            out.append((off, n))
    return out


def pread_full(fd: int, length: int, offset: int) -> bytes:
    """pread that loops until ``length`` bytes are read; short data at EOF is zero-filled."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            parts.append(bytes(length - got))
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_full(fd: int, data: bytes | memoryview, offset: int) -> None:
    """pwrite that loops until all of ``data`` is written."""
    mv = memoryview(data)
    while mv:
        n = os.pwrite(fd, mv, offset)
        mv = mv[n:]
        offset += n
