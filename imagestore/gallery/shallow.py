"""Shallow replication: an image version that references its source file instead of copying it.

``--replication-mode Shallow`` skips the capture: the version records, per disk, the source
path and a **fingerprint** of the file (size, mtime_ns, inode, device, and xxh3-128 of its first
and last MiB, which hold the VHD/VHDX headers, footers and region tables). Nothing is read
beyond those 2 MiB, so a 32 TiB sparse VHDX is published in milliseconds and the store does not
grow.

On every use (``disk create``) the fingerprint is checked before and after the copy: a missing
file is :class:`NotFound`, a changed one :class:`IntegrityError`, both naming the file; a disk
written from a file that changed meanwhile is discarded. The disk is streamed reader -> writer
over the source's allocated extents, non-zero 4 KiB runs only (holes stay holes).

**Concurrency limit.** The spec says a shallow version "can't be used for deploying large
numbers of VMs concurrently": disk creation from one shallow version takes one of
``IMAGESTORE_SHALLOW_MAX_DEPLOYS`` (default 1) slots, each an ``flock`` on
``<store>/locks/shallow/<version key>.<n>.lock``; with every slot busy the request is refused
at once with :class:`Conflict` saying why. The locks vanish with the process holding them.

Shallow versions live in their source region only (the source file is on this machine; there
is nothing to copy elsewhere): target regions other than the source region are refused.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import xxhash

from ..accel import nonzero_runs
from ..errors import Conflict, IntegrityError, InvalidArgument, NotFound, from_oserror
from ..formats import new_disk_file, open_disk

MiB = 1 << 20
STEP = 4 * MiB
ENV_MAX_DEPLOYS = "IMAGESTORE_SHALLOW_MAX_DEPLOYS"
DEFAULT_MAX_DEPLOYS = 1


def fingerprint(path: str) -> dict:
    """The identity of a source file, cheap to take (2 MiB read at most)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"{path}: shallow source is missing (no such file)") from None
    except OSError as e:
        raise from_oserror(e, path) from None
    try:
        st = os.fstat(fd)
        size = st.st_size
        if size == 0 and not os.path.isfile(path):  # a block device: its size by seeking
            size = os.lseek(fd, 0, os.SEEK_END)
        head = os.pread(fd, min(MiB, size), 0)
        tail = os.pread(fd, min(MiB, size), max(0, size - MiB))
    except OSError as e:
        raise from_oserror(e, path) from None
    finally:
        os.close(fd)
    return {
        "size": size,
        "mtimeNs": st.st_mtime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
        "head": xxhash.xxh3_128_hexdigest(head),
        "tail": xxhash.xxh3_128_hexdigest(tail),
    }


_WHAT = {"size": "size", "mtimeNs": "modification time", "inode": "inode (replaced)",
         "device": "device", "head": "first MiB (headers)", "tail": "last MiB (footer)"}


def check(path: str, recorded: dict, what: str) -> None:
    """Refuse to use a shallow source that is missing or differs from its fingerprint."""
    try:
        now = fingerprint(path)
    except NotFound:
        raise NotFound(f"{path}: the shallow source of {what} is missing; the version cannot be "
                       f"used (restore the file, or create a Full version)") from None
    changed = [_WHAT[k] for k in _WHAT if now.get(k) != recorded.get(k)]
    if changed:
        raise IntegrityError(
            f"{path}: the shallow source of {what} changed since the version was created "
            f"({', '.join(changed)} differ); create a new image version from it"
        )


def max_deploys() -> int:
    """Concurrent disk creations allowed per shallow version (``IMAGESTORE_SHALLOW_MAX_DEPLOYS``)."""
    raw = os.environ.get(ENV_MAX_DEPLOYS, "")
    if not raw:
        return DEFAULT_MAX_DEPLOYS
    try:
        n = int(raw)
    except ValueError:
        raise InvalidArgument(f"{ENV_MAX_DEPLOYS}: '{raw}' is not a positive integer") from None
    if n < 1:
        raise InvalidArgument(f"{ENV_MAX_DEPLOYS}: '{raw}' is not a positive integer")
    return n


def slot_path(root: str, key: str, n: int) -> str:
    """The lock file of deployment slot ``n`` of a shallow version."""
    return os.path.join(root, "locks", "shallow", f"{key}.{n}.lock")


@contextmanager
def deploy_slot(root: str, key: str, what: str) -> Iterator[int]:
    """Hold one of the concurrent-deployment slots of a shallow version, or refuse."""
    limit = max_deploys()
    os.makedirs(os.path.dirname(slot_path(root, key, 0)), exist_ok=True)
    for n in range(limit):
        fd = os.open(slot_path(root, key, n), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield n
        finally:
            os.close(fd)
        return
    raise Conflict(
        f"{what} uses shallow replication and already has {limit} disk creation(s) in progress "
        f"(limit {limit}, {ENV_MAX_DEPLOYS}): a shallow version reads its source file directly "
        f"and can't deploy many VMs at once; retry later or use Full replication"
    )


def create_disk_from_source(src: str, path: str, fmt: str, *, allow_parent_dir: str | None = None,
                            progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Stream the source's allocated extents to a new disk file at ``path`` (temp file +
    rename). Returns (virtual size, bytes written)."""
    reader = open_disk(src, allow_parent_dir=allow_parent_dir)
    try:
        extents = list(reader.extents())
        total = sum(n for _o, n in extents)
        written = done = 0
        with new_disk_file(path, reader.virtual_size, fmt) as writer:
            for off, n in extents:
                pos, end = off, off + n
                while pos < end:
                    m = min(STEP, end - pos)
                    data = reader.read(pos, m)
                    mv = memoryview(data)
                    for s, e in nonzero_runs(data):
                        writer.write(pos + s, mv[s:e])
                        written += e - s
                    pos += m
                    done += m
                    if progress is not None:
                        progress(done, total)
        return writer.virtual_size, written
    finally:
        reader.close()
