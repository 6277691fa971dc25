"""Snapshots (``Microsoft.Compute/snapshots``): a point-in-time copy of a disk's bytes, kept
in the store.

**Create** reads the source disk's file *as it is now* (the user may have run a VM on it and
changed it since ``disk create``) and captures it into copy 0 of the disk's region: only
chunks the store lacks are written, so a snapshot of an unchanged disk stores nothing new. A
snapshot of a snapshot shares its manifest (no bytes read). The file must stay unchanged
while it is read (else ``SourceChanged``, nothing published). The snapshot row is inserted in
one transaction after the capture; a failure removes the manifest it published.

**Delete** removes the row, then unpublishes the manifest unless a version, another snapshot
or a managed image still uses it; its chunks are then garbage for ``store gc``. Deleting the
source disk later is fine: the snapshot has its own bytes.
"""

from __future__ import annotations

import uuid

from ..errors import Conflict, IntegrityError, InvalidArgument
from . import arm_disk, arm_snapshot, capture, resources, sources, validate
from .capture_intents import CaptureIntent
from .placement import Placement
from .progress import Observer
from .repository import Repository
from .validate import iso, now_utc
from .versions import DEFAULT_LOCATION

_SOURCE = "properties.creationData.sourceResourceId"
_LOCATION = "location"
_SKU = "sku.name"


