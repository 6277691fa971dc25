"""Small filesystem helpers for crash-safe publishing (write new, fsync, rename, fsync dir)
and for starting writeback early."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable


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


def pwrite_all(fd: int, parts: list, offset: int) -> None:
    """Write ``parts`` (bytes-like, in order) at ``offset`` completely. A write to a regular
    file may be short when the disk fills up part-way (the kernel reports ENOSPC only when
    it wrote nothing): the rest is written in a loop, whose next write raises the error."""
    n = os.pwritev(fd, parts, offset) if len(parts) > 1 else os.pwrite(fd, parts[0], offset)
    for p in parts:
        mv = memoryview(p)
        if n >= len(mv):
            n -= len(mv)
            offset += len(mv)
            continue
        mv, offset, n = mv[n:], offset + n, 0
        while mv:
            k = os.pwrite(fd, mv, offset)
            mv, offset = mv[k:], offset + k


def write_file(path: str, data: bytes, *, mode: int = 0o644) -> None:
    """Write a new file (``O_EXCL``) without fsync: for temp trees fsynced as a whole."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        mv = memoryview(data)
        while mv:
            mv = mv[os.write(fd, mv):]
    finally:
        os.close(fd)


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


#: ``posix_fadvise(DONTNEED)`` on finished ranges of a file being written (pack, raw disk,
#: VHDX) to start their writeback early. Off since issue 17: on these VMs memory handed back
#: by dropped pages is re-faulted from the host by the next page-cache allocation, and in
#: alternated A/B pairs the hint cost 5-12 % more CPU (capture, disk creation, warm and cold)
#: for no wall-time gain (benchmarks/README.md, "Early writeback"). ``IMAGESTORE_EARLY_WRITEBACK=1``
#: turns it back on (for that measurement).
EARLY_WRITEBACK = os.environ.get("IMAGESTORE_EARLY_WRITEBACK", "") not in ("", "0")


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a finished range of a file to the disk now, without waiting (what
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` does; ``POSIX_FADV_DONTNEED`` starts writeback
    of dirty pages and drops only clean ones), when :data:`EARLY_WRITEBACK` is on; else
    nothing (the kernel's own writeback and the final fsync do it). Only a hint: errors are
    ignored."""
    if not EARLY_WRITEBACK:
        return
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def fsync_tree(path: str) -> None:
    """fsync every file and directory under ``path``, children before their directory."""
    for dirpath, _dirs, files in os.walk(path, topdown=False):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


#: temp directories a creation builds before renaming them into place are named
#: ``.<name>.imagestore-new-<host>-<pid>-<random>`` (host and pid: whose they are)
BUILD_TAG = ".imagestore-new-"


def _build_name(base: str) -> str:
    host = os.uname().nodename.replace("-", "_") or "host"
    return f".{base}{BUILD_TAG}{host}-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) exists and is not a zombie (a killed process its
    parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def remove_stale_builds(parent: str, base: str | None = None) -> int:
    """Remove temp directories and temp files of creations of ``parent/base`` (of anything in
    ``parent`` when ``base`` is None) whose process died on this host (a kill while creating).
    Returns how many were removed."""
    import shutil

    host = os.uname().nodename.replace("-", "_") or "host"
    tag = f"{BUILD_TAG}{host}-"
    n = 0
    try:
        names = os.listdir(parent)
    except OSError:
        return 0
    for name in names:
        if base is not None:
            if not name.startswith(f".{base}{tag}"):
                continue
        elif not name.startswith(".") or tag not in name:
            continue
        pid = name.rpartition(tag)[2].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            full = os.path.join(parent, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                try:
                    os.unlink(full)
                except FileNotFoundError:
                    continue
            n += 1
    return n


def temp_beside(target: str) -> str:
    """The path of a new temp file or directory for creating ``target``:
    ``.<name>.imagestore-new-<host>-<pid>-<random>`` beside it (what
    :func:`remove_stale_builds` removes once its process is gone)."""
    parent, base = os.path.split(os.path.abspath(target))
    return os.path.join(parent, _build_name(base))


def build_beside(target: str, build: Callable[[str], None]) -> bool:
    """Create the directory ``target`` atomically: ``build(tmp)`` fills a temp directory beside
    it, everything is fsynced, and the temp directory is renamed to ``target``. A kill at any
    moment leaves no ``target`` or a complete one (and a temp directory the next creation
    removes).

    Returns True when this call published ``target``; False when another process created
    ``target`` meanwhile (this call's temp directory is removed, the other one stands).
    """
    import errno
    import shutil

    parent, base = os.path.split(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    remove_stale_builds(parent, base)
    tmp = os.path.join(parent, _build_name(base))
    os.mkdir(tmp, 0o755)
    try:
        build(tmp)
        fsync_tree(tmp)
        try:
            os.rename(tmp, target)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                return False
            raise
        tmp = ""
        fsync_dir(parent)
        return True
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
