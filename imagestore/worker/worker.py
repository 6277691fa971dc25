"""The worker loop, and who runs it.

**Who runs jobs.** ``imagestore worker [--once]`` (or ``python -m imagestore.worker``); a
command that queued work with ``no_wait`` (or ``sig image-version wait``) starts a detached
``python -m imagestore.worker --once`` when no live worker holds the lease (disabled with
``IMAGESTORE_AUTOSTART_WORKER=0``, for a deployment that runs the worker as a service); a
synchronous command runs its own version's jobs inline when it can take the lease, else waits
for the worker that holds it (:class:`WorkerRunner`, the gallery's ``WorkRunner``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ..errors import ImagestoreError
from ..gallery import capture_intents, version_data
from ..gallery.progress import Observer, ProgressEvent, TaskKind
from ..gallery.replication import Replication, error_message
from ..gallery.repository import JobKind, JobRow
from ..gallery.service import GalleryService
from ..gallery.validate import iso, now_utc
from ..home import Home
from .lease import Lease, lease_holder
from .queue import MAX_ATTEMPTS, JobQueue

ENV_AUTOSTART = "IMAGESTORE_AUTOSTART_WORKER"
LOG_NAME = "worker.log"

_spawned: list[subprocess.Popen] = []  # keeps the Popen objects (reaped by subprocess)


def _log(msg: str) -> None:
    print(f"{iso(now_utc())} worker[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


class Worker:
    """Runs queued jobs of one store while holding its lease."""

    def __init__(self, svc: GalleryService, *, verbose: bool = False) -> None:
        self.svc = svc
        self.repo = svc.repo
        self.queue = JobQueue(svc.repo)
        self.lease = Lease(svc.repo.db_path)
        self.verbose = verbose
        self.replication = Replication(svc.home, svc.repo, svc.placement, log=self.log)

    def log(self, msg: str) -> None:
        """One line on stderr (the worker log) when verbose."""
        if self.verbose:
            _log(msg)

    def remove_abandoned_captures(self) -> None:
        """Remove the manifests killed captures published and no row references (their
        capture intents, :mod:`..gallery.capture_intents`); their chunks wait for gc."""
        try:
            removed = capture_intents.resume_abandoned(self.repo, self.svc.placement)
        except ImagestoreError as e:  # the next worker or gc tries again
            self.log(f"abandoned captures: {error_message(e, 'capture intents')}")
            return
        if removed:
            self.log(f"removed {len(removed)} manifest(s) of killed captures")

    def run(self, *, once: bool = True, only_version: int | None = None,
            observer: Observer | None = None, poll: float = 1.0) -> int:
        """Process queued jobs (the caller holds the lease); returns how many ran. ``once``:
        stop when the queue is empty, else keep polling."""
        n = 0
        while True:
            if self.lease.lost.is_set():  # another worker took the lease over: stop here
                return n
            job = self.queue.claim(only_version)
            if job is None:
                if once:
                    return n
                time.sleep(poll)
                continue
            n += 1
            self.log(f"job {job.id} {job.kind} version={job.version_id} "
                     f"attempt={job.attempts + 1}")
            try:
                self._process(job, observer)
                self.queue.done(job)
                self.log(f"job {job.id} done")
            except Exception as e:  # noqa: BLE001 - recorded on the job and the version
                msg = error_message(e, f"job {job.id}")
                self.log(f"job {job.id} failed: {msg}")
                self.queue.done(job)
                if job.job_kind == JobKind.VERSION and job.version_id is not None:
                    self.replication.fail_version(job.version_id, msg)

    def _process(self, job: JobRow, observer: Observer | None) -> None:
        if self.queue.exhausted(job):
            raise ImagestoreError(f"job {job.id} gave up after {MAX_ATTEMPTS} attempts")
        payload = job.data
        if job.job_kind == JobKind.VERSION:
            if job.version_id is not None:
                self.replication.process_version(job.version_id, payload, observer)
        elif job.job_kind == JobKind.GC:
            self.replication.gc_region(payload["region"])
        elif job.job_kind == JobKind.UNREFERENCE:  # a deletion a kill interrupted
            version_data.unreference(self.svc.repo, self.svc.placement, {**payload, "job": job.id})


def run_worker(svc: GalleryService, *, once: bool, verbose: bool = True) -> dict:
    """``imagestore worker``: take the lease (or report who holds it) and run jobs."""
    w = Worker(svc, verbose=verbose)
    if not w.lease.acquire(svc.repo):
        holder = lease_holder(svc.repo)
        pid = holder.pid if holder else None
        w.log(f"another worker (pid {pid}) holds the lease; exiting")
        return {"ran": 0, "leaseHeldBy": pid}
    ran = 0
    w.remove_abandoned_captures()
    while True:
        try:
            ran += w.run(once=once)
        finally:
            w.lease.release(svc.repo)
        # A command that queued work just before the release saw the lease held and started
        # no worker: look again after releasing, and carry on if there is work.
        if not w.queue.pending() or not w.lease.acquire(svc.repo):
            break
    return {"ran": ran, "leaseHeldBy": None, "pending": w.queue.pending()}


def autostart_enabled() -> bool:
    """Whether commands may start a background worker (``IMAGESTORE_AUTOSTART_WORKER``)."""
    return os.environ.get(ENV_AUTOSTART, "1").strip().lower() not in ("0", "false", "no", "off")


def spawn_worker(root: str) -> subprocess.Popen:
    """Start a detached ``python -m imagestore.worker --once`` for the store, logging to
    ``<store>/worker.log``."""
    log = open(os.path.join(root, LOG_NAME), "ab")  # noqa: SIM115 - handed to the child
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "imagestore.worker", "--store", root, "--once"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    _spawned.append(p)
    for q in list(_spawned):  # reap finished ones
        if q.poll() is not None:
            _spawned.remove(q)
    return p


def ensure_worker(svc: GalleryService) -> subprocess.Popen | None:
    """Start a background worker when jobs are waiting and no live worker holds the lease."""
    if not autostart_enabled() or not svc.repo.pending_jobs() or lease_holder(svc.repo):
        return None
    if any(p.poll() is None for p in _spawned):
        return None  # one we started is still starting up (or found the lease taken)
    return spawn_worker(svc.home.root)


def follow(svc: GalleryService, vpk: int, *, observer: Observer | None = None,
           interval: float = 0.2, timeout: float | None = None) -> None:
    """Poll until the version has no queued or running job, starting a worker when none is
    alive; replication events from the database rows."""
    deadline = None if timeout is None else time.monotonic() + timeout

    def report() -> None:
        if observer is not None:
            for r in svc.repo.regions_of(vpk):
                observer(ProgressEvent(TaskKind.REPLICATE, r.region, r.bytes_done,
                                       r.bytes_total, state=r.state,
                                       final=not r.replication_state.pending))

    while svc.repo.pending_jobs(vpk):
        ensure_worker(svc)
        report()
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval)
    report()


def run_inline(svc: GalleryService, vpk: int, *, observer: Observer | None = None) -> None:
    """Do the queued work of one version now, in this process (synchronous commands): as the
    lease holder when the lease is free, else by waiting for the worker that holds it."""
    w = Worker(svc)
    if w.lease.acquire(svc.repo):
        try:
            w.run(once=True, only_version=vpk, observer=observer)
        finally:
            w.lease.release(svc.repo)
        ensure_worker(svc)  # other commands' work, if any, goes on in the background
        return
    follow(svc, vpk, observer=observer)


class WorkerRunner:
    """The gallery's ``WorkRunner``: background work by a detached worker, synchronous work
    inline (see :func:`run_inline`)."""

    def __init__(self, svc: GalleryService) -> None:
        self.svc = svc

    def start(self) -> None:
        """Start a background worker if work is queued and none runs."""
        ensure_worker(self.svc)

    def run(self, version_pk: int, observer: Observer | None) -> None:
        """Run the version's queued work now."""
        run_inline(self.svc, version_pk, observer=observer)


def open_gallery(home: Home) -> GalleryService:
    """A :class:`GalleryService` whose queued work runs (inline, or by a background worker)."""
    svc = GalleryService(home)
    svc.runner = WorkerRunner(svc)
    return svc
