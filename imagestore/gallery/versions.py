"""Image versions (``Microsoft.Compute/galleries/images/versions``): create (capture, copy by
reference, Shallow), show, list, update (target regions, copies, flags: ``version_update.py``),
delete, wait, and the resolution of references (``latest``).

**Create** checks every field before it writes anything, then captures the data into copy 0
of the source region, then inserts the version's rows in one transaction; a failure on the
way removes the manifests it published. Replication to the other target regions (and a
capture queued with ``no_wait``) is queued as a job; a :class:`WorkRunner` (the worker package
supplies one) runs it in the background or before the call returns.

**Regions.** Every target region, the source region included, has a ``version_regions`` row:
``Queued -> Replicating -> Completed | Failed``. ``provisioningState`` is ``Creating`` /
``Updating`` while a region is pending, then ``Succeeded`` when all completed, else
``Failed``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

from .. import azblob
from ..azblob import is_url
from ..errors import (
    Conflict,
    IntegrityError,
    InvalidArgument,
    NotFound,
    OperationNotAllowed,
    TimedOut,
)
from ..home import DEFAULT_REGION
from ..store.cas import BlobStore
from . import (
    capture,
    gallery_types,
    ids,
    resources,
    soft_delete,
    validate,
    version_data,
    version_sources,
)
from .capture import Source
from .capture_intents import CaptureIntent
from .latest import latest_version
from .placement import Placement
from .progress import Observer, ProgressEvent, TaskKind
from .repository import (
    DefinitionRow,
    ProvisioningState,
    ReplicationState,
    Repository,
    VersionDisk,
    VersionRow,
)
from .resource_groups import check_ref
from .validate import iso, now_utc
from .version_update import VersionUpdate

DEFAULT_LOCATION = DEFAULT_REGION

WAIT_CONDITIONS = ("created", "updated", "deleted", "exists")
# the fields messages name (targets in the resource JSON)
_TR = "properties.publishingProfile.targetRegions"
_SRC = "properties.storageProfile.source.id"
_OS_URI = "properties.storageProfile.osDiskImage.source.uri"
_DATA = "properties.storageProfile.dataDiskImages"


class WorkRunner(Protocol):
    """Runs the work a version service queued (see :mod:`imagestore.worker`)."""

    def start(self) -> None:
        """Make sure queued work gets done in the background (start a worker if none runs)."""

    def run(self, version_pk: int, observer: Observer | None) -> None:
        """Do the version's queued work before returning (or wait for whoever does it)."""


@dataclass
class _CreatePlan:
    """A checked create request: everything needed to write the version."""

    definition: DefinitionRow
    name: str
    parts: tuple[int, int, int]
    location: str
    target_regions: list[dict]
    props: dict
    shallow: bool
    sources: list[Source]
    reference: str | None
    #: disk images from snapshots or a managed image (by reference to their manifests)
    resources: version_sources.ResourceSources


