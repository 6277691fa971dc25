"""SQLite at the boundary: connections that name their file when they fail, read-only
opening, and the one translation of SQLite errors into imagestore errors.

Every SQLite database of a store (the blob stores' ``index.sqlite``, ``gallery.sqlite``) is
opened with :func:`connect`. Its connections raise :class:`~imagestore.errors.IOFailure`
(exit 10) for a full disk, an I/O error, a read-only or unopenable file, and
:class:`~imagestore.errors.IntegrityError` (exit 7) for a damaged file, each naming the file;
SQLite errors that are bugs (SQL errors, constraint violations) pass through unchanged.

Read-only opening (``readonly=True``): ``mode=ro``; when that fails because the WAL index
(``-shm``) cannot be created — a directory the user cannot write, a read-only mount — the file
is opened ``immutable=1``, which reads it without any lock or shared memory (nobody can be
writing a database whose directory nobody may write).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from urllib.parse import quote

from ..errors import ImagestoreError, IntegrityError, IOFailure, StoreBusy

#: SQLite primary result codes (the low byte of an extended code) and what they mean here
_FULL, _IOERR, _READONLY, _CANTOPEN, _CORRUPT, _NOTADB = 13, 10, 8, 14, 11, 26
_PERM, _BUSY, _LOCKED = 3, 5, 6


def translate(err: sqlite3.Error, path: str) -> ImagestoreError | None:
    """The imagestore error for a SQLite error on the database ``path``, or None when the
    error is not about the file (a bug: let it surface as such)."""
    code = getattr(err, "sqlite_errorcode", None)
    text = str(err)
    if code is None:
        if "malformed" in text or "not a database" in text:
            code = _CORRUPT
        elif "disk is full" in text:
            code = _FULL
        elif "disk I/O error" in text:
            code = _IOERR
        elif "readonly database" in text:
            code = _READONLY
        elif "unable to open" in text:
            code = _CANTOPEN
        else:
            return None
    primary = code & 0xFF
    if primary == _FULL:
        return IOFailure(f"{path}: no space left on device (SQLite: {text})")
    if primary == _IOERR:
        return IOFailure(f"{path}: I/O error (SQLite: {text}); is the disk full or failing?")
    if primary in (_READONLY, _PERM):
        return IOFailure(f"{path}: cannot write (read-only file, directory or file system)")
    if primary == _CANTOPEN:
        return IOFailure(f"{path}: cannot open the database (missing, or no permission)")
    if primary in (_CORRUPT, _NOTADB):
        return IntegrityError(f"{path}: the database is damaged (SQLite: {text})")
    if primary in (_BUSY, _LOCKED):
        return StoreBusy(f"{path}: the database is busy (another imagestore is writing)")
    return None


def _raise(err: sqlite3.Error, path: str):
    mapped = translate(err, path)
    if mapped is None:
        raise err
    raise mapped from None


class Cursor(sqlite3.Cursor):
    """A cursor whose errors name its connection's file (also those of later fetches)."""

    def execute(self, sql, parameters=()):  # noqa: ANN001, ANN201 - sqlite3's signature
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as e:
            _raise(e, self.connection.path)

    def executemany(self, sql, seq):  # noqa: ANN001, ANN201
        try:
            return super().executemany(sql, seq)
        except sqlite3.Error as e:
            _raise(e, self.connection.path)

    def __next__(self):  # noqa: ANN204
        try:
            return super().__next__()
        except sqlite3.Error as e:
            _raise(e, self.connection.path)

    def fetchone(self):  # noqa: ANN201
        try:
            return super().fetchone()
        except sqlite3.Error as e:
            _raise(e, self.connection.path)

    def fetchall(self):  # noqa: ANN201
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            _raise(e, self.connection.path)


class Connection(sqlite3.Connection):
    """A connection that knows its file; every statement goes through :class:`Cursor`."""

    path: str = "?"
    #: opened with its WAL index in private memory (``locking_mode=EXCLUSIVE``, see
    #: :func:`connect`): the only connection to its file this process may have open
    private: bool = False

    def cursor(self, factory=Cursor):  # noqa: ANN001, ANN201
        return super().cursor(factory)

    def execute(self, sql, parameters=()):  # noqa: ANN001, ANN201
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq):  # noqa: ANN001, ANN201
        return self.cursor().executemany(sql, seq)

    def executescript(self, script):  # noqa: ANN001, ANN201
        try:
            return super().executescript(script)
        except sqlite3.Error as e:
            _raise(e, self.path)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as e:
            _raise(e, self.path)


