"""Pure-Python (numpy) twin of the native module ``imagestore.accel._native``.

Same functions, same signatures, same results and the same exception types for bad
arguments as ``native/_native.c``; ``tests/test_accel.py`` runs every test against both.
Offsets and lengths are integers (``__index__``): a negative one raises ValueError, one that
does not fit a signed 64-bit file offset (or whose offset + length does not) raises
OverflowError.
"""

from __future__ import annotations

import errno
import fcntl
import operator
import os
import struct
import threading
from collections.abc import Iterable, Sequence

import numpy as np

_SCAN_SLICE = 256 << 10
_I64_MAX = (1 << 63) - 1
_I64_MIN = -(1 << 63)
_INT_MAX = (1 << 31) - 1
#: largest single copy_file_range / pread request, as in the C module
_MAX_IO_CALL = 1 << 30
_BOUNCE_SIZE = 1 << 20
_PIECE_SIZE = 8 << 20
_MAX_THREADS = 1024

#: _IOW(0x94, 13, struct file_clone_range) from <linux/fs.h>
FICLONERANGE = 0x4020940D
#: struct file_clone_range { __s64 src_fd; __u64 src_offset; __u64 src_length; __u64 dest_offset; }
_CLONE_RANGE = struct.Struct("=qQQQ")

_NO_CFR = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY}


# -- argument checks (mirroring get_nonneg_i64 / get_fd / check_end in the C file) ---------


def _i64(value: object, name: str) -> int:
    v = operator.index(value)  # type: ignore[arg-type]
    if v < _I64_MIN or v > _I64_MAX:
        raise OverflowError(f"{name} does not fit in a 64-bit file offset")
    if v < 0:
        raise ValueError(f"{name} must not be negative (got {v})")
    return v


def _fd(value: object, name: str) -> int:
    v = _i64(value, name)
    if v > _INT_MAX:
        raise OverflowError(f"{name} is not a valid file descriptor")
    return v


def _check_end(off: int, length: int, name: str) -> None:
    if length > _I64_MAX - off:
        raise OverflowError(f"{name}: offset + length does not fit in a 64-bit file offset")


def _bytes_view(buf: object) -> memoryview:
    """The buffer as flat unsigned bytes, refusing what PyBUF_SIMPLE refuses."""
    mv = memoryview(buf)  # type: ignore[arg-type]
    if not mv.c_contiguous:
        raise BufferError("buffer is not C-contiguous")
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


def _is_sequence(item: object) -> bool:
    """PySequence_Check: indexable and not a dict; text and bytes are not extents."""
    return (
        hasattr(type(item), "__getitem__")
        and not isinstance(item, dict | str | bytes | bytearray)
    )


def _items(
    plan: Iterable[Sequence[int]], what: str, names: tuple[str, ...], ends: tuple[tuple[int, str], ...]
) -> list[tuple[int, ...]]:
    """Unpack and check every item of ``plan`` in order, as the C module's loop does: each a
    sequence of len(names) integers; then offset + length checked for each (offset index,
    name) of ``ends`` (the length is the last value)."""
    k = len(names)
    out = []
    for item in list(plan):
        if not _is_sequence(item):
            raise TypeError(
                f"{what} item must be a tuple of {k} integers, not {type(item).__name__}"
            )
        if len(item) != k:  # type: ignore[arg-type]
            raise TypeError(f"{what} item must be a tuple of {k} integers, got {len(item)} items")  # type: ignore[arg-type]
        vals = tuple(_i64(item[i], names[i]) for i in range(k))  # type: ignore[index]
        for i, name in ends:
            _check_end(vals[i], vals[-1], name)
        out.append(vals)
    return out


# -- zero scan --------------------------------------------------------------------------------


def is_zero(buf: bytes | bytearray | memoryview, /) -> bool:
    """True when every byte of ``buf`` is zero (True for an empty buffer)."""
    arr = np.frombuffer(_bytes_view(buf), dtype=np.uint8)
    # np.count_nonzero is a SIMD loop; slices of 256 KiB stop early on non-zero data.
    for pos in range(0, len(arr), _SCAN_SLICE):
        if np.count_nonzero(arr[pos : pos + _SCAN_SLICE]):
            return False
    return True


