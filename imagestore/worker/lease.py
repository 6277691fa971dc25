"""The worker lease: at most one worker at a time runs a store's jobs.

The lease is the ``worker_lease`` row (pid, host, heartbeat) in the gallery database, its
heartbeat refreshed every :data:`HEARTBEAT` seconds by a thread. A lease is stale when its
process is gone (or a zombie: checked only on the holder's own host) or its heartbeat is older
than :data:`LEASE_TTL`; the next worker takes it over and re-queues the jobs the dead one was
running (they resume without copying again what arrived).

**Across hosts** (a PostgreSQL gallery shared by several machines): the holder is the pair
(host, pid) — a pid alone means nothing on another machine — and heartbeats are stamped with
the database's clock (:meth:`Repository.now`), so hosts whose clocks disagree still agree on
the lease's age. The host id is ``$IMAGESTORE_HOST_ID`` or the machine's host name; give each
host (or container sharing a host name) its own.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading

from ..errors import ImagestoreError
from ..fsutil import pid_alive
from ..gallery.repository import LeaseRow, Repository

LEASE_TTL = 15.0
HEARTBEAT = 1.0
ENV_HOST_ID = "IMAGESTORE_HOST_ID"


def hostname() -> str:
    """This host's id as the lease records it: ``$IMAGESTORE_HOST_ID``, else the host name."""
    return os.environ.get(ENV_HOST_ID, "").strip() or socket.gethostname()


def lease_holder(repo: Repository) -> LeaseRow | None:
    """The live lease holder, or None when nobody (alive) holds the lease."""
    row = repo.lease()
    if row is None:
        return None
    if row.host == hostname() and not pid_alive(row.pid):
        return None
    return row if repo.now() - row.heartbeat < LEASE_TTL else None


class Lease:
    """This process's hold on the worker lease, kept fresh by a heartbeat thread."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.pid = os.getpid()
        self.host = hostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set when a heartbeat found the lease taken over (this holder went stale): the
        #: worker stops claiming jobs
        self.lost = threading.Event()

    def acquire(self, repo: Repository) -> bool:
        """Take the lease unless a live process holds it; jobs left ``running`` by a dead
        holder go back to the queue."""
        with repo.transaction():
            holder = lease_holder(repo)
            if holder is not None and (holder.pid, holder.host) != (self.pid, self.host):
                return False
            repo.write_lease(self.pid, self.host, repo.now())
            # only one lease holder at a time: whatever is 'running' belonged to a dead worker
            repo.requeue_running_jobs()
        self._stop.clear()
        self.lost.clear()
        self._thread = threading.Thread(target=self._beat, name="imagestore-lease", daemon=True)
        self._thread.start()
        return True

    def _beat(self) -> None:
        repo = Repository(self.db_path)
        try:
            while not self._stop.wait(HEARTBEAT):
                try:
                    if not repo.beat(self.pid, self.host, repo.now()):
                        self.lost.set()
                        return
                except (ImagestoreError, sqlite3.Error):  # busy or briefly unavailable:
                    pass  # try again next beat (a lease without beats goes stale, by design)
        finally:
            repo.close()

    def release(self, repo: Repository) -> None:
        """Stop the heartbeat and give the lease up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with repo.transaction():
            repo.drop_lease(self.pid, self.host)
