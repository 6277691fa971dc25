"""Bringing a version's target regions to their copies: the work behind a ``version`` job
(and the capture a ``no_wait`` create queued), and the ``gc`` job of a region.

The work is a *reconciliation*: running it twice, or after a crash, is harmless. The copy
engine skips chunks a region has, adopts what a killed run wrote, and publishes a manifest
only once its chunks are there. Per region (``version_regions`` row) the states go
``Queued -> Replicating -> Completed | Failed``: every disk of the version is replicated from
copy 0 of the source region (where the capture went) to each of the region's
``regionalReplicaCount`` copies (placed by ``plan_copies`` per storage account type), copies
beyond the count are dropped, and the row is marked Completed only if its generation did not
change meanwhile. Any error marks it Failed with the error message as ``details``.

Who runs it (a background worker, or a command inline) is :mod:`imagestore.worker`'s business.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import ImagestoreError, from_oserror
from ..home import Home
from ..regions import replicas
from ..store.cas import BlobStore
from . import capture
from .capture_intents import CaptureIntent
from .placement import Placement
from .progress import Observer, ProgressEvent, TaskKind
from .repository import ReplicationState, Repository, VersionRow

PROGRESS_EVERY = 0.25  # seconds between progress writes to the database

Log = Callable[[str], None]


def error_message(e: BaseException, what: str) -> str:
    """The one-line message of an error met while doing queued work."""
    if isinstance(e, ImagestoreError):
        return e.message
    if isinstance(e, OSError):
        return from_oserror(e, e.filename or what).message
    return f"{type(e).__name__}: {e}"


class Replication:
    """The queued work of versions and regions."""

    def __init__(self, home: Home, repo: Repository, placement: Placement, *,
                 log: Log | None = None) -> None:
        self.home = home
        self.repo = repo
        self.placement = placement
        self.log: Log = log or (lambda _msg: None)

    # -- a version ---------------------------------------------------------------------------

    def process_version(self, vpk: int, payload: dict, observer: Observer | None = None) -> None:
        """Run a version job: the queued capture (if any), then every pending region, the
        source region first; then settle provisioningState."""
        row = self.repo.version_by_pk(vpk)
        if row is None:
            return  # deleted meanwhile: the deletion unpublished its copies
        cap = payload.get("capture")
        if cap:
            have = {d.lun for d in self.repo.disks_of(vpk)}
            want = {int(src[0]) for src in cap["sources"]}
            # disks from snapshots were recorded at creation; the files are captured here
            if not want <= have and not self._capture(row, cap, observer):
                return
        disks = self.repo.disks_of(vpk)
        digests = list(dict.fromkeys(d.digest for d in disks if d.digest))
        regions = self.repo.regions_of(vpk)
        # the source region first: its copy 0 is where every other copy comes from
        regions.sort(key=lambda r: r.region.lower() != row.location.lower())
        for r in regions:
            if r.replication_state.pending:
                self.replicate_region(row, r.region, r.gen, digests, observer)
        with self.repo.transaction():
            if self.repo.version_by_pk(vpk) is not None:
                self.repo.settle_version(vpk)

    def fail_version(self, vpk: int, message: str) -> None:
        """Every unfinished region of the version fails with ``message``."""
        with self.repo.transaction():
            if self.repo.version_by_pk(vpk) is not None:
                self.repo.fail_unfinished(vpk, message)

    def _capture(self, row: VersionRow, cap: dict, observer: Observer | None) -> bool:
        """The capture a ``no_wait`` create queued; False when the version is gone or the
        capture failed (the version is then Failed)."""
        vpk = row.id
        published = CaptureIntent(self.repo, self.placement, row.location)  # named until the disks commit
        store, close = self.placement.open_source_store(row.location)
        try:
            with self.repo.transaction():
                self.repo.mark_capturing(vpk, row.location, "capturing the source disks")
            sources = [capture.Source.from_json(s) for s in cap["sources"]]
            try:
                domain = self.placement.capture_domain(row.rg)
                disks = capture.capture(store, sources, threads=int(cap.get("threads") or 2),
                                        observer=observer,
                                        allow_parent_dir=cap.get("allowParentDir"),
                                        published=published,
                                        source_format=cap.get("sourceFormat") or "auto",
                                        domain=domain)
            except (ImagestoreError, OSError) as e:
                published.abandon(store)
                self.fail_version(vpk, f"capture failed: {error_message(e, 'capture')}")
                return False
            with self.repo.transaction():
                gone = self.repo.version_by_pk(vpk) is None  # deleted during the capture
                if not gone:
                    self.repo.insert_disks(vpk, disks)
                    published.end()
            if gone:
                published.abandon(store)
            return not gone
        finally:
            if close:
                store.close()

    def _sizes(self, sources: list[BlobStore], digests: list[str]) -> list[int]:
        """Bytes of the distinct chunks of each disk (what a copy needs at most)."""
        sizes = []
        for s, d in zip(sources, digests, strict=True):
            uniq: dict[bytes, int] = {}
            for _off, n, cid in s.load_manifest(d).extents():
                uniq.setdefault(cid, n)
            sizes.append(sum(uniq.values()))
        return sizes

    def replicate_region(self, row: VersionRow, name: str, gen: int, digests: list[str],
                         observer: Observer | None = None) -> None:
        """Bring region ``name`` (generation ``gen``) of the version to its copies; failures
        are recorded on the region, not raised."""
        vpk = row.id
        pp = row.properties["publishingProfile"]
        tr = next((t for t in pp["targetRegions"] if t["name"].lower() == name.lower()), None)
        if tr is None:
            return
        copies = int(tr.get("regionalReplicaCount") or 1)
        sku = tr.get("storageAccountType") or pp.get("storageAccountType") or "Standard_LRS"

        def emit(state: ReplicationState, done: int, total: int) -> None:
            if observer is not None:
                observer(ProgressEvent(TaskKind.REPLICATE, name, done, total, state=state.value,
                                       final=not state.pending))

        opened: list[BlobStore] = []
        try:
            region = self.placement.region(name, "targetRegions")
            for d in digests:
                opened.append(self.placement.store_holding(d, row.location))
            sizes = self._sizes(opened, digests)
            total = sum(sizes) * copies
            with self.repo.transaction():
                self.repo.begin_replication(vpk, name, gen, total)
            emit(ReplicationState.REPLICATING, 0, total)
            self.log(f"replicate version {vpk} to {name}: {len(digests)} disk(s), {copies} "
                     f"cop{'y' if copies == 1 else 'ies'}, {sku}")
            base = 0
            last = [0.0]
            sent = 0
            for s, d, size in zip(opened, digests, sizes, strict=True):
                def cb(done: int, _tot: int, base: int = base) -> None:
                    now = time.monotonic()
                    cur = base + done
                    emit(ReplicationState.REPLICATING, cur, total)
                    if now - last[0] >= PROGRESS_EVERY:
                        last[0] = now
                        pct = min(99, cur * 100 // total) if total else 0
                        with self.repo.transaction():
                            self.repo.record_progress(vpk, name, gen, pct, cur)

                results = replicas.replicate_to_region(s, region, d, copies=copies, sku=sku,
                                                       cfg=self.home.config, progress=cb)
                sent += sum(r.bytes_sent for r in results)
                base += size * copies
            self.placement.drop_copies(region.name, digests, copies, None)  # fewer than before
            with self.repo.transaction():
                ok = self.repo.complete_replication(vpk, name, gen, total, sent)
                gone = not ok and self.repo.region_of(vpk, name) is None
            emit(ReplicationState.COMPLETED, total, total)
            if gone:  # the version was deleted, or the region removed, while copying
                self.placement.drop_copies(region.name, digests, 0, vpk)
            self.log(f"replicate version {vpk} to {name}: completed, {sent} bytes sent")
        except (ImagestoreError, OSError) as e:
            msg = error_message(e, name)
            self.log(f"replicate version {vpk} to {name}: failed: {msg}")
            with self.repo.transaction():
                self.repo.fail_replication(vpk, name, gen, msg)
            emit(ReplicationState.FAILED, 0, 0)
        finally:
            for s in opened:
                s.close()

    # -- gc ----------------------------------------------------------------------------------

    def gc_region(self, region_name: str) -> list[dict]:
        """Reclaim the space of copies removed from a region (``store gc`` of every slot)."""
        region = self.placement.registry.find(region_name)
        if region is None:
            return []
        rep = replicas.gc_region(region)
        self.log(f"gc {region.name}: {rep}")
        return rep
