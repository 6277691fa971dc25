"""Replica copies in a region: where they live, reading with fail-over, and repair.

``regionalReplicaCount`` is the number of **independent copies** of a version's data that a
region keeps. Each copy lives in its own *copy slot*, a complete blob store (packs, index,
manifests), so damage to one copy (a flipped bit, a lost pack, a lost index row) never
touches another.

**Slots.** A region has zones ``Z0 … Zn-1`` (directories). Slot ``k`` of zone ``z`` is the zone
directory itself for ``k == 0`` and ``z/copies/k`` for ``k > 0``. Copy ``i`` of a version goes
to zone ``i % n``, slot ``i // n`` -- the zones are filled round-robin, so the first ``n``
copies land in distinct zones and every zone's own blob store is used first.

**Storage account types** (observable effects):

* ``Standard_LRS``: copies placed as above; with fewer zones than copies, some zones hold more
  than one copy (in separate slots).
* ``Standard_ZRS``: every copy in a distinct zone (``copy i -> zone i``); refused with
  :class:`InvalidArgument` naming the region and both counts when the region has fewer zones
  than copies.
* ``Premium_LRS``: placed like LRS, and every chunk of the version is stored **uncompressed**
  in each slot (compressed records are decoded and rewritten raw), so disk creation copies
  bytes without decompressing: stored bytes == raw bytes + 32-byte record headers.

**Fail-over reads.** :func:`read_chunk_failover` reads a chunk from the first copy that has a
good one (index row present, pack present, header and hash check pass) and falls over to the
next on :class:`IntegrityError` or an I/O error. ``materialize(..., read_chunk=
failover_reader(slots))`` creates a disk as long as every chunk has one good copy;
:func:`materialize_from_copies` wraps that, holding the shared lock on every slot.

**Repair.** A bad (hash mismatch, damaged header, lost pack) or missing chunk of a slot is
rewritten from a good copy (another slot of the region, or any other store passed as a source)
into a **new** pack of the damaged slot, which is fsynced; then the index row is repointed in
one transaction (``INSERT OR REPLACE``). Packs are never rewritten in place: the bad record
becomes dead space that ``store gc`` compacts away. A damaged or missing manifest is restored
from a good copy by an atomic rename, after its chunks. Afterwards ``verify`` of every slot is
clean unless some chunk had no good copy anywhere (reported as ``unrepairable``).

**A damaged index** (missing, empty, malformed) of a slot is damage of that copy. Repair first
rebuilds it from the slot's own packs (``store/rebuild.py``: a new file renamed over the old,
never in place), then fetches whatever the packs lacked (damaged records) from a good copy
like any missing chunk. A copy's index cannot be taken from another copy: rows name packs
and offsets of their own slot.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field

from ..errors import ImagestoreError, IntegrityError, InvalidArgument, NotFound
from ..store import index, manifest
from ..store.cas import BlobStore
from ..store.container import ContainerStore
from ..store.container_gc import gc_container
from ..store.layout import CasConfig
from ..store.maintenance import gc, verify
from ..store.materialize import MaterializeResult, materialize
from ..store.packs import FLAG_COMPRESSED, REC, decode_record
from ..store.rebuild import rebuild_index
from . import blobzones
from .registry import Region, RegionRegistry
from .replicate import RecordSink, ReplicateResult, replicate

STORAGE_ACCOUNT_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS")
MAX_REPLICAS = 100
Progress = Callable[[int, int], None]


# -- placement ---------------------------------------------------------------------------


def storage_account_type(value: str, field: str = "--storage-account-type") -> str:
    for t in STORAGE_ACCOUNT_TYPES:
        if str(value).lower() == t.lower():
            return t
    raise InvalidArgument(f"{field}: '{value}' is not one of {', '.join(STORAGE_ACCOUNT_TYPES)}")


def slot_path(zone: str, k: int) -> str:
    if blobzones.is_blob(zone):
        return blobzones.slot_url(zone, k)
    return zone if k == 0 else os.path.join(zone, "copies", str(k))


def plan_copies(region: Region, copies: int, sku: str = "Standard_LRS") -> list[str]:
    """The slot directory of each copy, in copy order."""
    sku = storage_account_type(sku)
    if not isinstance(copies, int) or not 1 <= copies <= MAX_REPLICAS:
        raise InvalidArgument(f"--copies: {copies} must be between 1 and {MAX_REPLICAS}")
    n = len(region.zones)
    if sku == "Standard_ZRS" and region.storage == blobzones.STORAGE:
        # zone-redundant in blob storage: every copy in a distinct storage account
        per_account: dict[str, str] = {}
        for z in region.zones:
            per_account.setdefault(blobzones.account_of(z), z)
        if copies > len(per_account):
            raise InvalidArgument(
                f"region '{region.name}': Standard_ZRS keeps each of {copies} copies in a "
                f"distinct storage account, but the region's containers are in "
                f"{len(per_account)} account(s)"
            )
        return list(per_account.values())[:copies]
    if sku == "Standard_ZRS" and copies > n:
        raise InvalidArgument(
            f"region '{region.name}': Standard_ZRS keeps each of {copies} copies in a distinct "
            f"zone, but the region has {n} zone(s)"
        )
    return [slot_path(region.zones[i % n], i // n) for i in range(copies)]


def open_slot(path: str, cfg: CasConfig, *, create: bool = True) -> BlobStore:
    if blobzones.is_blob(path):
        return blobzones.open_blob_slot(path, cfg, create=create)
    if os.path.exists(os.path.join(path, "cas.json")):
        return BlobStore.open(path)
    if not create:
        raise NotFound(f"{path}: no copy here")
    return BlobStore.create(path, cfg)


def missing_zones(region: Region) -> list[str]:
    """Zones whose blob store is not there (a disk not mounted, a directory removed, a
    container emptied)."""
    if region.storage == blobzones.STORAGE:
        return [z for z in region.zones if not blobzones.zone_present(z)]
    return [z for z in region.zones if not os.path.exists(os.path.join(z, "cas.json"))]


def check_zones(region: Region, paths: list[str]) -> None:
    """Refuse to place copies in a zone whose blob store is gone: writing there would fill
    the empty mount point instead of the disk meant to hold the zone."""
    gone = set(missing_zones(region))
    for p in paths:
        zone = (blobzones.zone_of(p)[0] if region.storage == blobzones.STORAGE else
                next(z for z in region.zones if p == z or p.startswith(z + os.sep)))
        if zone in gone:
            raise NotFound(
                f"region '{region.name}': zone {zone} has no blob store (missing or not mounted)"
            )


def region_slots(region: Region) -> list[str]:
    """The slot directories that exist in a region, in placement order (slot k of every zone,
    then slot k + 1)."""
    found: list[tuple[int, int, str]] = []
    if region.storage == blobzones.STORAGE:
        for z, zone in enumerate(region.zones):
            if blobzones.zone_present(zone):
                found.append((0, z, zone))
            found += [(k, z, url) for k, url in blobzones.copy_slots(zone)]
        return [p for _k, _z, p in sorted(found)]
    for z, zone in enumerate(region.zones):
        if os.path.exists(os.path.join(zone, "cas.json")):
            found.append((0, z, zone))
        try:
            names = os.listdir(os.path.join(zone, "copies"))
        except OSError:
            continue
        for n in names:
            if n.isdigit() and int(n) > 0:
                p = slot_path(zone, int(n))
                if os.path.exists(os.path.join(p, "cas.json")):
                    found.append((int(n), z, p))
    return [p for _k, _z, p in sorted(found)]


def replicate_to_region(
    src: BlobStore,
    region: Region,
    digest: str,
    *,
    copies: int = 1,
    sku: str = "Standard_LRS",
    cfg: CasConfig | None = None,
    progress: Progress | None = None,
    threads: int = 2,
) -> list[ReplicateResult]:
    """Make ``copies`` copies of the disk ``digest`` in ``region``, one per slot as placed by
    :func:`plan_copies`. Each copy is an independent, resumable :func:`replicate`."""
    sku = storage_account_type(sku)
    paths = plan_copies(region, copies, sku)
    check_zones(region, paths)
    cfg = cfg or src.cfg
    results: list[ReplicateResult] = []
    for i, p in enumerate(paths):
        dst = open_slot(p, cfg)
        try:
            cb = None
            if progress is not None:
                def cb(done: int, total: int, i: int = i) -> None:
                    progress(i * total + done, len(paths) * total)
            results.append(replicate(src, dst, digest, progress=cb,
                                     premium=sku == "Premium_LRS", threads=threads))
        finally:
            dst.close()
    return results


def remove_copies(region: Region, digest: str, *, keep: int = 0) -> list[str]:
    """Unpublish the disk ``digest`` from every slot of ``region`` except those of its first
    ``keep`` copies (placement order; ``keep=0`` removes it from the region). Its chunks become
    garbage for ``gc`` unless another manifest of the slot uses them. Returns the slots the
    manifest was removed from."""
    kept = set(plan_copies(region, keep)) if keep else set()
    removed: list[str] = []
    for p in region_slots(region):
        if p in kept:
            continue
        s = open_slot(p, CasConfig(), create=False) if blobzones.is_blob(p) else BlobStore.open(p)
        try:
            if s.remove_manifest(digest):
                removed.append(p)
        finally:
            s.close()
    return removed


def gc_region(region: Region, *, timeout: float = 600.0, dry_run: bool = False) -> list[dict]:
    """``store gc`` on every slot of the region; one report per slot."""
    out: list[dict] = []
    for p in region_slots(region):
        s = open_slot(p, CasConfig(), create=False) if blobzones.is_blob(p) else BlobStore.open(p)
        try:
            collect = gc_container if blobzones.is_blob(p) else gc
            out.append({"slot": p, **collect(s, timeout=timeout, dry_run=dry_run).to_json()})
        finally:
            s.close()
    return out


# -- fail-over reads ---------------------------------------------------------------------


def read_chunk_failover(slots: list[BlobStore], cid: bytes) -> bytes:
    """The verified bytes of chunk ``cid`` from the first copy that has a good one."""
    errors: list[str] = []
    for s in slots:
        try:
            return s.read_chunk(cid)
        except IntegrityError as e:
            errors.append(str(e))
        except OSError as e:
            errors.append(f"{s.root}: {e.strerror or e}")
        except sqlite3.DatabaseError as e:  # a damaged or lost index: use another copy
            errors.append(f"{s.index_path}: {e}")
    raise IntegrityError(
        f"chunk {cid.hex()}: no good copy in {len(slots)} cop{'y' if len(slots) == 1 else 'ies'}"
        + (f" ({'; '.join(errors[:2])})" if errors else "")
    )


def failover_reader(slots: list[BlobStore]) -> Callable[[bytes], bytes]:
    """A ``read_chunk`` for :func:`~imagestore.store.materialize.materialize`."""
    return functools.partial(read_chunk_failover, list(slots))


def _first_manifest(slots: Iterable[BlobStore], digest: str) -> tuple[BlobStore, manifest.Manifest]:
    err: ImagestoreError | None = None
    for s in slots:
        try:
            return s, s.load_manifest(digest)
        except (NotFound, IntegrityError) as e:
            err = err or e
    if isinstance(err, IntegrityError):
        raise IntegrityError(f"manifest {digest}: no good copy ({err})")
    raise NotFound(f"manifest {digest}: no such disk content in any copy")


def materialize_from_copies(slots: list[BlobStore], digest: str, path: str, **kw) -> MaterializeResult:
    """Create a disk from whichever copies are good, chunk by chunk."""
    if not slots:
        raise NotFound(f"manifest {digest}: no copies to read from")
    digest = slots[0].check_digest(digest)
    with ExitStack() as st:
        for s in slots:
            st.enter_context(s.lock(exclusive=False))
        primary, _m = _first_manifest(slots, digest)
        return materialize(primary, digest, path, read_chunk=failover_reader(slots), **kw)


# -- repair ------------------------------------------------------------------------------


@dataclass
class RepairReport:
    slots: list[str]
    chunks_checked: int = 0
    repaired_chunks: list[dict] = field(default_factory=list)
    repaired_manifests: list[dict] = field(default_factory=list)
    unrepairable: list[dict] = field(default_factory=list)
    rebuilt_indexes: list[dict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.unrepairable

    def to_json(self) -> dict:
        return {
            "slots": self.slots,
            "chunksChecked": self.chunks_checked,
            "rebuiltIndexes": self.rebuilt_indexes,
            "repairedChunks": self.repaired_chunks,
            "repairedManifests": self.repaired_manifests,
            "unrepairable": self.unrepairable,
            "clean": self.clean,
        }


def _good_record(sources: list[BlobStore], cid: bytes, exclude: BlobStore) -> tuple[bytes, str] | None:
    """A verified record of ``cid`` from any source other than ``exclude``."""
    for s in sources:
        if s is exclude or os.path.realpath(s.root) == os.path.realpath(exclude.root):
            continue
        try:
            loc = index.lookup(s.con, cid)
            if loc is None:
                continue
            buf = s.read_record_raw(cid, loc)
            decode_record(buf, cid, s.root)
        except (IntegrityError, OSError, sqlite3.DatabaseError):
            continue
        return buf, s.root
    return None


def _fix_chunks(slot: BlobStore, todo: dict[bytes, str], sources: list[BlobStore],
                rep: RepairReport) -> None:
    """Rewrite the chunks ``todo`` (id -> "bad"|"missing") of ``slot`` from good copies."""
    if not todo:
        return
    old = index.lookup_many(slot.con, todo)
    sink = RecordSink(slot, replace=True)
    ok = False
    try:
        for cid, why in todo.items():
            got = _good_record(sources, cid, slot)
            if got is None:
                rep.unrepairable.append({"slot": slot.root, "chunk": cid.hex(), "problem": why,
                                         "error": "no good copy in any other slot"})
                continue
            buf, origin = got
            _magic, flags, raw_len, _sl, _id = REC.unpack_from(buf)
            payload: bytes | memoryview = memoryview(buf)[REC.size:]
            if flags & FLAG_COMPRESSED and cid in old and not old[cid][4] & FLAG_COMPRESSED:
                # the slot kept this chunk uncompressed (Premium): keep it that way
                payload, flags = decode_record(buf, cid, origin), 0
            sink.add(cid, raw_len, payload, flags)
            rep.repaired_chunks.append({"slot": slot.root, "chunk": cid.hex(), "problem": why,
                                        "from": origin})
        sink.flush()
        ok = True
    finally:
        if not ok:
            sink.abort()


def _fix_manifest(slot: BlobStore, digest: str, m: manifest.Manifest, origin: str,
                  rep: RepairReport) -> None:
    slot.write_manifest(digest, manifest.compress(m.encode()))
    rep.repaired_manifests.append({"slot": slot.root, "manifest": digest, "from": origin})


def repair(slots: list[BlobStore], digests: list[str] | None = None, *,
           sources: list[BlobStore] | None = None) -> RepairReport:
    """Restore every copy of the given disks (``None``: every manifest found in any slot; a
    slot is then repaired only for the manifests it holds, since a slot need not hold every
    version of the region) from good copies in ``slots`` and ``sources``."""
    sources = list(slots) + [s for s in (sources or []) if s not in slots]
    rep = RepairReport([s.root for s in slots])
    for s in slots:  # before the shared locks below: a rebuild takes the exclusive one
        if index.problem(s.index_path) is not None:
            _rebuild(s, rep)
    with ExitStack() as st:
        for s in sources:
            st.enter_context(s.lock(exclusive=False))
        if digests is None:
            names = sorted({d for s in slots for d in s.list_manifests()})
            targets = {d: [s for s in slots if d in s.list_manifests()] for d in names}
        else:
            targets = {slots[0].check_digest(d): list(slots) for d in digests}
        wanted: dict[int, dict[bytes, None]] = {id(s): {} for s in slots}
        fix_mf: list[tuple[BlobStore, str, manifest.Manifest, str]] = []
        for d, tslots in targets.items():
            try:
                good, m = _first_manifest(sources, d)
            except ImagestoreError as e:
                for s in tslots:
                    rep.unrepairable.append({"slot": s.root, "manifest": d, "error": str(e)})
                continue
            for s in tslots:
                try:
                    s.load_manifest(d)
                except (NotFound, IntegrityError):
                    fix_mf.append((s, d, m, good.root))
                wanted[id(s)].update(dict.fromkeys(m.ids()))
        for s in slots:
            ids = wanted[id(s)]
            locs = index.lookup_many(s.con, ids)
            todo: dict[bytes, str] = {}
            for cid in ids:
                rep.chunks_checked += 1
                if cid not in locs:
                    todo[cid] = "missing"
                    continue
                try:
                    s.read_chunk(cid, locs[cid])
                except (IntegrityError, OSError):
                    todo[cid] = "bad"
            _fix_chunks(s, todo, sources, rep)
        for s, d, m, origin in fix_mf:  # manifests last: their chunks are in place now
            _fix_manifest(s, d, m, origin, rep)
    return rep


def _rebuild(slot: BlobStore, rep: RepairReport, label: dict | None = None) -> None:
    if isinstance(slot, ContainerStore):
        rb = slot.rebuild_cache()
    else:
        rb = rebuild_index(slot).to_json()
    rb.pop("store")
    rep.rebuilt_indexes.append({**(label or {}), "slot": slot.root, **rb})


def copy_number(region: Region, path: str) -> int:
    """Which copy of the region a slot directory holds (copy i: zone i mod n, slot i div n)."""
    n = len(region.zones)
    if region.storage == blobzones.STORAGE:
        zone, k = blobzones.zone_of(path)
        return k * n + region.zones.index(zone)
    for z, zone in enumerate(region.zones):
        if path == zone:
            return z
        prefix = os.path.join(zone, "copies") + os.sep
        if path.startswith(prefix) and path[len(prefix):].isdigit():
            return int(path[len(prefix):]) * n + z
    raise ValueError(path)


def verify_region(registry: RegionRegistry, name: str, *, repair_copies: bool = False,
                  progress: Progress | None = None) -> dict:
    """``verify`` every slot of a region; with ``repair_copies`` rewrite every bad or missing
    chunk and every bad manifest from a good copy (another slot of the region first, then any
    other region), then verify again. Returns the report; ``clean`` tells the outcome."""
    region = registry.get(name)
    cfg = registry.home.config
    slots = [open_slot(p, cfg, create=False) for p in region_slots(region)]
    labels = [{"region": region.name, "copy": copy_number(region, s.root)} for s in slots]
    others: list[BlobStore] = []
    try:
        reports = [verify(s, progress=progress) for s in slots]
        rep = RepairReport([s.root for s in slots])
        if repair_copies and not all(r.clean for r in reports):
            # a damaged index first: rebuilt from the slot's packs (exclusive lock, so before
            # the shared locks below), then verified again to find what the packs lacked
            for i, (s, vr) in enumerate(zip(slots, reports, strict=True)):
                if vr.index_error is not None:
                    _rebuild(s, rep, labels[i])
                    reports[i] = verify(s, progress=progress)
            for r in registry.list():
                if r.name != region.name:
                    others += [open_slot(p, cfg, create=False) for p in region_slots(r)]
            sources = slots + others
            with ExitStack() as st:
                for s in sources:
                    st.enter_context(s.lock(exclusive=False))
                for s, vr in zip(slots, reports, strict=True):
                    todo = {bytes.fromhex(b["chunk"]): "bad" for b in vr.bad_chunks}
                    for b in vr.missing_chunks:
                        todo.setdefault(bytes.fromhex(b["chunk"]), "missing")
                    rep.chunks_checked += vr.chunks_checked
                    _fix_chunks(s, todo, sources, rep)
                    for bm in vr.bad_manifests:
                        try:
                            good, m = _first_manifest([x for x in sources if x is not s], bm["manifest"])
                        except ImagestoreError as e:
                            rep.unrepairable.append({"slot": s.root, "manifest": bm["manifest"],
                                                     "error": str(e)})
                            continue
                        _fix_manifest(s, bm["manifest"], m, good.root, rep)
            reports = [verify(s, progress=progress) for s in slots]
        gone = missing_zones(region)
        return {
            "region": region.name,
            "clean": all(r.clean for r in reports) and not gone,
            "missingZones": gone,
            "slots": [{**lb, **r.to_json()} for lb, r in zip(labels, reports, strict=True)],
            "repair": rep.to_json() if repair_copies else None,
        }
    finally:
        for s in slots + others:
            s.close()
