"""The format layer's two interfaces: a disk image to read, a disk image to write.

A reader exposes the virtual size, the *allocated extents* taken from the format's own tables
(so that callers never read unallocated space), and the bytes. A writer receives the non-zero
extents of a disk in increasing offset order and produces a file in its format; holes stay holes.

This layer knows nothing about chunks, stores or galleries.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from typing import Protocol

import xxhash

from ..errors import Conflict, IOFailure


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

    def check_unchanged(self, activity: str = "captured") -> None:
        """Raise :class:`SourceChanged` if the file (or a parent in its chain) changed since
        it was opened; call it after reading everything and before publishing the result."""
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


class SourceChanged(Conflict):
    """A source disk changed (size, times, inode, headers) or shrank while it was being read:
    whatever was read is torn and must not be published. A conflict with a concurrent writer,
    not a malformed image (exit 5): retry once nothing writes to the file."""


def pread_full(fd: int, length: int, offset: int, path: str = "") -> bytes:
    """pread that loops until ``length`` bytes are read.

    Readers only read ranges they checked against the file's size when they opened it, so
    reaching the end of the file early means the file shrank meanwhile: :class:`SourceChanged`
    naming ``path``, never zeros. ``fd`` may be a source file (``formats/source.py``)."""
    if not isinstance(fd, int):
        data = fd.pread(length, offset)
        if len(data) != length:
            raise SourceChanged(f"{path}: the blob ends before offset {offset + length} "
                                f"(it changed while it was being read?)")
        return data
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise SourceChanged(
                f"{path}: the file changed while it was being read (it ends at {offset + got}, "
                f"a read of {length} bytes at {offset} was expected to fit)"
            )
        parts.append(more)
        got += len(more)
    return b"".join(parts)


#: test hook: pause the first read of a source until ``<value>.go`` exists, after creating
#: ``<value>.paused`` (tests change the source at that moment, deterministically)
PAUSE_ENV = "IMAGESTORE_TEST_PAUSE_READ"
_pause_lock = threading.Lock()
_pause_done = False


def pause_for_tests() -> None:
    """Honour :data:`PAUSE_ENV` once per process (called by every reader's ``read``)."""
    global _pause_done
    marker = os.environ.get(PAUSE_ENV)
    if not marker or _pause_done:
        return
    with _pause_lock:
        if _pause_done:
            return
        with open(marker + ".paused", "w"):
            pass
        deadline = time.monotonic() + 60
        while not os.path.exists(marker + ".go") and time.monotonic() < deadline:
            time.sleep(0.01)
        _pause_done = True


class SourceGuard:
    """The identity of a source file taken before it is read, to tell at the end whether it
    changed meanwhile: size, modification and change times, inode and device of the open
    file, that the path still names it, and digests of ranges registered with :meth:`cover`
    (``open_disk`` covers the first and last MiB: the VHD footers and dynamic header, the VHDX
    header section and region tables)."""

    def __init__(self, path: str, fd: int, st: os.stat_result, size: int) -> None:
        self.path = path
        self.fd = fd
        self.block = stat.S_ISBLK(st.st_mode)
        self.size = size
        self.stat = self._key(st)
        self.regions: list[tuple[int, int, bytes]] = []

    def _key(self, st: os.stat_result) -> tuple:
        if self.block:  # a device node's own times say nothing about its content
            return (st.st_ino, st.st_dev)
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def _digest(self, offset: int, length: int) -> bytes:
        try:
            return xxhash.xxh3_128_digest(os.pread(self.fd, length, offset))
        except OSError as e:  # reported as a change: the bytes cannot be compared
            return f"unreadable: {e.strerror}".encode()

    def cover(self, offset: int, length: int) -> None:
        """Also compare the bytes at ``offset`` (metadata the reader parsed) at the end."""
        offset, length = max(0, offset), max(0, min(length, self.size - offset))
        if length:
            self.regions.append((offset, length, self._digest(offset, length)))

    def changes(self) -> list[str]:
        """What differs now from when the guard was taken (empty: unchanged)."""
        try:
            st = os.fstat(self.fd)
        except OSError as e:
            return [f"cannot stat it ({e.strerror})"]
        out = []
        if not self.block and st.st_nlink == 0:
            out.append("it was deleted")
        else:
            try:
                now = os.stat(self.path)
                if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
                    out.append("the path now names another file")
            except OSError:
                out.append("the path no longer exists")
        key = self._key(st)
        names = ("inode", "device") if self.block else (
            "size", "modification time", "change time", "inode", "device")
        out += [n for n, a, b in zip(names, key, self.stat, strict=True) if a != b]
        for off, n, digest in self.regions:
            if self._digest(off, n) != digest:
                out.append(f"the bytes at offset {off}")
        return out

    def check(self, activity: str = "captured") -> None:
        """Raise :class:`SourceChanged` when the file changed since the guard was taken."""
        changed = self.changes()
        if changed:
            raise SourceChanged(
                f"{self.path}: the file changed while it was being {activity} "
                f"({', '.join(changed)})"
            )


class Guarded:
    """Mixin of the readers: :meth:`check_unchanged` over the file and its parent chain.
    ``open_disk`` sets ``guard`` before the reader reads anything."""

    guard: SourceGuard | None = None

    def check_unchanged(self, activity: str = "captured") -> None:
        """Raise :class:`SourceChanged` if the file or a parent in its chain changed since
        it was opened; call it after reading everything and before publishing the result."""
        if self.guard is not None:
            self.guard.check(activity)
        parent = getattr(self, "parent", None)
        if parent is not None:
            parent.check_unchanged(activity)


def pwrite_full(fd: int, data: bytes | memoryview, offset: int) -> None:
    """pwrite that loops until all of ``data`` is written."""
    mv = memoryview(data)
    while mv:
        n = os.pwrite(fd, mv, offset)
        mv = mv[n:]
        offset += n


def sync_close(fd: int, path: str) -> None:
    """fsync a finished disk file, then close it (also when the fsync fails: IOFailure
    naming ``path``)."""
    try:
        os.fsync(fd)
    except OSError as e:
        raise IOFailure(f"{path}: fsync failed: {e.strerror}") from None
    finally:
        os.close(fd)
