"""Background work: the job queue, the worker lease, and the replication of image versions.

**Jobs** are rows of the ``jobs`` table in ``gallery.sqlite``: ``version`` jobs (capture, when
``--no-wait`` queued it, then bring every target region of the version to its wanted copies)
and ``gc`` jobs (reclaim the space of copies removed from a region). A job is ``queued`` until a
worker claims it (``running``, with the worker's pid) and is deleted when done. The work is a
*reconciliation*, so running a job twice, or after a crash, is harmless: the copy engine skips
chunks a region has, adopts what a killed run wrote, and publishes a manifest only once its
chunks are there.

**Lease.** One worker at a time holds the lease (the ``worker_lease`` row: pid, host,
heartbeat refreshed every second by a thread). A lease is stale when its process is gone (or a
zombie) or its heartbeat is older than :data:`LEASE_TTL`; the next worker takes it over and
re-queues the jobs the dead one was running (it resumes without copying again what arrived).

**Who runs jobs.** ``imagestore worker [--once]``; a command that queued work with
``--no-wait`` (or ``sig image-version wait``) starts a detached ``worker --once`` when no live
worker holds the lease (disabled with ``IMAGESTORE_AUTOSTART_WORKER=0``, for a deployment
that runs ``imagestore worker`` as a service); a synchronous command runs its own version's
jobs inline when it can take the lease, else waits for the worker that holds it.

**Per region** (``version_regions`` row): ``Queued -> Replicating -> Completed | Failed``.
The worker replicates every disk of the version from copy 0 of the source region (where the
capture went) to each of the region's ``regionalReplicaCount`` copies
(:func:`imagestore.regions.replicate_to_region`, placed by ``plan_copies`` per storage account
type), drops copies beyond the count, and marks the row Completed only if its generation did
not change meanwhile. Any error marks it Failed with the error message as ``details``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from ..errors import ImagestoreError, NotFound, from_oserror
from ..regions import replicas
from ..store.cas import BlobStore
from . import db
from .validate import iso, now_utc

LEASE_TTL = 15.0
HEARTBEAT = 1.0
PROGRESS_EVERY = 0.25  # seconds between progress writes to the database
MAX_ATTEMPTS = 10  # claims of one job before it is failed (a job that kills its worker)
ENV_AUTOSTART = "IMAGESTORE_AUTOSTART_WORKER"
LOG_NAME = "worker.log"

#: region progress: (region, state, done bytes, total bytes)
RegionProgress = Callable[[str, str, int, int], None]

_spawned: list[subprocess.Popen] = []  # keeps the Popen objects (reaped by subprocess)


# -- the queue -------------------------------------------------------------------------------


def queue_version_job(con, vpk: int, payload: dict) -> None:
    """Queue a version job (inside the caller's transaction); a job already queued for the
    version absorbs it (its payload merged)."""
    row = con.execute("SELECT id, payload FROM jobs WHERE kind = 'version' AND version_id = ? "
                      "AND state = 'queued' ORDER BY id LIMIT 1", (vpk,)).fetchone()
    if row is not None:
        merged = {**json.loads(row["payload"]), **payload}
        con.execute("UPDATE jobs SET payload = ? WHERE id = ?", (json.dumps(merged), row["id"]))
        return
    con.execute("INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
                "('version', ?, ?, 'queued', ?)", (vpk, json.dumps(payload), iso(now_utc())))


def queue_gc_job(con, region: str, vpk: int | None) -> None:
    if con.execute("SELECT 1 FROM jobs WHERE kind = 'gc' AND state = 'queued' AND "
                   "json_extract(payload, '$.region') = ? COLLATE NOCASE", (region,)).fetchone():
        return
    con.execute("INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
                "('gc', ?, ?, 'queued', ?)", (vpk, json.dumps({"region": region}), iso(now_utc())))


def cancel_version_jobs(con, vpk: int) -> None:
    con.execute("DELETE FROM jobs WHERE kind = 'version' AND version_id = ? AND state = 'queued'",
                (vpk,))


def pending_jobs(con, vpk: int | None = None) -> int:
    if vpk is None:
        return con.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]
    return con.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running') AND "
                       "version_id = ?", (vpk,)).fetchone()[0]


# -- the lease -------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def lease_holder(con) -> dict | None:
    """The live lease holder, or None when nobody (alive) holds the lease."""
    row = con.execute("SELECT * FROM worker_lease WHERE id = 1").fetchone()
    if row is None:
        return None
    fresh = time.time() - row["heartbeat"] < LEASE_TTL
    if row["host"] == socket.gethostname() and not pid_alive(row["pid"]):
        return None
    return dict(row) if fresh else None


def autostart_enabled() -> bool:
    return os.environ.get(ENV_AUTOSTART, "1").strip().lower() not in ("0", "false", "no", "off")


def spawn_worker(root: str) -> subprocess.Popen:
    """Start a detached ``imagestore worker --once`` for the store, logging to worker.log."""
    log = open(os.path.join(root, LOG_NAME), "ab")  # noqa: SIM115 - handed to the child
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "imagestore.cli.main", "--store", root, "worker", "--once"],
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


def ensure_worker(svc) -> subprocess.Popen | None:
    """Start a background worker when jobs are waiting and no live worker holds the lease."""
    if not autostart_enabled() or not pending_jobs(svc.con) or lease_holder(svc.con):
        return None
    if any(p.poll() is None for p in _spawned):
        return None  # one we started is still starting up (or found the lease taken)
    return spawn_worker(svc.home.root)


class Lease:
    """This process's hold on the worker lease, kept fresh by a heartbeat thread."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, con) -> bool:
        with db.transaction(con):
            holder = lease_holder(con)
            if holder is not None and holder["pid"] != self.pid:
                return False
            con.execute("INSERT OR REPLACE INTO worker_lease(id, pid, host, heartbeat, started) "
                        "VALUES (1, ?, ?, ?, ?)",
                        (self.pid, socket.gethostname(), time.time(), iso(now_utc())))
            # only one lease holder at a time: whatever is 'running' belonged to a dead worker
            con.execute("UPDATE jobs SET state = 'queued', worker_pid = NULL WHERE state = 'running'")
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="imagestore-lease", daemon=True)
        self._thread.start()
        return True

    def _beat(self) -> None:
        con = db.connect(self.db_path)
        try:
            while not self._stop.wait(HEARTBEAT):
                try:
                    con.execute("UPDATE worker_lease SET heartbeat = ? WHERE id = 1 AND pid = ?",
                                (time.time(), self.pid))
                except Exception:  # noqa: BLE001 - a busy database: try again next beat
                    pass
        finally:
            con.close()

    def release(self, con) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with db.transaction(con):
            con.execute("DELETE FROM worker_lease WHERE id = 1 AND pid = ?", (self.pid,))