def nonzero_runs(buf: bytes | bytearray | memoryview, block: int = 4096) -> list[tuple[int, int]]:
    """Return [(start, end)] byte ranges of ``buf`` covering every non-zero ``block``-sized
    block (the last block may be short), merged where adjacent. Zero blocks are left out."""
    mv = _bytes_view(buf)
    block = _i64(block, "block")
    if block == 0:
        raise ValueError("block must be positive")
    n = len(mv)
    if n == 0:
        return []
    full = n // block
    runs: list[tuple[int, int]] = []
    if full:
        arr = np.frombuffer(mv, dtype=np.uint8, count=full * block)
        if block % 8 == 0:
            nz = arr.view(np.uint64).reshape(full, block // 8).any(axis=1)
        else:
            nz = arr.reshape(full, block).any(axis=1)
        if nz.all():
            runs = [(0, full * block)]
        elif nz.any():
            d = np.diff(np.concatenate(([False], nz, [False])).astype(np.int8))
            starts = np.flatnonzero(d == 1)
            ends = np.flatnonzero(d == -1)
            runs = [(int(s) * block, int(e) * block) for s, e in zip(starts, ends, strict=True)]
    if full * block < n and not is_zero(mv[full * block :]):
        if runs and runs[-1][1] == full * block:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((full * block, n))
    return runs


# -- extents ----------------------------------------------------------------------------------


def coalesce(extents: Iterable[tuple[int, int]], /) -> list[tuple[int, int]]:
    """Merge (offset, length) extents, in any order, into sorted, non-overlapping extents;
    overlapping and touching extents merge, zero-length ones are dropped."""
    items = _items(extents, "coalesce", ("offset", "length"), ((0, "coalesce"),))
    out: list[tuple[int, int]] = []
    for off, n in sorted(i for i in items if i[1] > 0):
        if out and off <= out[-1][0] + out[-1][1]:
            last_off, last_n = out[-1]
            out[-1] = (last_off, max(last_off + last_n, off + n) - last_off)
        else:
            out.append((off, n))
    return out


class _CopyJob:
    """The C module's copy_job: a cursor over the plan shared by the workers."""

    def __init__(self, src_fd: int, dst_fd: int, plan: list[tuple[int, ...]], split: bool):
        self.src_fd, self.dst_fd, self.plan, self.split = src_fd, dst_fd, plan, split
        self.lock = threading.Lock()
        self.next_i = 0
        self.next_off = 0
        self.err: BaseException | None = None
        self.copied = 0
        self.use_cfr = hasattr(os, "copy_file_range")

    def take(self) -> tuple[int, int, int] | None:
        with self.lock:
            while self.err is None and self.next_i < len(self.plan):
                src, dst, length = self.plan[self.next_i]
                rest = length - self.next_off
                if rest <= 0:
                    self.next_i += 1
                    self.next_off = 0
                    continue
                take = min(rest, _PIECE_SIZE) if self.split else rest
                piece = (src + self.next_off, dst + self.next_off, take)
                self.next_off += take
                return piece
            return None

    def copy_piece(self, src: int, dst: int, length: int) -> int:
        done = 0
        while done < length and self.use_cfr:
            want = min(length - done, _MAX_IO_CALL)
            try:
                r = os.copy_file_range(self.src_fd, self.dst_fd, want, src + done, dst + done)
            except OSError as e:
                if e.errno in _NO_CFR:
                    self.use_cfr = False
                    break
                raise
            if r == 0:
                return done  # end of the source file
            done += r
        while done < length:
            data = os.pread(self.src_fd, min(length - done, _BOUNCE_SIZE), src + done)
            if not data:
                return done  # end of the source file
            mv = memoryview(data)
            w = 0
            while w < len(mv):
                k = os.pwrite(self.dst_fd, mv[w:], dst + done + w)
                if k == 0:
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                w += k
            done += len(data)
        return done

    def worker(self) -> None:
        mine = 0
        while (piece := self.take()) is not None:
            try:
                mine += self.copy_piece(*piece)
            except BaseException as e:  # noqa: BLE001 -- handed to the calling thread
                with self.lock:
                    if self.err is None:
                        self.err = e
                break
        with self.lock:
            self.copied += mine


def copy_extents(src_fd: int, dst_fd: int, plan: Iterable[tuple[int, int, int]],
                 threads: int = 1) -> int:
    """Copy every (src_offset, dst_offset, length) extent of ``plan`` from ``src_fd`` to
    ``dst_fd`` with copy_file_range (pread/pwrite when the kernel or filesystem can't), in
    ``threads`` worker threads. Returns the bytes copied: less than the plan's total only when
    an extent runs past the end of the source file. Errors raise OSError with the errno of
    the first failure."""
    src_fd = _fd(src_fd, "src_fd")
    dst_fd = _fd(dst_fd, "dst_fd")
    items = _items(
        plan,
        "copy_extents plan",
        ("src_offset", "dst_offset", "length"),
        ((0, "copy_extents source"), (1, "copy_extents destination")),
    )
    threads = _i64(threads, "threads")
    if not 1 <= threads <= _MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {_MAX_THREADS}")
    job = _CopyJob(src_fd, dst_fd, items, threads > 1)
    workers = [threading.Thread(target=job.worker, daemon=True) for _ in range(threads - 1)]
    for t in workers:
        t.start()
    job.worker()
    for t in workers:
        t.join()
    if isinstance(job.err, OSError):  # as the C module: errno and message, no file names
        raise OSError(job.err.errno, job.err.strerror) from None
    if job.err is not None:
        raise job.err
    return job.copied


def reflink_range(src_fd: int, src_off: int, dst_fd: int, dst_off: int, length: int) -> bool:
    """Share ``length`` bytes of ``src_fd`` at ``src_off`` into ``dst_fd`` at ``dst_off``
    (FICLONERANGE). False when the filesystem can't (EOPNOTSUPP, EXDEV, EINVAL -- e.g.
    unaligned offsets -- or ENOTTY); OSError for any other error. ``length`` must be
    positive (the kernel reads 0 as 'to the end of the source')."""
    src_fd = _fd(src_fd, "src_fd")
    src_off = _i64(src_off, "src_off")
    dst_fd = _fd(dst_fd, "dst_fd")
    dst_off = _i64(dst_off, "dst_off")
    length = _i64(length, "length")
    if length == 0:
        raise ValueError("length must be positive")
    _check_end(src_off, length, "reflink_range source")
    _check_end(dst_off, length, "reflink_range destination")
    arg = _CLONE_RANGE.pack(src_fd, src_off, length, dst_off)
    while True:
        try:
            fcntl.ioctl(dst_fd, FICLONERANGE, arg)
            return True
        except InterruptedError:
            continue
        except OSError as e:
            if e.errno in _NO_REFLINK:
                return False
            raise