def writable(path: str) -> bool:
    """Whether this process may write the database ``path`` (and its directory, where the
    journal and WAL files live). A missing file counts as writable when its directory is."""
    d = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return False
    return os.access(d, os.W_OK)


#: below this much free space a writable database is opened with its WAL index in private
#: memory instead of the shared ``-shm`` mapping (see :func:`connect`)
SHM_HEADROOM = 4 << 20


def free_bytes(path: str) -> int:
    """Bytes this process may still allocate on the filesystem holding ``path``."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:
        return 1 << 62  # no such directory: opening says so, naming the file
    return st.f_bavail * st.f_frsize


def _allocate_shm(path: str) -> bool:
    """Allocate every block of the WAL index file (``-shm``) that exists now; False when the
    filesystem has no room for them.

    Uses SQLite's own descriptor of the file (found in ``/proc/self/fd``): opening and closing
    another one would drop this process's POSIX locks on it, SQLite's among them, and let
    another process re-initialise (truncate) the WAL index under this one's mapping."""
    shm = os.path.realpath(path + "-shm")
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return True
    for name in fds:
        try:
            if os.readlink(f"/proc/self/fd/{name}") != shm:
                continue
            fd = int(name)
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            continue  # a descriptor closed meanwhile, or a filesystem without fallocate
        return True
    return True  # no shared WAL index (not WAL, or kept in private memory)


def _open_rw(path: str, timeout: float, private_wal_index: bool) -> Connection:
    try:
        con = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                              check_same_thread=False, factory=Connection)
    except sqlite3.Error as e:
        _raise(e, path)
    con.path = path
    if private_wal_index:
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        con.private = True
    return con


def connect(path: str, *, readonly: bool = False, timeout: float = 60.0,
            private: bool | None = None) -> Connection:
    """Open ``path`` (creating it unless ``readonly``) with a connection that translates its
    errors; read-only falls back to ``immutable=1`` where the WAL index cannot be made.

    **No SIGBUS on a full disk.** SQLite maps the WAL index (``-shm``) into memory and
    extends it by writing one byte per 4 KiB page; on a filesystem with smaller blocks (ext4
    makes 1 KiB blocks on small disks) the rest of each page stays a hole, and when SQLite
    later stores into a hole while the disk is full the kernel cannot allocate the block and
    kills the process with SIGBUS. So after opening, every block of the ``-shm`` file is
    allocated (``posix_fallocate``; the contents are not touched); where that fails, or where
    less than ``SHM_HEADROOM`` is free to begin with, the database is opened with
    ``locking_mode=EXCLUSIVE``, which keeps the WAL index in private memory: no mapping, so a
    full disk is an error SQLite reports (exit 10), at the price of one connection at a time
    (``con.private``: a second one in this process or another is busy; ``BlobStore.con``
    then shares the one among its threads). ``private`` forces the choice (``False``: still
    private where the ``-shm`` cannot be allocated).
    """
    if not readonly:
        if private is None:
            private = free_bytes(path) < SHM_HEADROOM
        con = _open_rw(path, timeout, private)
        if not private:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the WAL index
            if not _allocate_shm(path):
                con.close()
                con = _open_rw(path, timeout, True)
        con.execute("PRAGMA mmap_size=0")
        return con
    return _open_ro(path, timeout)


def _open_ro(path: str, timeout: float) -> Connection:
    """``mode=ro``; ``immutable=1`` where even reading needs a WAL index this process cannot
    create (no write access to the directory, a read-only mount)."""
    if not os.path.exists(path):
        raise IOFailure(f"{path}: cannot open the database (missing)")
    con = None
    for query in ("mode=ro", "mode=ro&immutable=1"):
        if con is not None:
            con.close()
        try:
            con = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?{query}", uri=True,
                                  timeout=timeout, isolation_level=None,
                                  check_same_thread=False, factory=Connection)
        except sqlite3.Error as e:
            _raise(e, path)
        con.path = path
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            break
        except IOFailure:
            if "immutable" in query:
                raise
    con.execute("PRAGMA mmap_size=0")
    return con