# -- the worker ------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"{iso(now_utc())} worker[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


class Worker:
    def __init__(self, svc, *, verbose: bool = False) -> None:
        self.svc = svc
        self.con = svc.con
        self.lease = Lease(svc.home.db_path)
        self.verbose = verbose

    def log(self, msg: str) -> None:
        if self.verbose:
            _log(msg)

    def _claim(self, only_version: int | None) -> dict | None:
        with db.transaction(self.con):
            sql = "SELECT * FROM jobs WHERE state = 'queued'"
            args: tuple = ()
            if only_version is not None:
                sql += " AND version_id = ?"
                args = (only_version,)
            row = self.con.execute(sql + " ORDER BY id LIMIT 1", args).fetchone()
            if row is None:
                return None
            self.con.execute("UPDATE jobs SET state = 'running', worker_pid = ?, attempts = "
                             "attempts + 1, started = ? WHERE id = ?",
                             (os.getpid(), iso(now_utc()), row["id"]))
            return dict(row)

    def run(self, *, once: bool = True, only_version: int | None = None,
            progress: RegionProgress | None = None, poll: float = 1.0,
            capture_progress=None) -> int:
        """Process queued jobs (holding the lease); returns how many ran. ``once``: stop when
        the queue is empty, else keep polling."""
        n = 0
        while True:
            job = self._claim(only_version)
            if job is None:
                if once:
                    return n
                time.sleep(poll)
                continue
            n += 1
            self.log(f"job {job['id']} {job['kind']} version={job['version_id']} "
                     f"attempt={job['attempts'] + 1}")
            try:
                if job["attempts"] + 1 > MAX_ATTEMPTS:
                    raise ImagestoreError(f"job {job['id']} gave up after {MAX_ATTEMPTS} attempts")
                payload = json.loads(job["payload"] or "{}")
                if job["kind"] == "version":
                    self.process_version(job["version_id"], payload, progress, capture_progress)
                elif job["kind"] == "gc":
                    self.process_gc(payload["region"])
                with db.transaction(self.con):
                    self.con.execute("DELETE FROM jobs WHERE id = ?", (job["id"],))
                self.log(f"job {job['id']} done")
            except Exception as e:  # noqa: BLE001 - recorded on the job and the version
                msg = e.message if isinstance(e, ImagestoreError) else f"{type(e).__name__}: {e}"
                self.log(f"job {job['id']} failed: {msg}")
                with db.transaction(self.con):
                    self.con.execute("DELETE FROM jobs WHERE id = ?", (job["id"],))
                    if job["kind"] == "version" and job["version_id"] is not None:
                        self._fail_version(job["version_id"], msg)

    # -- a version -----------------------------------------------------------------------

    def _fail_version(self, vpk: int, msg: str) -> None:
        """(In a transaction.) Every unfinished region of the version fails with ``msg``."""
        self.con.execute(
            "UPDATE version_regions SET state = 'Failed', details = ?, updated = ? WHERE "
            "version_id = ? AND state IN ('Queued', 'Replicating')", (msg, iso(now_utc()), vpk))
        self._finish(vpk)

    def _finish(self, vpk: int) -> None:
        """(In a transaction.) provisioningState from the regions' states."""
        states = [r[0] for r in self.con.execute(
            "SELECT state FROM version_regions WHERE version_id = ?", (vpk,))]
        if any(s in ("Queued", "Replicating") for s in states):
            return  # re-queued meanwhile: another job follows
        state = "Failed" if any(s == "Failed" for s in states) else "Succeeded"
        self.con.execute("UPDATE versions SET provisioning_state = ? WHERE id = ?", (state, vpk))

    def process_version(self, vpk: int, payload: dict, progress: RegionProgress | None = None,
                        capture_progress=None) -> None:
        svc = self.svc
        row = svc.version_row_by_pk(vpk)
        if row is None:
            return  # deleted meanwhile: delete_version unpublished its copies
        if payload.get("capture") and not svc._disks_of(vpk):
            if not self._capture(row, payload["capture"], capture_progress):
                return
        disks = svc._disks_of(vpk)
        digests = list(dict.fromkeys(d["digest"] for d in disks if d["digest"]))
        regions = svc._regions_of(vpk)
        # the source region first: its copy 0 is where every other copy comes from
        regions = sorted(regions, key=lambda r: r["region"].lower() != row["location"].lower())
        for r in regions:
            if r["state"] in ("Queued", "Replicating"):
                self._replicate_region(row, r["region"], r["gen"], digests, progress)
        with db.transaction(self.con):
            if svc.version_row_by_pk(vpk) is not None:
                self._finish(vpk)

    def _capture(self, row, cap: dict, capture_progress) -> bool:
        svc = self.svc
        vpk = row["id"]
        published: list[str] = []
        store, close = svc.open_source_store(row["location"])
        try:
            self._set_regions(vpk, "Replicating", "capturing the source disks", only_source=row["location"])
            sources = [(int(lun), u, p) for lun, u, p in cap["sources"]]
            try:
                disk_rows = svc._capture(store, sources, threads=int(cap.get("threads") or 2),
                                         progress=capture_progress,
                                         allow_parent_dir=cap.get("allowParentDir"),
                                         published=published)
            except (ImagestoreError, OSError) as e:
                err = e if isinstance(e, ImagestoreError) else from_oserror(e, e.filename or "capture")
                with db.transaction(self.con):
                    self._fail_version(vpk, f"capture failed: {err.message}")
                return False
            with db.transaction(self.con):
                if svc.version_row_by_pk(vpk) is None:  # deleted during the capture
                    for d in published:
                        if not svc._digest_referenced(d):
                            store.remove_manifest(d)
                    return False
                svc._insert_disks(vpk, disk_rows)
            return True
        finally:
            if close:
                store.close()

    def _set_regions(self, vpk: int, state: str, details: str, only_source: str) -> None:
        with db.transaction(self.con):
            self.con.execute("UPDATE version_regions SET state = ?, details = ?, updated = ? "
                             "WHERE version_id = ? AND region = ? AND state = 'Queued'",
                             (state, details, iso(now_utc()), vpk, only_source))

    def _source_for(self, row, digest: str, opened: list[BlobStore]) -> BlobStore:
        """A blob store holding ``digest``: copy 0 of the source region, else any slot of any
        region that has the manifest (a version copied by reference from elsewhere)."""
        svc = self.svc
        cfg = svc.home.config
        names = [row["location"]] + [r.name for r in svc.registry.list()
                                     if r.name.lower() != row["location"].lower()]
        for name in names:
            region = svc.registry.find(name)
            if region is None:
                continue
            for p in replicas.region_slots(region):
                if os.path.exists(os.path.join(p, "manifests", f"{digest}.mf")):
                    s = replicas.open_slot(p, cfg, create=False)
                    opened.append(s)
                    return s
        raise NotFound(f"manifest {digest}: no region holds the version's data (capture lost?)")

    def _replicate_region(self, row, name: str, gen: int, digests: list[str],
                          progress: RegionProgress | None) -> None:
        svc = self.svc
        vpk = row["id"]
        pp = json.loads(row["props"])["publishingProfile"]
        tr = next((t for t in pp["targetRegions"] if t["name"].lower() == name.lower()), None)
        if tr is None:
            return
        copies = int(tr.get("regionalReplicaCount") or 1)
        sku = tr.get("storageAccountType") or pp.get("storageAccountType") or "Standard_LRS"
        opened: list[BlobStore] = []
        where = "WHERE version_id = ? AND region = ? AND gen = ?"
        try:
            region = svc.registry.get(name, "targetRegions")
            sources = [self._source_for(row, d, opened) for d in digests]
            sizes = []
            for s, d in zip(sources, digests, strict=True):
                m = s.load_manifest(d)
                uniq: dict[bytes, int] = {}
                for _off, n, cid in m.extents():
                    uniq.setdefault(cid, n)
                sizes.append(sum(uniq.values()))
            total = sum(sizes) * copies
            with db.transaction(self.con):
                self.con.execute(
                    f"UPDATE version_regions SET state = 'Replicating', progress = 0, details = '', "
                    f"bytes_done = 0, bytes_total = ?, updated = ? {where}",
                    (total, iso(now_utc()), vpk, name, gen))
            if progress:
                progress(name, "Replicating", 0, total)
            self.log(f"replicate version {vpk} to {name}: {len(digests)} disk(s), {copies} "
                     f"cop{'y' if copies == 1 else 'ies'}, {sku}")
            base = 0
            last = [0.0]
            sent = 0

            for s, d, size in zip(sources, digests, sizes, strict=True):
                def cb(done: int, tot: int, base: int = base) -> None:
                    now = time.monotonic()
                    cur = base + done
                    if progress:
                        progress(name, "Replicating", cur, total)
                    if now - last[0] >= PROGRESS_EVERY:
                        last[0] = now
                        pct = min(99, cur * 100 // total) if total else 0
                        with db.transaction(self.con):
                            self.con.execute(
                                f"UPDATE version_regions SET progress = ?, bytes_done = ?, "
                                f"updated = ? {where} AND state = 'Replicating'",
                                (pct, cur, iso(now_utc()), vpk, name, gen))

                results = replicas.replicate_to_region(s, region, d, copies=copies, sku=sku,
                                                       cfg=svc.home.config, progress=cb)
                sent += sum(r.bytes_sent for r in results)
                base += size * copies
            svc.drop_copies(region.name, digests, copies, None)  # fewer copies than before
            with db.transaction(self.con):
                cur = self.con.execute(
                    f"UPDATE version_regions SET state = 'Completed', progress = 100, details = '', "
                    f"bytes_done = ?, bytes_sent = bytes_sent + ?, updated = ? {where}",
                    (total, sent, iso(now_utc()), vpk, name, gen))
                gone = cur.rowcount == 0 and self.con.execute(
                    "SELECT 1 FROM version_regions WHERE version_id = ? AND region = ?",
                    (vpk, name)).fetchone() is None
            if progress:
                progress(name, "Completed", total, total)
            if gone:  # the version was deleted, or the region removed, while copying
                svc.drop_copies(region.name, digests, 0, vpk)
            self.log(f"replicate version {vpk} to {name}: completed, {sent} bytes sent")
        except (ImagestoreError, OSError) as e:
            err = e if isinstance(e, ImagestoreError) else from_oserror(e, e.filename or name)
            self.log(f"replicate version {vpk} to {name}: failed: {err.message}")
            with db.transaction(self.con):
                self.con.execute(
                    f"UPDATE version_regions SET state = 'Failed', details = ?, updated = ? {where}",
                    (err.message, iso(now_utc()), vpk, name, gen))
            if progress:
                progress(name, "Failed", 0, 0)
        finally:
            for s in opened:
                s.close()

    # -- gc ------------------------------------------------------------------------------

    def process_gc(self, region_name: str) -> None:
        region = self.svc.registry.find(region_name)
        if region is None:
            return
        rep = replicas.gc_region(region)
        self.log(f"gc {region.name}: {rep}")


# -- entry points ----------------------------------------------------------------------------


def run_worker(svc, *, once: bool, verbose: bool = True) -> dict:
    """``imagestore worker``: take the lease (or report who holds it) and run jobs."""
    w = Worker(svc, verbose=verbose)
    if not w.lease.acquire(svc.con):
        holder = lease_holder(svc.con) or {}
        w.log(f"another worker (pid {holder.get('pid')}) holds the lease; exiting")
        return {"ran": 0, "leaseHeldBy": holder.get("pid")}
    ran = 0
    while True:
        try:
            ran += w.run(once=once)
        finally:
            w.lease.release(svc.con)
        # A command that queued work just before the release saw the lease held and started
        # no worker: look again after releasing, and carry on if there is work.
        if not pending_jobs(svc.con) or not w.lease.acquire(svc.con):
            break
    return {"ran": ran, "leaseHeldBy": None, "pending": pending_jobs(svc.con)}


def run_inline(svc, vpk: int, *, progress=None) -> None:
    """Do the queued work of one version now, in this process (synchronous commands): as the
    lease holder when the lease is free, else by waiting for the worker that holds it."""
    region_cb, capture_cb = _progress_adapters(progress)
    w = Worker(svc)
    try:
        if w.lease.acquire(svc.con):
            try:
                w.run(once=True, only_version=vpk, progress=region_cb, capture_progress=capture_cb)
            finally:
                w.lease.release(svc.con)
            ensure_worker(svc)  # other commands' work, if any, goes on in the background
            return
        follow(svc, vpk, progress=region_cb)
    finally:
        if region_cb is not None:
            region_cb.close()


def follow(svc, vpk: int, *, progress: RegionProgress | None = None, interval: float = 0.2,
           timeout: float | None = None) -> None:
    """Poll until the version has no queued or running job, starting a worker when none is
    alive; progress from the database rows."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending_jobs(svc.con, vpk):
        ensure_worker(svc)
        if progress is not None:
            for r in svc._regions_of(vpk):
                progress(r["region"], r["state"], r["bytes_done"], r["bytes_total"])
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval)
    if progress is not None:
        for r in svc._regions_of(vpk):
            progress(r["region"], r["state"], r["bytes_done"], r["bytes_total"])


class RegionBars:
    """Region progress -> one progress bar per region from a factory (label -> bar)."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.bars: dict[str, object] = {}
        self.closed: set[str] = set()
        self.active: set[str] = set()  # seen queued or replicating: worth a bar at the end

    def __call__(self, region: str, state: str, done: int, total: int) -> None:
        if region in self.closed:
            return
        if state == "Queued":
            self.active.add(region)
            return
        if state == "Replicating":
            self.active.add(region)
        if region not in self.bars and region not in self.active:
            return  # completed (or failed) before we looked: nothing to show
        bar = self.bars.get(region)
        if bar is None:
            bar = self.bars[region] = self.factory(f"replicate {region}")
        if total:
            bar(done, total)
        if state in ("Completed", "Failed"):
            bar.close()
            self.closed.add(region)

    def close(self) -> None:
        for region, bar in self.bars.items():
            if region not in self.closed:
                bar.close()
                self.closed.add(region)


def _progress_adapters(factory):
    if factory is None:
        return None, None
    return RegionBars(factory), factory
