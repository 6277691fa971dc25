"""Small filesystem helpers for crash-safe publishing (write new, fsync, rename, fsync dir)
and for starting writeback early."""

from __future__ import annotations

import os
import secrets


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, mode: int = 0o644) -> None:
    """Publish ``data`` at ``path`` atomically: temp file, fsync, rename, fsync directory.

    A crash leaves either the old file (or none) or the complete new one, never a torn file.
    """
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".tmp-{secrets.token_hex(8)}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        mv = memoryview(data)
        while mv:
            n = os.write(fd, mv)
            mv = mv[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(d)


def remove_stale_temps(directory: str) -> int:
    """Remove ``.tmp-*`` files left by a crash. Returns how many were removed."""
    n = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(".tmp-"):
            try:
                os.unlink(os.path.join(directory, name))
                n += 1
            except FileNotFoundError:
                pass
    return n


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a finished range of a file to the disk now, without waiting (what
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` does; ``POSIX_FADV_DONTNEED`` starts writeback
    of dirty pages and drops only clean ones). A later fsync then has little left to wait for.
    Only a hint: errors are ignored."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
