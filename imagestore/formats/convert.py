"""Format conversion: one disk image to another, reader -> writer, without the store.

``convert(src, dst, fmt)`` is what ``qemu-img convert -O FMT SRC DST`` does, for the formats
this package reads and writes: the source's format is detected from its content (never the
file name), only its *allocated* extents are read (the format's own tables, or
``SEEK_DATA``/``SEEK_HOLE`` for raw), and within them only the non-zero 4 KiB runs are written,
so holes and zero blocks stay holes in the output. A differencing source is flattened: the
output is the guest-visible disk of the whole chain, with no parent.

Reads run in worker threads, 1 MiB at a time within a bounded window; the calling thread
hands the data to the writer in disk order (every writer accepts that, the VHD writers need
it). The output is written to a hidden temp file beside ``dst`` and renamed into place only
when complete and fsynced (:func:`~imagestore.formats.new_disk_file`): a failed or killed
conversion leaves no partial disk, and an existing ``dst`` is replaced only when asked.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..accel import nonzero_runs
from ..errors import Conflict, InvalidArgument
from . import WRITE_FORMATS, new_disk_file, open_disk

#: bytes read per worker task
PIECE = 1 << 20

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ConvertResult:
    source: str
    source_format: str
    path: str
    format: str
    virtual_size: int  # of the output (vhd-fixed rounds up to a whole MiB)
    read_bytes: int  # allocated bytes of the source that were read
    written_bytes: int  # non-zero bytes handed to the writer

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "sourceFormat": self.source_format,
            "path": self.path,
            "format": self.format,
            "virtualSize": self.virtual_size,
            "readBytes": self.read_bytes,
            "writtenBytes": self.written_bytes,
        }


def _pieces(extents: list[tuple[int, int]], size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) pieces of at most PIECE bytes, aligned to PIECE, inside the disk."""
    for off, n in extents:
        end = min(off + n, size)
        while off < end:
            k = min(PIECE - off % PIECE, end - off)
            yield off, k
            off += k


def convert(
    src: str,
    dst: str,
    fmt: str = "raw",
    *,
    overwrite: bool = False,
    threads: int = 2,
    allow_parent_dir: str | None = None,
    progress: Progress | None = None,
) -> ConvertResult:
    """Write the disk image ``src`` (raw, VHD, VHDX; detected from content) to ``dst`` in
    format ``fmt`` (one of :data:`WRITE_FORMATS`).

    ``overwrite`` replaces an existing ``dst`` (else :class:`Conflict`); ``dst`` may never be
    ``src`` itself. ``allow_parent_dir`` as for :func:`open_disk`. ``progress(done, total)``
    is called with source bytes read out of the allocated bytes. Errors: ``InvalidArgument``
    (unknown format, ``dst`` a directory or in a missing directory, ``dst`` is ``src``),
    ``BadImage``/``NotFound`` for the source, ``TooLarge`` when the disk does not fit ``fmt``,
    ``IOFailure`` from the file system.
    """
    fmt = fmt.lower()
    if fmt not in WRITE_FORMATS:
        raise InvalidArgument(f"format: unknown format '{fmt}' (use {', '.join(WRITE_FORMATS)})",
                              target="format")
    if os.path.isdir(dst):
        raise InvalidArgument(f"{dst}: is a directory, not a disk image file", target="destination")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise InvalidArgument(f"{dst}: directory {parent} does not exist", target="destination")
    if os.path.lexists(dst):
        if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
            raise InvalidArgument(f"{dst}: is the source image itself", target="destination")
        if not overwrite:
            raise Conflict(f"{dst}: file exists", target="destination")
    reader = open_disk(src, allow_parent_dir=allow_parent_dir)
    try:
        size = reader.virtual_size
        extents = list(reader.extents())
        total = sum(min(o + n, size) - o for o, n in extents if o < size)
        done = written = 0

        def work(item: tuple[int, int]) -> tuple[int, bytes, list[tuple[int, int]]]:
            off, n = item
            data = reader.read(off, n)
            return off, data, nonzero_runs(data)

        with new_disk_file(dst, size, fmt) as writer, \
                ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            it = _pieces(extents, size)
            limit = max(2, threads * 4)
            window: deque = deque()

            def fill() -> None:
                while len(window) < limit:
                    item = next(it, None)
                    if item is None:
                        return
                    window.append(pool.submit(work, item))

            try:
                fill()
                while window:
                    off, data, runs = window.popleft().result()
                    fill()
                    mv = memoryview(data)
                    for a, b in runs:
                        writer.write(off + a, mv[a:b])
                        written += b - a
                    done += len(data)
                    if progress is not None:
                        progress(done, total)
                # a source that changed meanwhile gave torn content: no disk appears
                reader.check_unchanged("converted")
            finally:
                for fut in window:  # an error: do not leave reads running
                    fut.cancel()
        return ConvertResult(src, reader.format, dst, fmt, writer.virtual_size, done, written)
    finally:
        reader.close()
