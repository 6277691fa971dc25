"""The page cache: cold runs drop their source files from it, warm runs read them in first."""

from __future__ import annotations

import os
from collections.abc import Iterator

from .tools import files

MiB = 1 << 20


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of a file's allocated extents (SEEK_DATA/SEEK_HOLE)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        pos = end


def allocated_bytes(path: str) -> int:
    """Bytes a file's allocated extents cover (SEEK_DATA/SEEK_HOLE)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(n for _o, n in data_extents(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def drop_cache(*paths: str) -> None:
    """Write back and drop ``paths`` (files, or every file under a directory) from the page
    cache, so that the next read comes from the disk."""
    for top in paths:
        for p in files(top):
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm(path: str) -> None:
    """Read every allocated byte of ``path`` once so it sits in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, n in data_extents(fd, os.fstat(fd).st_size):
            end = off + n
            while off < end:
                b = os.pread(fd, min(8 * MiB, end - off), off)
                if not b:
                    break
                off += len(b)
    finally:
        os.close(fd)


def settle(cold: bool, *paths: str) -> None:
    """Before a timed run: the last run's writeback out of the way (``sync``), then ``paths``
    dropped from the cache (cold) or read into it (warm)."""
    os.sync()
    if cold:
        drop_cache(*paths)
    else:
        for p in paths:
            for q in files(p):
                warm(q)