class Snapshots:
    """The snapshot operations over the repository."""

    def __init__(self, repo: Repository, placement: Placement) -> None:
        self.repo = repo
        self.placement = placement

    def create(self, rg: str, name: str, source: str, *, incremental: bool = False,
               location: str | None = None, sku: str | None = None, tags: dict | None = None,
               os_type: str | None = None, hyper_v_generation: str | None = None,
               observer: Observer | None = None, threads: int = 2) -> dict:
        """Snapshot the disk (or snapshot) ``source`` (name in ``rg`` or ARM id), or import a
        disk image file (``file://`` URI: ``createOption`` Import). ``os_type`` and
        ``hyper_v_generation`` set (or override) what the snapshot says of its OS. Returns
        the snapshot's JSON."""
        validate.resource_group(rg)
        validate.disk_name(name, "snapshotName")
        os_type = validate.enum("properties.osType", os_type, validate.OS_TYPES)
        hyper_v_generation = validate.enum("properties.hyperVGeneration", hyper_v_generation,
                                           validate.HYPER_V_GENERATIONS)
        sku = validate.enum(_SKU, sku or arm_snapshot.DEFAULT_SKU, tuple(arm_snapshot.SKUS))
        tags = tags or {}
        if self.repo.find_snapshot(rg, name):
            raise Conflict(f"snapshot '{name}' already exists in resource group '{rg}'",
                           target="snapshotName")
        if sources.is_uri(source):  # Import: a disk image file, in the region asked for
            src = sources.file_source(source, self.placement.require_region(
                location or DEFAULT_LOCATION), field=_SOURCE)
            src.disk_file(_SOURCE)
        else:
            src = sources.resolve(self.repo, source, rg, field=_SOURCE)
        if location is not None:
            loc = self.placement.require_region(location)
            if loc.lower() != src.location.lower():
                raise InvalidArgument(
                    f"{_LOCATION}: a snapshot is kept in the region of its source: "
                    f"{src.label} is in '{src.location}', not '{loc}'", target=_LOCATION)
        location = self.placement.require_region(src.location)
        store, close_store = self.placement.open_source_store(location)
        published = CaptureIntent(self.repo, self.placement, location)  # named until the row commits
        try:
            if src.kind == "snapshot":
                s = src.row
                digest, vsize, alloc, data, fmt = (s.digest, s.virtual_size, s.allocated_bytes,
                                                   s.data_bytes, s.source_format)
                stored = 0
                source_path = s.properties.get("localStorage", {}).get("sourcePath")
            else:
                source_path, sfmt = src.disk_file(_SOURCE)
                res = capture.capture_file(
                    store, source_path, source_format=sfmt, allow_parent_dir=src.parent_dir,
                    label=f"snapshot {name}", threads=threads, observer=observer,
                    published=published,
                    domain=self.placement.capture_domain(rg))
                digest, vsize, alloc, data, stored, fmt = (
                    res.digest, res.virtual_size, res.allocated_bytes, res.data_bytes,
                    res.stored_bytes, res.source_format)
            props = self._properties(src, vsize, incremental, sku, {
                "manifestDigest": digest, "virtualSize": vsize, "allocatedBytes": alloc,
                "dataBytes": data, "storedBytes": stored, "sourceFormat": fmt,
                "sourcePath": source_path}, os_type, hyper_v_generation)
            with self.repo.transaction():
                if self.repo.find_snapshot(rg, name):
                    raise Conflict(f"snapshot '{name}' already exists in resource group "
                                   f"'{rg}'", target="snapshotName")
                if not store.has_manifest(digest):
                    raise IntegrityError(
                        f"manifest {digest} is missing from region '{location}' (removed by "
                        f"a concurrent deletion?); run the command again")
                self.repo.insert_snapshot(
                    rg, name, location, tags, props, digest=digest, virtual_size=vsize,
                    allocated_bytes=alloc, data_bytes=data, stored_bytes=stored,
                    source_format=fmt, source_id=src.id)
                published.end()
        except BaseException:
            published.abandon(store)
            raise
        finally:
            if close_store:
                store.close()
        return self.show(rg, name)

    @staticmethod
    def _properties(src: sources.DiskSource | sources.FileSource, vsize: int,
                    incremental: bool, sku: str, local: dict, os_type: str | None,
                    hyper_v_generation: str | None) -> dict:
        props: dict = dict(src.carried)
        if os_type is not None:
            props["osType"] = os_type
        if hyper_v_generation is not None:
            props["hyperVGeneration"] = hyper_v_generation
        if src.kind == "file":
            cd: dict = {"createOption": "Import", "sourceUri": src.uri}
        else:
            cd = {"createOption": "Copy", "sourceResourceId": src.id}
        if src.unique_id:
            cd["sourceUniqueId"] = src.unique_id
        props["creationData"] = cd
        props["diskSizeGB"] = resources.size_in_gb(vsize)
        props["incremental"] = bool(incremental)
        if incremental:
            # Azure: every incremental snapshot of one disk belongs to the same family
            family = src.properties.get("incrementalSnapshotFamilyId") if (
                src.kind == "snapshot") else None
            props["incrementalSnapshotFamilyId"] = family or str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"family|{src.unique_id or src.id}"))
        props.update({
            "timeCreated": iso(now_utc()),
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "diskSizeBytes": vsize,
            "uniqueId": arm_disk.new_unique_id(),
            "sku": sku,
            "localStorage": local,
        })
        return props

    def show(self, rg: str, name: str) -> dict:
        """The snapshot's JSON (NotFound when there is none)."""
        return arm_snapshot.snapshot_json(self.repo.snapshot(rg, name))

    def list(self, rg: str | None = None) -> list[dict]:
        """Snapshots of ``rg`` (all resource groups when None)."""
        return [arm_snapshot.snapshot_json(r) for r in self.repo.list_snapshots(rg)]

    def delete(self, rg: str, name: str) -> list[str]:
        """Delete the snapshot; returns the manifest digests nothing references any more
        (unpublished; their chunks are garbage for ``store gc``)."""
        with self.repo.transaction():
            row = self.repo.snapshot(rg, name)
            self.repo.delete_snapshot(row.id)
        with self.repo.transaction():  # as version deletion: re-check under the write lock
            freed = [] if self.repo.digest_referenced(row.digest) else [row.digest]
            self.placement.drop_copies(row.location, [row.digest], 0, None)
        return freed
