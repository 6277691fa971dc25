"""Linked clones: disks created in O(1) as small overlays over one shared, read-only parent.

**Parents.** A *linked parent* is one materialized copy of a version disk (its manifest
digest) in one region, kept by the store under ``<store>/linked-parents/<region>/``: a raw
file for qcow2 overlays (qemu reads it directly; reflinked from the packs where the
filesystem can and the chunks are stored uncompressed), a dynamic VHDX for VHDX differencing
children. It is made once, on the first linked disk that needs it, and shared by every later
one. Crash safety: it is materialized to a hidden staging name (itself written through a temp
file, fsynced and renamed), made read-only (mode 0444), renamed to its final name, the
directory fsynced, and only then recorded in the gallery database (``linked_parents``); a
parent file without a row after a crash is complete (it was renamed only when whole) and is
adopted by the next linked disk or removed by ``store gc``; staging files are removed by gc.

**Pinning.** Each linked disk has a ``disk_links`` row naming its parent (``ON DELETE
RESTRICT`` on the parent, ``CASCADE`` from the disk): deleting the version deletes neither
(VMs on linked disks keep working, as the spec requires); deleting the disk resource unpins;
``store gc`` removes parents no disk links to (:func:`collect`). Everything that creates or
removes parents or links holds the exclusive lock file ``linked-parents/.lock``.

**Flatten.** :meth:`LinkedDisks.flatten` rewrites a linked disk as an independent disk of
the same format (its current content, the parent's bytes included: a temp file, fsync,
rename over the disk file) and unpins the parent.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable

from ..errors import Conflict, InvalidArgument
from ..formats import new_disk_file, open_disk
from ..fsutil import fsync_dir
from ..store.lock import StoreLock
from .repository import LinkedParentRow, Repository

#: formats a linked disk can have, and the format of the parent each one needs
PARENT_FORMATS = {"qcow2": "raw", "vhdx": "vhdx"}
PARENTS_DIR = "linked-parents"
_STAGING = ".staging-"


def parents_root(store_root: str) -> str:
    return os.path.join(store_root, PARENTS_DIR)


def _lock(store_root: str) -> StoreLock:
    root = parents_root(store_root)
    os.makedirs(root, exist_ok=True)
    return StoreLock(os.path.join(root, ".lock"), exclusive=True)


def _parent_path(store_root: str, location: str, digest: str, fmt: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in digest)
    return os.path.join(parents_root(store_root), location.lower(), f"{safe}.{fmt}")


def check_format(fmt: str) -> str:
    if fmt not in PARENT_FORMATS:
        raise InvalidArgument(
            f"properties.localStorage.format: a linked disk is 'qcow2' (an overlay over a raw "
            f"parent) or 'vhdx' (a differencing VHDX over a VHDX parent), not '{fmt}'",
            target="properties.localStorage.format")
    return fmt


def ensure_parent(repo: Repository, store_root: str, location: str, digest: str, fmt: str,
                  make: Callable[[str, str], object]) -> LinkedParentRow:
    """The parent of ``digest`` in ``location`` for a linked disk of ``fmt``, made now when
    there is none (caller holds :func:`_lock`)."""
    pfmt = PARENT_FORMATS[fmt]
    row = repo.find_linked_parent(location, digest, pfmt)
    if row is not None and os.path.exists(row.path):
        return row
    path = _parent_path(store_root, location, digest, pfmt)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    if not os.path.exists(path):
        staging = os.path.join(d, f"{_STAGING}{secrets.token_hex(4)}-{os.path.basename(path)}")
        try:
            make(staging, pfmt)
            os.chmod(staging, 0o444)
            os.replace(staging, path)
        except BaseException:
            try:
                os.unlink(staging)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(d)
    vsize = _virtual_size(path)
    with repo.transaction():
        if row is not None:  # the row outlived its file (removed by hand): forget it
            repo.con.execute("DELETE FROM disk_links WHERE parent_id = ?", (row.id,))
            repo.con.execute("DELETE FROM linked_parents WHERE id = ?", (row.id,))
        repo.insert_linked_parent(location, digest, pfmt, path, vsize)
    got = repo.find_linked_parent(location, digest, pfmt)
    assert got is not None
    return got


def _virtual_size(path: str) -> int:
    r = open_disk(path)
    try:
        return r.virtual_size
    finally:
        r.close()


def write_overlay(parent: LinkedParentRow, path: str, fmt: str, virtual_size: int) -> int:
    """Write the linked disk at ``path`` (temp file, fsync, rename); returns its size."""
    if fmt == "qcow2":
        from ..formats import qcow2

        def writer_for(tmp: str, size: int, _fmt: str):
            return qcow2.create_qcow2_writer(tmp, size, backing=(parent.path, "raw"))
    else:
        from ..formats import vhdx

        r = open_disk(parent.path)
        try:
            dwg = r.header.data_write_guid  # type: ignore[attr-defined]
        finally:
            r.close()

        def writer_for(tmp: str, size: int, _fmt: str):
            rel = os.path.relpath(parent.path, os.path.dirname(os.path.abspath(path)))
            return vhdx.create_vhdx_writer(tmp, size, fixed=False, parent=(rel, dwg))
    with new_disk_file(path, virtual_size, fmt, writer_factory=writer_for):
        pass
    return os.path.getsize(path)


def collect(repo: Repository, store_root: str, *, dry_run: bool = False) -> list[dict]:
    """``store gc``'s part: remove parents no linked disk uses (rows and files), parent files
    without a row and staging files left by a crash. Returns what was (or would be) freed."""
    root = parents_root(store_root)
    if not os.path.isdir(root):
        return []
    freed: list[dict] = []
    with _lock(store_root):
        known = set()
        for row, n in repo.list_linked_parents():
            known.add(row.path)
            if n:
                continue
            size = os.path.getsize(row.path) if os.path.exists(row.path) else 0
            freed.append({"path": row.path, "digest": row.digest, "location": row.location,
                          "bytes": size})
            if dry_run:
                continue
            with repo.transaction():
                if not repo.delete_linked_parent(row.id):
                    freed.pop()
                    continue
            _remove(row.path)
        for sub in sorted(os.listdir(root)):
            d = os.path.join(root, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                if p in known or not stat.S_ISREG(os.lstat(p).st_mode):
                    continue
                # a staging file, or a parent whose row was never committed (crash)
                freed.append({"path": p, "digest": None, "location": sub,
                              "bytes": os.path.getsize(p)})
                if not dry_run:
                    _remove(p)
    return freed


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(os.path.dirname(path))


def flatten(path: str, fmt: str, parent_dir: str) -> int:
    """Rewrite the linked disk file at ``path`` as an independent ``fmt`` disk with the same
    content (temp file, fsync, rename over it); returns the bytes written."""
    from ..accel import nonzero_runs

    if not os.path.exists(path):
        raise Conflict(f"properties.localStorage.path: {path} does not exist",
                       target="properties.localStorage.path")
    reader = open_disk(path, allow_parent_dir=parent_dir)
    written = 0
    try:
        with new_disk_file(path, reader.virtual_size, fmt) as w:
            for off, n in reader.extents():
                pos, end = off, off + n
                while pos < end:
                    m = min(1 << 20, end - pos)
                    data = reader.read(pos, m)
                    mv = memoryview(data)
                    for a, b in nonzero_runs(data):
                        w.write(pos + a, mv[a:b])
                        written += b - a
                    pos += m
            reader.check_unchanged("flattened")
    finally:
        reader.close()
    return written


__all__ = ["PARENT_FORMATS", "check_format", "collect", "ensure_parent", "flatten",
           "parents_root", "write_overlay"]
