"""The content-addressed blob store of one region: open/create, chunk reads, manifests.

Order of writes (why a crash at any moment is safe):

1. chunk records are appended to the writer's own new pack file;
2. the pack is fsynced;
3. index rows pointing into the pack are committed (SQLite WAL, synchronous=FULL);
4. the manifest is written to a temp file, fsynced, renamed to ``manifests/<digest>.mf`` and
   the directory fsynced: this rename publishes the disk.

A crash before 4 leaves unreferenced chunks (reported by verify as reclaimable, removed by gc)
and possibly a torn pack tail that no index row points at; never a manifest whose chunks are
missing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from ..errors import IntegrityError, InvalidArgument, NotFound, from_oserror
from ..fsutil import atomic_write, build_beside, fsync_tree, remove_stale_temps, write_file
from . import index, manifest, sqlitedb
from .layout import CasConfig, config_bytes, read_config
from .lock import StoreLock
from .packs import REC, LockedPackWriter, decode_record, read_record, read_span

DIGEST_LEN = 32


class BlobStore:
    """One blob store directory. Thread-safe for reads; writers use their own PackWriter."""

    #: what holds the packs: a directory here, a blob container in ``store/container.py``
    backend = "directory"
    #: a replication publishes its pack every this many bytes (``regions/replicate.py``)
    commit_every = 128 << 20

    def __init__(self, root: str, cfg: CasConfig) -> None:
        self.root = root
        self.cfg = cfg
        self.packs_dir = os.path.join(root, "packs")
        self.manifests_dir = os.path.join(root, "manifests")
        self.index_path = os.path.join(root, "index.sqlite")
        self.lock_path = os.path.join(root, "lock")
        self._local = threading.local()
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()
        #: (thread, connection) of every per-thread connection, closed together by close();
        #: a dead thread's is closed when the next one is opened (ingest and materialize run
        #: in new worker threads each time: a long-running process would keep them all)
        self._cons: list = []
        #: the one connection every thread uses when the index had to be opened with a
        #: private WAL index (a nearly full disk: ``sqlitedb.connect``), where a second
        #: connection would find the file locked
        self._shared = None
        self._migrated = False

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, root: str, cfg: CasConfig) -> BlobStore:
        """Create a blob store at ``root`` and return it.

        A missing ``root`` is built beside itself and renamed into place (a kill leaves no
        store or a complete one; concurrent creators: one wins, the others open its store).
        An existing (empty, checked by the caller) directory is filled in place with
        ``cas.json`` written last; a half-built one of ours is finished the same way, since
        every step is idempotent.
        """
        try:
            if not os.path.lexists(root):
                if not build_beside(root, lambda tmp: cls.fill(tmp, cfg, durable=False)):
                    return cls.open(root)  # another process created it meanwhile
                return cls(root, cfg)
            cls.fill(root, cfg)
        except OSError as e:
            raise from_oserror(e, root) from None  # the user's path, not a temp name
        return cls(root, cfg)

    @staticmethod
    def fill(root: str, cfg: CasConfig, *, durable: bool = True) -> None:
        """Make the existing directory ``root`` an empty blob store, ``cas.json`` last; every
        step can be repeated, so a half-filled one is finished by filling it again.

        ``durable=False`` is for a temp directory nobody sees yet (the caller fsyncs the
        tree before renaming it into place): no fsync per step. Raises OSError (callers name
        their own path)."""
        os.makedirs(os.path.join(root, "packs"), exist_ok=True)
        os.makedirs(os.path.join(root, "manifests"), exist_ok=True)
        con = index.connect(os.path.join(root, "index.sqlite"))
        try:
            con.execute("PRAGMA synchronous=OFF")  # made durable by the fsync below
            index.create(con)
        finally:
            con.close()
        make_reserve(root)
        header = os.path.join(root, "cas.json")
        if not durable:
            write_file(header, config_bytes(cfg))
            return
        fsync_tree(root)
        atomic_write(header, config_bytes(cfg))  # last: its presence marks a complete store

    @classmethod
    def open(cls, root: str) -> BlobStore:
        return cls(root, read_config(root))

    def lock(self, *, exclusive: bool = False, timeout: float = 600.0) -> StoreLock:
        return StoreLock(self.lock_path, exclusive=exclusive, timeout=timeout)

    @property
    def con(self):
        """A per-thread SQLite connection (one shared by all threads on a nearly full disk,
        where the index is opened with a private WAL index: SQLite serializes its use)."""
        c = getattr(self._local, "con", None)
        if c is None:
            with self._fd_lock:
                c = self._shared
                if c is None:
                    # dead threads' connections first: their locks must not be in the way
                    alive = []
                    for t, old in self._cons:
                        if t.is_alive():
                            alive.append((t, old))
                        else:
                            old.close()
                    self._cons = alive
                    # never creates a lost index; read-only where this process may not write
                    readonly = not sqlitedb.writable(self.index_path)
                    # the first connection decides; while it is open, the others follow it
                    # (a private one would find the file locked by the shared ones)
                    c = index.open_index(self.index_path, readonly=readonly,
                                         private=False if self._cons else None)
                    if getattr(c, "private", False):
                        self._shared = c
                    self._cons.append((threading.current_thread(), c))
                    if not self._migrated and not readonly:
                        index.migrate(c)
                        self._migrated = True
            self._local.con = c
        return c

    def close(self) -> None:
        """Close every connection and pack descriptor (call when no thread uses the store)."""
        self._local = threading.local()
        with self._fd_lock:
            for _t, c in self._cons:
                c.close()
            self._cons.clear()
            self._shared = None
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    # -- chunks --------------------------------------------------------------------------

    def pack_fd(self, pack_id: int) -> tuple[int, str]:
        """(read-only descriptor, file name) of an indexed pack, kept open by the store."""
        names = getattr(self._local, "pack_names", None)
        if names is None or pack_id not in names:
            names = index.pack_names(self.con)
            self._local.pack_names = names
        name = names.get(pack_id)
        if name is None:
            raise IntegrityError(f"{self.root}: index names pack #{pack_id} which is unknown")
        with self._fd_lock:
            fd = self._fds.get(name)
            if fd is None:
                path = os.path.join(self.packs_dir, name)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise IntegrityError(f"{path}: pack file missing") from None
                self._fds[name] = fd
        return fd, name

    def read_pack_span(self, pack_id: int, offset: int, n: int) -> tuple[bytes, str]:
        """(``n`` bytes of indexed pack ``pack_id`` at ``offset``, pack name): the one way the
        replicate engine and verify read packs, so a store in a blob container (``store/
        container.py``) can serve them by range."""
        fd, name = self.pack_fd(pack_id)
        return read_span(fd, offset, n), name

    def new_pack_writer(self, hint: bytes | None = None):
        """A writer for a new pack of this store (``hint`` is for stores that name packs
        deterministically; a directory store's packs get random names)."""
        return LockedPackWriter(self.packs_dir)

    def write_manifest(self, digest: str, data: bytes) -> None:
        """Publish (or replace) manifest ``digest`` with the compressed bytes ``data``."""
        atomic_write(self.manifest_path(digest), data)

    def has_chunk(self, cid: bytes) -> bool:
        return index.lookup(self.con, cid) is not None

    def read_chunk(self, cid: bytes, loc: index.Location | None = None) -> bytes:
        """Read, decompress and hash-check one chunk. Raises IntegrityError when damaged."""
        if loc is None:
            loc = index.lookup(self.con, cid)
            if loc is None:
                raise IntegrityError(f"chunk {cid.hex()} is missing from {self.root}")
        pack_id, off, _raw_len, stored_len, _flags = loc
        fd, name = self.pack_fd(pack_id)
        buf = read_record(fd, off, stored_len)
        return decode_record(buf, cid, f"{self.packs_dir}/{name}@{off}")

    def payload_fd(self, loc: index.Location) -> tuple[int, int]:
        """(pack fd, file offset of the payload) of a stored record, for block sharing."""
        fd, _ = self.pack_fd(loc[0])
        return fd, loc[1] + REC.size

    def read_record_raw(self, cid: bytes, loc: index.Location) -> bytes:
        """The stored record (header + payload) as it is, for replication."""
        fd, _ = self.pack_fd(loc[0])
        return read_record(fd, loc[1], loc[3])

    # -- manifests -----------------------------------------------------------------------

    def manifest_path(self, digest: str) -> str:
        return os.path.join(self.manifests_dir, f"{digest}.mf")

    def check_digest(self, digest: str) -> str:
        d = digest.strip().lower()
        if len(d) != DIGEST_LEN or any(c not in "0123456789abcdef" for c in d):
            raise InvalidArgument(f"digest: '{digest}' is not a {DIGEST_LEN}-hex-digit manifest digest")
        return d

    def has_manifest(self, digest: str) -> bool:
        return os.path.exists(self.manifest_path(digest))

    def load_manifest(self, digest: str) -> manifest.Manifest:
        digest = self.check_digest(digest)
        path = self.manifest_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"manifest {digest}: no such disk content in {self.root}") from None
        except OSError as e:
            raise from_oserror(e, path) from None
        blob = manifest.decompress(data, path)
        m = manifest.decode(blob, path)
        if m.digest() != digest:
            raise IntegrityError(f"{path}: manifest content does not match its digest")
        return m

    def publish_manifest(self, m: manifest.Manifest,
                         before_new: Callable[[str], None] | None = None) -> str:
        """Publish ``m`` (if not there yet); ``before_new(digest)`` runs just before a
        manifest new to the store is written (a capture records its intent there)."""
        digest = m.digest()
        path = self.manifest_path(digest)
        if not os.path.exists(path):
            if before_new is not None:
                before_new(digest)
            atomic_write(path, manifest.compress(m.encode()))
        return digest

    def remove_manifest(self, digest: str) -> bool:
        """Unreference a disk's content (its chunks become garbage for gc)."""
        try:
            os.unlink(self.manifest_path(self.check_digest(digest)))
            return True
        except FileNotFoundError:
            return False

    def list_manifests(self) -> list[str]:
        try:
            names = os.listdir(self.manifests_dir)
        except FileNotFoundError:
            return []
        return sorted(n[:-3] for n in names if n.endswith(".mf") and not n.startswith("."))

    def cleanup_temps(self) -> int:
        return remove_stale_temps(self.manifests_dir) + remove_stale_temps(self.root)


#: a blob store keeps this much disk space in a hidden file that gc gives back when the disk
#: is full, so that it can write the index changes that let it delete dead packs
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 1 << 20


def make_reserve(root: str) -> bool:
    """(Re)create the space reserve of the blob store at ``root``; False when there is no
    room for it (nothing is left behind then)."""
    path = os.path.join(root, RESERVE_NAME)
    if os.path.exists(path):
        return True
    tmp = os.path.join(root, f".tmp-{os.getpid()}-reserve")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        return True
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)


def release_reserve(root: str) -> bool:
    """Give the space reserve back to the filesystem; True when there was one."""
    try:
        os.unlink(os.path.join(root, RESERVE_NAME))
        return True
    except FileNotFoundError:
        return False


def empty_entries() -> np.ndarray:
    return np.zeros(0, dtype=manifest.ENTRY_DTYPE)
