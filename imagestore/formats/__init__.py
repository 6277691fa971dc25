"""Disk image formats: detection by content, readers and writers.

``open_disk(path)`` detects the format from the bytes and returns a
:class:`~imagestore.formats.base.DiskReader`; what is not a supported disk is refused by name
(:mod:`.detect`), and a file name that promises a container its content lacks is refused. ``create_writer(path, size, fmt)`` returns a
:class:`~imagestore.formats.base.DiskWriter` after checking that the size fits the format.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import BadImage, ImagestoreError, InvalidArgument, IOFailure, NotFound, from_oserror
from ..fsutil import fsync_dir, remove_stale_builds, temp_beside
from .base import DiskReader, DiskWriter, SourceChanged, SourceGuard, coalesce
from .detect import SOURCE_FORMATS, container_format, detect
from .raw import EXT4_MAX_FILE, RawReader, RawWriter

__all__ = [
    "DiskReader",
    "DiskWriter",
    "SOURCE_FORMATS",
    "SourceChanged",
    "WRITE_FORMATS",
    "coalesce",
    "create_writer",
    "detect_format",
    "new_disk_file",
    "open_disk",
]

#: names accepted by ``--format``
WRITE_FORMATS = ("raw", "vhd", "vhd-fixed", "vhdx", "vhdx-fixed", "qcow2")

#: differencing chains deeper than this are refused (a loop or a hostile file)
MAX_CHAIN_DEPTH = 32


def _open_fd(path: str) -> tuple[int, os.stat_result]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise from_oserror(e, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{path}: is a directory, not a disk image file")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f"{path}: not a regular file or block device")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise from_oserror(e, path) from None
    return fd, os.fstat(fd)


def detect_format(fd: int, size: int) -> str:
    """Return "vhdx", "qcow2", "vhd" (dynamic/differencing), "vhd-fixed" or "raw" from the container
    signatures alone (no refusals; :func:`open_disk` also refuses what is not a disk)."""
    return container_format(fd, size)


#: the first and last this many bytes of every source are compared after reading it
GUARD_SPAN = 1 << 20


def open_disk(
    path: str,
    *,
    allow_parent_dir: str | None = None,
    source_format: str = "auto",
    _depth: int = 0,
    _seen: frozenset[str] = frozenset(),
) -> DiskReader:
    """Open a disk image of any supported format, detected from its content.

    ``source_format``: "auto" detects the format and refuses what is not a supported disk
    (see :mod:`imagestore.formats.detect`); "raw" takes the file's bytes as the disk, as they
    are. ``allow_parent_dir``: differencing parents must resolve inside the child's own
    directory unless they resolve inside this directory.

    The reader's :meth:`~imagestore.formats.base.DiskReader.check_unchanged` tells whether the
    file (or a parent) changed since this call; reads never return zeros for a file that shrank.
    """
    if source_format not in SOURCE_FORMATS:
        raise InvalidArgument(
            f"unknown source format '{source_format}' (use {' or '.join(SOURCE_FORMATS)})",
            target="sourceFormat",
        )
    if path.startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = unquote(urlparse(path).path)
    if _depth > MAX_CHAIN_DEPTH:
        raise BadImage(f"{path}: differencing chain deeper than {MAX_CHAIN_DEPTH} parents")
    if path.lower().startswith(("https://", "http://")):
        from .blobsource import open_blob_source

        return _open_source(open_blob_source(path), source_format=source_format)
    real = os.path.realpath(path)
    if real in _seen:
        raise BadImage(f"{path}: differencing chain loops back to this file")
    fd, st = _open_fd(path)
    reader: DiskReader | None = None
    try:
        size = st.st_size
        if stat.S_ISBLK(st.st_mode):
            size = os.lseek(fd, 0, os.SEEK_END)
        # the identity is taken before anything is read
        guard = SourceGuard(path, fd, st, size)
        if size == 0:
            raise BadImage(f"{path}: empty file, not a disk image")
        fmt = "raw" if source_format == "raw" else detect(path, fd, size)
        if fmt == "raw":
            reader = RawReader(path, fd, size=size)
        else:
            opener_kw = dict(
                allow_parent_dir=allow_parent_dir, depth=_depth, seen=_seen | {real}
            )
            if fmt == "vhdx":
                from . import vhdx

                reader = vhdx.open_vhdx(path, fd, size, **opener_kw)
            elif fmt == "qcow2":
                from . import qcow2

                reader = qcow2.open_qcow2(path, fd, size, **opener_kw)
            else:
                from . import vhd

                reader = vhd.open_vhd(path, fd, size, **opener_kw)
        guard.cover(0, GUARD_SPAN)
        guard.cover(size - GUARD_SPAN, GUARD_SPAN)
        reader.guard = guard
        return reader
    except BaseException:
        if reader is not None:
            reader.close()  # closes fd (and any parent)
        else:
            os.close(fd)
        raise


def _open_source(src, *, source_format: str) -> DiskReader:
    """Open a disk from a source file (``formats/source.py``): a blob read by ranges."""
    path, size = src.path, src.size
    reader: DiskReader | None = None
    try:
        guard = src.guard()
        fmt = "raw" if source_format == "raw" else detect(path, src, size)
        if fmt == "raw":
            reader = RawReader(path, src, size=size)
        elif fmt == "qcow2":
            raise BadImage(f"{path}: a qcow2 image in blob storage (blob sources are VHD, VHDX "
                           f"or raw, as Azure keeps them)")
        elif fmt == "vhdx":
            from . import vhdx

            reader = vhdx.open_vhdx(path, src, size, allow_parent_dir=None, depth=0,
                                    seen=frozenset())
        else:
            from . import vhd

            reader = vhd.open_vhd(path, src, size, allow_parent_dir=None, depth=0,
                                  seen=frozenset())
        reader.guard = guard
        reader.source = src
        return reader
    except BaseException:
        if reader is not None:
            reader.close()
        else:
            src.close()
        raise


def open_parent(
    child_path: str,
    candidates: list[str],
    *,
    allow_parent_dir: str | None,
    depth: int,
    seen: frozenset[str],
    source_format: str = "auto",
) -> DiskReader:
    """Resolve a differencing disk's parent from its locator ``candidates`` (paths, absolute or
    relative to the child's directory, tried in order) and open it.

    A parent that resolves outside the child's own directory is refused unless it lies inside
    ``allow_parent_dir``: a crafted child must not read arbitrary host files.
    ``source_format`` "raw" takes the parent's bytes as they are (a qcow2 backing file whose
    format the child names as raw is never probed).
    """
    if child_path.lower().startswith(("https://", "http://")):
        raise BadImage(f"{child_path}: a differencing disk in blob storage (its parent is not "
                       f"followed across URLs; capture a merged copy)")
    child_dir = os.path.dirname(os.path.realpath(child_path))
    allowed = [child_dir]
    if allow_parent_dir:
        allowed.append(os.path.realpath(allow_parent_dir))
    refused: str | None = None
    for cand in candidates:
        if not cand:
            continue
        cand = cand.replace("\\", "/")
        if len(cand) > 2 and cand[1] == ":":  # a Windows drive path: try its file name only
            cand = os.path.basename(cand)
        full = cand if os.path.isabs(cand) else os.path.join(child_dir, cand)
        real = os.path.realpath(full)
        if not any(real == d or real.startswith(d.rstrip("/") + "/") for d in allowed):
            refused = cand
            continue
        if os.path.exists(real):
            return open_disk(real, allow_parent_dir=allow_parent_dir, _depth=depth + 1,
                             _seen=seen, source_format=source_format)
    if refused is not None:
        raise BadImage(
            f"{child_path}: parent locator '{refused}' resolves outside the child's directory; "
            f"pass --allow-parent-dir DIR to allow it"
        )
    names = ", ".join(repr(c) for c in candidates if c) or "none"
    raise NotFound(f"{child_path}: parent disk not found (locators: {names})")


def create_writer(path: str, virtual_size: int, fmt: str) -> DiskWriter:
    """Create a writer for ``fmt`` (one of WRITE_FORMATS) after checking size limits."""
    fmt = fmt.lower()
    if fmt not in WRITE_FORMATS:
        raise InvalidArgument(f"--format: unknown format '{fmt}' (use {', '.join(WRITE_FORMATS)})")
    if fmt == "raw":
        if virtual_size > EXT4_MAX_FILE:
            _check_fs_limit(path, virtual_size)
        return RawWriter(path, virtual_size)
    if fmt in ("vhd", "vhd-fixed"):
        from . import vhd

        return vhd.create_vhd_writer(path, virtual_size, fixed=(fmt == "vhd-fixed"))
    if fmt == "qcow2":
        from . import qcow2

        return qcow2.create_qcow2_writer(path, virtual_size)
    from . import vhdx

    return vhdx.create_vhdx_writer(path, virtual_size, fixed=(fmt == "vhdx-fixed"))


@contextmanager
def new_disk_file(path: str, virtual_size: int, fmt: str,
                  writer_factory: Callable[[str, int, str], DiskWriter] | None = None,
                  ) -> Iterator[DiskWriter]:
    """A writer for a new disk at ``path`` that appears only when complete.

    The disk is written to a hidden temp file beside ``path``; on success the writer is
    finished (fsynced) and the file renamed into place; on any failure it is removed, so a
    failed or killed disk creation never leaves a partial disk behind. ``writer_factory``
    (tmp path, size, fmt) makes the writer instead of :func:`create_writer` (an overlay with a
    backing file, a differencing VHDX: linked clones).
    """
    if path.lower().startswith(("https://", "http://")):
        yield from _new_page_blob(path, virtual_size, fmt)
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InvalidArgument(f"--path: directory {parent} does not exist")
    # the temp name carries host and pid: a killed creation's temp file is removed by the next
    # creation of the same path, and by ``store gc`` in the store's disks directory
    remove_stale_builds(parent, os.path.basename(path))
    tmp = temp_beside(path)
    try:
        writer = (writer_factory or create_writer)(tmp, virtual_size, fmt)
    except ImagestoreError as e:
        if isinstance(e, NotFound):  # the directory exists but takes no new file (/proc)
            raise IOFailure(f"{path}: cannot create a file there (no such file or directory)"
                            ) from None
        raise _users_path(e, tmp, path) from None
    ok = False
    try:
        yield writer
        writer.finish()
        os.replace(tmp, path)
        tmp = path  # from here a failure removes the published file
        fsync_dir(parent)  # the rename is durable before the caller records the disk
        ok = True
    except ImagestoreError as e:
        raise _users_path(e, tmp, path) from None
    except OSError as e:
        raise from_oserror(e, path) from None
    finally:
        if not ok:
            writer.abort()
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _new_page_blob(url: str, virtual_size: int, fmt: str) -> Iterator[DiskWriter]:
    """A fixed VHD written into a new page blob, its footer last (``formats/pageblob.py``);
    deleted again on any failure."""
    from .pageblob import PageBlobVhdWriter

    if fmt.lower() != "vhd-fixed":
        raise InvalidArgument(f"--format: a disk in blob storage is a fixed VHD in a page blob "
                              f"(--format vhd-fixed), not {fmt}")
    writer = PageBlobVhdWriter(url, virtual_size)
    ok = False
    try:
        yield writer
        writer.finish()
        ok = True
    finally:
        if not ok:
            writer.abort()


def _users_path(err: ImagestoreError, tmp: str, path: str) -> ImagestoreError:
    """``err`` naming the user's ``path`` instead of the hidden temp file written for it."""
    if tmp in err.message:
        err.message = err.message.replace(tmp, path)
        err.args = (err.message,)
    return err


def _check_fs_limit(path: str, virtual_size: int) -> None:
    from ..errors import TooLarge

    # statfs has no "max file size"; ext4's limit is the common one. Probe with a sparse file.
    d = os.path.dirname(os.path.abspath(path)) or "."
    probe = os.path.join(d, f".imagestore-size-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise from_oserror(e, d) from None
    try:
        os.ftruncate(fd, virtual_size)
    except OSError:
        raise TooLarge(
            f"{path}: a raw disk of {virtual_size} bytes ({virtual_size / 2**40:.2f} TiB) is "
            f"larger than this filesystem allows for one file (ext4 stops at 16 TiB); "
            f"use --format vhdx"
        ) from None
    finally:
        os.close(fd)
        os.unlink(probe)
