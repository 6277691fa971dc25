"""Store locking with flock(2) on the blob store's ``lock`` file.

* ingest, materialize, verify and replication hold a **shared** lock for their whole run;
* gc holds the **exclusive** lock while it deletes or compacts, so no reader can look up a chunk
  that gc is removing and no ingest can dedup against a chunk that gc is about to delete.

Locks are released by the kernel when a process dies, so a ``kill -9`` never leaves one behind.
Concurrent writers need no lock between them: each appends to its own pack file and publishes
index rows in SQLite transactions (``INSERT OR IGNORE``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from ..errors import StoreBusy, from_oserror


class StoreLock:
    def __init__(self, path: str, *, exclusive: bool, timeout: float = 600.0) -> None:
        self.path = path
        self.exclusive = exclusive
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> StoreLock:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise from_oserror(e, self.path) from None
            # a store this process may not write: a shared lock needs only a read descriptor,
            # and with no lock file at all there is nobody to coordinate with
            if self.exclusive:
                raise from_oserror(e, self.path) from None
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return self
            except OSError as e2:
                raise from_oserror(e2, self.path) from None
        op = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(self.fd, op | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = -1
                    what = "exclusive" if self.exclusive else "shared"
                    raise StoreBusy(
                        f"{self.path}: could not take the {what} store lock within "
                        f"{self.timeout:g} s (another imagestore process is using the store)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