class Versions(VersionUpdate):
    """The image version operations over the repository. ``runner`` runs queued work; with
    None the work stays queued for ``imagestore worker``."""

    def __init__(self, repo: Repository, placement: Placement,
                 runner: WorkRunner | None = None) -> None:
        self.repo = repo
        self.placement = placement
        self.runner = runner
        self.soft_delete = soft_delete.SoftDelete(repo, placement, version_data.purge)

    # -- lookups -----------------------------------------------------------------------------

    def row(self, rg: str, gallery: str, image: str, version: str,
            field: str = "galleryImageVersionName", *, for_use: bool = False) -> VersionRow:
        """The version row (NotFound naming the gallery, definition or version). A
        soft-deleted version is found by its name (past its hard-deletion time it is gone);
        ``for_use`` (a disk's or VM's source) refuses one past its retention period."""
        d = self.repo.definition(rg, gallery, image)
        parts = validate.version_name(version, field)
        row = self.repo.find_version(d, *parts)
        if row is None or soft_delete.gone(self.repo, row):
            raise NotFound(f"image version '{gallery}/{image}/{version}' not found in resource "
                           f"group '{rg}'", target="galleryImageVersionName")
        if for_use:
            soft_delete.check_usable(self.repo, row)
        return row

    def json(self, row: VersionRow, expand: bool = False) -> dict:
        """The version's ARM JSON (with ``properties.replicationStatus`` when ``expand``)."""
        out = resources.version_json(row, self.repo.disks_of(row.id),
                                     self.repo.regions_of(row.id), expand_replication=expand)
        deleted = soft_delete.local_json(self.repo, row)
        if deleted is not None:
            out["properties"]["localStorage"]["softDeleted"] = deleted
        return out

    def latest_row(self, rg: str, gallery: str, image: str,
                   region: str = DEFAULT_LOCATION) -> VersionRow:
        """The version ``latest`` means in ``region`` (see :mod:`.latest`)."""
        return latest_version(self.repo, self.repo.definition(rg, gallery, image), region)

    def latest(self, rg: str, gallery: str, image: str, region: str = DEFAULT_LOCATION) -> dict:
        """The JSON of the latest version in ``region``."""
        return self.json(self.latest_row(rg, gallery, image, region))

    def resolve(self, ref_text: str, rg: str, region: str = DEFAULT_LOCATION,
                field: str = "properties.creationData.galleryImageReference.id") -> VersionRow:
        """A version id, a definition id (= its latest version in ``region``) or a short form
        ``g/d[/v]`` -> the version row."""
        ref = ids.parse_image_ref(ref_text, rg, field=field)
        check_ref(self.repo, ref.subscription, ref.rg, field)
        if ref.is_latest:
            return self.latest_row(ref.rg, ref.gallery, ref.image, region)
        return self.row(ref.rg, ref.gallery, ref.image, ref.version, field, for_use=True)

    def targeting(self, region: str) -> list[str]:
        """Ids of the versions that have ``region`` among their target regions."""
        return [ids.version_id(v.subscription, v.rg, v.gallery, v.image, v.name)
                for v in self.repo.versions_targeting(region)]

    def holding_only_copy(self, region: str) -> list[str]:
        """Ids of the versions whose only Completed copy is in ``region``."""
        return [ids.version_id(v.subscription, v.rg, v.gallery, v.image, v.name)
                for v in self.repo.versions_with_only_copy_in(region)]

    # -- create ------------------------------------------------------------------------------

    def create(
        self, rg: str, gallery: str, image: str, version: str, *,
        os_vhd_uri: str | None = None, data_vhds_uris: list[str] | tuple[str, ...] = (),
        data_vhds_luns: list[int] | tuple[int, ...] = (), image_version: str | None = None,
        location: str | None = None, target_regions: list[str] | None = None,
        replica_count: int | None = None, storage_account_type: str | None = None,
        replication_mode: str | None = None, exclude_from_latest: bool = False,
        end_of_life_date: str | None = None, block_deletion_before_end_of_life: bool = False,
        allow_deletion_of_replicated_locations: bool = False, tags: dict | None = None,
        observer: Observer | None = None, threads: int = 2,
        allow_parent_dir: str | None = None, no_wait: bool = False, source_format: str = "auto",
        os_snapshot: str | None = None, data_snapshots: list[str] | tuple[str, ...] = (),
        data_snapshot_luns: list[int] | tuple[int, ...] = (), managed_image: str | None = None,
        source_resource_id: str | None = None,
    ) -> dict:
        """Create a version from disk files (``os_vhd_uri``, ``data_vhds_uris``; read as
        ``source_format``: "auto" detects and refuses non-disks, "raw" takes the bytes) or from
        another version (``image_version``, by reference: no data written), or from snapshots
        (``os_snapshot``, ``data_snapshots`` at ``data_snapshot_luns``) or a managed image
        (``managed_image``), sharing their manifests (see :mod:`.version_sources`).
        ``source_resource_id``: the ARM id of the resource the disk files belong to (a VM
        captured by the compute layer), recorded as ``storageProfile.source.id``. ``no_wait``:
        return at once (provisioningState Creating); capture and replication run in the
        background. Otherwise the capture runs here and replication is done before returning
        (a failed region raises Conflict; the version stays, Failed, as in Azure)."""
        plan = self._plan(
            rg, gallery, image, version, os_vhd_uri=os_vhd_uri, data_vhds_uris=data_vhds_uris,
            data_vhds_luns=data_vhds_luns, image_version=image_version, location=location,
            target_regions=target_regions, replica_count=replica_count,
            storage_account_type=storage_account_type, replication_mode=replication_mode,
            exclude_from_latest=exclude_from_latest, end_of_life_date=end_of_life_date,
            block_deletion_before_end_of_life=block_deletion_before_end_of_life,
            allow_deletion_of_replicated_locations=allow_deletion_of_replicated_locations,
            os_snapshot=os_snapshot, data_snapshots=list(data_snapshots or ()),
            data_snapshot_luns=list(data_snapshot_luns or ()), managed_image=managed_image)
        store, close_store = self.placement.open_source_store(plan.location)
        # manifests this call created (removed again on failure; named by a capture intent
        # until the version's rows commit, so that gc removes them after a kill)
        published = CaptureIntent(self.repo, self.placement, plan.location)
        try:
            source_id: str | None = None
            capture_later = False
            disks: list[VersionDisk] = []
            if plan.reference:
                source_id, disks = self._disks_by_reference(plan.reference, rg, plan.definition)
            elif plan.shallow:
                disks = capture.shallow_disks(plan.sources, allow_parent_dir, source_format)
            elif no_wait and plan.sources:
                capture.check_sources(plan.sources, allow_parent_dir, source_format)  # headers
                capture_later = True
            else:
                disks = capture.capture(
                    store, plan.sources, threads=threads, observer=observer,
                    allow_parent_dir=allow_parent_dir, published=published,
                    source_format=source_format,
                    domain=self.placement.capture_domain(rg))
            if plan.resources.disks:
                disks = sorted(disks + plan.resources.disks, key=lambda d: d.lun)
                source_id = plan.resources.source_id
            if source_id is None and source_resource_id:
                source_id = source_resource_id
            payload = {}
            if capture_later:
                payload["capture"] = {"sources": [s.to_json() for s in plan.sources],
                                      "allowParentDir": allow_parent_dir, "threads": threads,
                                      "sourceFormat": source_format}
            vpk, pending = self._commit(plan, disks, store, source_id, tags or {}, payload,
                                        published)
        except BaseException:
            published.abandon(store)
            raise
        finally:
            if close_store:
                store.close()
        if pending:
            self._after_queue(vpk, no_wait=no_wait, observer=observer)
        return self.show(rg, gallery, image, version)

    def _plan(self, rg, gallery, image, version, *, os_vhd_uri, data_vhds_uris, data_vhds_luns,
              image_version, location, target_regions, replica_count, storage_account_type,
              replication_mode, exclude_from_latest, end_of_life_date,
              block_deletion_before_end_of_life,
              allow_deletion_of_replicated_locations, os_snapshot=None, data_snapshots=(),
              data_snapshot_luns=(), managed_image=None) -> _CreatePlan:
        """Check the whole request before anything is written."""
        validate.resource_group(rg)
        img = self.repo.definition(rg, gallery, image)
        parts = validate.version_name(version)
        self.soft_delete.purge_expired(img)
        found = self.repo.find_version(img, *parts)
        if found:
            held = (" (soft-deleted: restore it with 'sig image-version undelete' or purge it)"
                    if soft_delete.times(self.repo, found) else "")
            raise Conflict(f"image version '{gallery}/{image}/{version}' already exists{held}",
                           target="galleryImageVersionName")
        location = self.placement.require_region(location or DEFAULT_LOCATION)
        grow = self.repo.gallery(rg, gallery)
        gallery_types.check_version(gallery, grow.properties, grow.location, location,
                                    target_regions)
        rc = validate.replica_count("properties.publishingProfile.replicaCount", replica_count) or 1
        sat = validate.enum("properties.publishingProfile.storageAccountType", storage_account_type or "Standard_LRS",
                            validate.STORAGE_ACCOUNT_TYPES)
        mode = validate.enum("properties.publishingProfile.replicationMode", replication_mode or "Full",
                             validate.REPLICATION_MODES)
        trs = (validate.parse_target_regions(target_regions) if target_regions
               else [{"name": location}])
        trs = self.placement.normalize_target_regions(trs, rc, sat, location, _TR)
        eol = validate.end_of_life("properties.publishingProfile.endOfLifeDate", end_of_life_date)
        if block_deletion_before_end_of_life and not eol:
            raise InvalidArgument("properties.safetyProfile.blockDeletionBeforeEndOfLife: needs "
                                  "properties.publishingProfile.endOfLifeDate",
                                  target="properties.safetyProfile.blockDeletionBeforeEndOfLife")
        data_snapshots = list(data_snapshots or ())
        version_sources.check_os_sources(
            os_vhd_uri=os_vhd_uri, os_snapshot=os_snapshot, managed_image=managed_image,
            image_version=image_version, data_given=bool(data_vhds_uris or data_snapshots))
        snap_luns = version_sources.data_snapshot_luns(data_snapshots,
                                                       list(data_snapshot_luns or ()))
        sources = self._sources(os_vhd_uri, list(data_vhds_uris or ()),
                                list(data_vhds_luns or ()), image_version,
                                taken=len(snap_luns) and snap_luns)
        if mode_is_shallow(replication_mode) and (os_snapshot or data_snapshots or managed_image):
            raise InvalidArgument(
                "properties.publishingProfile.replicationMode: Shallow references disk files "
                "(osDiskImage.source.uri); snapshots and managed images are in the store "
                "already", target="properties.publishingProfile.replicationMode")
        res = version_sources.resolve(self.repo, rg, img, location, os_snapshot=os_snapshot,
                                      data_snapshots=data_snapshots, luns=snap_luns,
                                      managed_image=managed_image)
        pp: dict = {
            "targetRegions": trs,
            "replicaCount": rc,
            "excludeFromLatest": bool(exclude_from_latest),
            "publishedDate": iso(now_utc()),
            "storageAccountType": sat,
            "replicationMode": mode,
        }
        if eol:
            pp["endOfLifeDate"] = eol
        props = {
            "publishingProfile": pp,
            # what the request asks for: shown until the disks have been captured
            "storageProfile": resources.requested_storage_profile(
                [(s.lun, s.path) for s in sources], res.requested),
            "safetyProfile": {
                "allowDeletionOfReplicatedLocations": bool(allow_deletion_of_replicated_locations),
                "blockDeletionBeforeEndOfLife": bool(block_deletion_before_end_of_life),
            },
        }
        shallow = mode == "Shallow"
        if shallow:
            others = [t["name"] for t in trs if t["name"].lower() != location.lower()]
            if others:
                raise InvalidArgument(
                    f"{_TR}: a Shallow version lives in its source region "
                    f"'{location}' only (it references the source file); remove "
                    f"{', '.join(others)}", target="properties.publishingProfile.targetRegions")
        return _CreatePlan(img, version, parts, location, trs, props, shallow, sources,
                           image_version, res)

    @staticmethod
    def _sources(os_vhd_uri: str | None, uris: list[str], luns: list[int],
                 image_version: str | None, taken: list[int] | int = ()) -> list[Source]:
        """The disk file sources of a create request, checked (LUNs, existence, duplicates);
        ``taken``: LUNs of data disk snapshots, listed after the files'."""
        if luns and len(luns) != len(uris):
            raise InvalidArgument(f"{_DATA}: {len(luns)} LUN(s) given for {len(uris)} data "
                                  f"disk source(s)", target=_DATA)
        if not luns:
            luns = list(range(len(uris)))
        seen_luns: set[int] = set()
        for i, lun in enumerate([*luns, *(taken or ())]):
            lun_target = f"{_DATA}[{i}].lun"
            if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= validate.MAX_LUN:
                raise InvalidArgument(f"{lun_target}: '{lun}' must be an integer from 0 to "
                                      f"{validate.MAX_LUN}", target=lun_target)
            if lun in seen_luns:
                raise InvalidArgument(f"{lun_target}: LUN {lun} is used twice",
                                      target=lun_target)
            seen_luns.add(lun)
        sources: list[Source] = []
        if os_vhd_uri:
            sources.append(Source(capture.OS_LUN, os_vhd_uri, capture.source_path(os_vhd_uri)))
        for lun, u in zip(luns, uris, strict=True):
            sources.append(Source(lun, u, capture.source_path(u)))
        seen_src: dict[str, str] = {}
        for n, s in enumerate(sources):
            i = n - 1 if os_vhd_uri else n
            target = field = _OS_URI if s.lun < 0 else f"{_DATA}[{i}].source.uri"
            if is_url(s.uri):  # a blob in Azure Blob Storage, read by ranges when captured
                azblob.parse_blob_url(s.uri, field)
                key = s.uri.split("?", 1)[0]
                if key in seen_src:
                    raise InvalidArgument(f"{field}: source '{key}' is used twice (also as "
                                          f"{seen_src[key]})", target=target)
                seen_src[key] = key
                continue
            if "://" in s.uri and not s.uri.startswith("file://"):
                raise InvalidArgument(f"{field}: '{s.uri}': only local paths, file:// URIs and "
                                      f"http(s):// blob URLs are supported", target=target)
            if not os.path.exists(s.path):
                raise NotFound(f"{field}: {s.path}: no such file", target=target)
            real = os.path.realpath(s.path)
            if real in seen_src:
                raise InvalidArgument(f"{field}: source '{s.uri}' is used twice (also as "
                                      f"{seen_src[real]})", target=target)
            seen_src[real] = s.uri
        return sources

    def _disks_by_reference(self, ref_text: str, rg: str,
                            img: DefinitionRow) -> tuple[str, list[VersionDisk]]:
        """The disks of the source version of a copy by reference (no data is written)."""
        field = target = _SRC
        src = self.resolve(ref_text, rg, DEFAULT_LOCATION, field)
        sprops = src.definition_properties
        tprops = img.properties
        for key in ("osType", "hyperVGeneration"):
            if sprops.get(key) != tprops.get(key):
                raise InvalidArgument(
                    f"{field}: the source's {key} '{sprops.get(key)}' does not match "
                    f"image definition '{img.name}' ({tprops.get(key)})", target=target)
        if src.provisioning_state != ProvisioningState.SUCCEEDED:
            raise Conflict(f"{field}: source version '{src.name}' is {src.provisioning_state}",
                           target=target)
        disks = [VersionDisk(**{**{k: d[k] for k in d.keys()}, "stored_bytes": 0})
                 for d in self.repo.disks_of(src.id)]  # copied by reference: nothing stored
        return ids.version_id(src.subscription, src.rg, src.gallery, src.image, src.name), disks

    def _commit(self, plan: _CreatePlan, disks: list[VersionDisk], store: BlobStore,
                source_id: str | None, tags: dict, payload: dict,
                intent: CaptureIntent | None = None) -> tuple[int, bool]:
        """Insert the version, its disks and regions (and its job) in one transaction, which
        also ends the capture ``intent``. Returns (row id, whether work was queued)."""
        capture_later = "capture" in payload
        img = plan.definition
        with self.repo.transaction():
            if self.repo.find_version(img, *plan.parts):
                raise Conflict(f"image version '{img.gallery}/{img.name}/{plan.name}' already "
                               f"exists", target="galleryImageVersionName")
            for d in disks:
                if d.digest and not plan.reference and not store.has_manifest(d.digest):
                    raise IntegrityError(
                        f"manifest {d.digest} is missing from region '{plan.location}' "
                        f"(removed by a concurrent deletion?); run the command again")
            done: dict[str, bool] = {}
            for t in plan.target_regions:
                if plan.shallow:
                    done[t["name"]] = True
                elif capture_later or t["name"].lower() != plan.location.lower():
                    done[t["name"]] = False
                else:  # the source region: copy 0 is the captured data itself
                    done[t["name"]] = (
                        t["regionalReplicaCount"] == 1
                        and t["storageAccountType"] != "Premium_LRS"
                        and all(not d.digest or store.has_manifest(d.digest) for d in disks))
            pending = not all(done.values())
            state = ProvisioningState.CREATING if pending else ProvisioningState.SUCCEEDED
            vpk = self.repo.insert_version(img.id, plan.name, plan.parts, plan.location, tags,
                                           plan.props, state, source_id,
                                           plan.props["publishingProfile"]["publishedDate"])
            self.repo.insert_disks(vpk, disks)
            for t in plan.target_regions:
                self.repo.add_region(vpk, t["name"], ReplicationState.COMPLETED if done[t["name"]]
                                     else ReplicationState.QUEUED)
            if pending:
                self.repo.queue_version_job(vpk, payload)
            if intent is not None:
                intent.end()
        return vpk, pending

    def _after_queue(self, vpk: int, *, no_wait: bool, observer: Observer | None) -> None:
        """Work was queued for the version: hand it to the background (``no_wait``) or do it
        now and report a failure as an error."""
        if self.runner is None:
            return
        if no_wait:
            self.runner.start()
            return
        self.runner.run(vpk, observer)
        self.raise_if_failed(vpk)

    def raise_if_failed(self, vpk: int) -> None:
        """Conflict with the failed regions' details when the version's provisioning failed."""
        row = self.repo.version_by_pk(vpk)
        if row is None or row.provisioning_state != ProvisioningState.FAILED:
            return
        failed = [r for r in self.repo.regions_of(vpk) if r.state == ReplicationState.FAILED]
        why = "; ".join(f"region '{r.region}': {r.details}" for r in failed[:3])
        raise Conflict(f"image version '{row.label}': provisioning failed "
                       f"({why or 'see the replication status'})")

    # -- read --------------------------------------------------------------------------------

    def show(self, rg: str, gallery: str, image: str, version: str, *,
             expand: str | None = None) -> dict:
        """The version's JSON; ``expand="ReplicationStatus"`` adds the replication status."""
        exp = False
        if expand is not None:
            if expand.lower() != "replicationstatus":
                raise InvalidArgument(f"$expand: '{expand}' is not ReplicationStatus",
                                      target="$expand")
            exp = True
        return self.json(self.row(rg, gallery, image, version), exp)

    def list(self, rg: str, gallery: str, image: str, *, offset: int = 0,
             limit: int | None = None) -> list[dict]:
        """The definition's versions by Major.Minor.Patch; ``offset``/``limit`` render one
        page of them only (the REST list's pages: cost per page, not per history).
        Soft-deleted ones are left out (:meth:`.soft_delete.SoftDelete.list` lists them)."""
        d = self.repo.definition(rg, gallery, image)
        return [self.json(r) for r in self.repo.list_versions(d, limit=limit, offset=offset,
                                                              active_only=True)]

    # -- delete ------------------------------------------------------------------------------

    def delete(self, rg: str, gallery: str, image: str, version: str) -> list[str]:
        """Delete the version; its copies are unpublished from every region (keeping what
        other versions still use there). Returns the manifest digests no version references
        any more (their chunks are garbage for ``store gc`` / ``region gc``). Refused
        (OperationNotAllowed) before the end-of-life date when deletion is blocked. In a
        gallery with soft delete on, the version is only marked SoftDeleted (its data
        stays; see :mod:`.soft_delete`); deleting a soft-deleted version again changes
        nothing."""
        with self.repo.transaction():
            row = self.row(rg, gallery, image, version)
            if soft_delete.times(self.repo, row) is not None:
                return []
            props = row.properties
            eol = props["publishingProfile"].get("endOfLifeDate")
            if props["safetyProfile"].get("blockDeletionBeforeEndOfLife") and eol:
                if validate.parse_datetime("endOfLifeDate", eol) > now_utc():
                    raise OperationNotAllowed(
                        f"image version '{gallery}/{image}/{version}': deletion is blocked "
                        f"until its end of life date {eol} "
                        f"(safetyProfile.blockDeletionBeforeEndOfLife)",
                        target="properties.safetyProfile.blockDeletionBeforeEndOfLife")
            if soft_delete.enabled(self.repo.gallery(rg, gallery).properties):
                self.repo.mark_soft_deleted(row.id, iso(now_utc()))
                return []
            work = version_data.delete_rows(self.repo, row)
        # Unreference the data in a second transaction (see version_data.unreference and
        # _commit). A worker still copying the deleted version finds it gone and removes
        # what it published.
        return version_data.unreference(self.repo, self.placement, work)

    # -- wait --------------------------------------------------------------------------------

    def wait(self, rg: str, gallery: str, image: str, version: str, *, condition: str,
             timeout: float = 3600.0, interval: float = 1.0,
             observer: Observer | None = None) -> None:
        """Block until the version is created/updated (provisioningState Succeeded; Failed
        raises Conflict with the failed regions' details), deleted (or soft-deleted), or
        exists. While it waits for queued work it makes sure a worker runs; ``observer``
        gets a replication event per region at every poll."""
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(f"condition: '{condition}' is not one of "
                                  f"{', '.join(WAIT_CONDITIONS)}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                row = self.row(rg, gallery, image, version)
            except NotFound:
                row = None
            if condition == "deleted" and (
                    row is None or soft_delete.times(self.repo, row) is not None):
                return  # a soft-deleted version is deleted (restorable, not there)
            if condition == "exists" and row is not None:
                return
            if condition in ("created", "updated") and row is not None:
                if observer is not None:
                    for r in self.repo.regions_of(row.id):
                        observer(ProgressEvent(TaskKind.REPLICATE, r.region, r.bytes_done,
                                               r.bytes_total, state=r.state))
                if row.provisioning_state == ProvisioningState.SUCCEEDED:
                    return
                if row.provisioning_state == ProvisioningState.FAILED:
                    self.raise_if_failed(row.id)
                    raise Conflict(f"image version '{gallery}/{image}/{version}': "
                                   f"provisioning failed")
                if self.runner is not None:
                    self.runner.start()
            if time.monotonic() >= deadline:
                raise TimedOut(f"image version '{gallery}/{image}/{version}': not {condition} "
                               f"after {timeout:g} s")
            time.sleep(interval)


def mode_is_shallow(mode: str | None) -> bool:
    """Whether a requested replicationMode is Shallow (any case)."""
    return (mode or "").lower() == "shallow"
