"""The background worker: the job queue, the worker lease, and the loop that runs queued
gallery work (replication of image versions, captures queued with ``no_wait``, region gc).

It uses only the gallery's public API (:class:`imagestore.gallery.GalleryService`, its
repository and :class:`imagestore.gallery.replication.Replication`). Start one with
``imagestore worker`` or ``python -m imagestore.worker --store DIR``.
"""

from .lease import HEARTBEAT, LEASE_TTL, Lease, lease_holder, pid_alive
from .queue import MAX_ATTEMPTS, JobQueue
from .worker import (
    ENV_AUTOSTART,
    LOG_NAME,
    Worker,
    WorkerRunner,
    autostart_enabled,
    ensure_worker,
    follow,
    open_gallery,
    run_inline,
    run_worker,
    spawn_worker,
)

__all__ = [
    "ENV_AUTOSTART", "HEARTBEAT", "LEASE_TTL", "LOG_NAME", "MAX_ATTEMPTS", "JobQueue", "Lease",
    "Worker", "WorkerRunner", "autostart_enabled", "ensure_worker", "follow", "lease_holder",
    "open_gallery", "pid_alive", "run_inline", "run_worker", "spawn_worker",
]
