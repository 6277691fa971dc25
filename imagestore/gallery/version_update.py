"""Updating an image version: the mutable fields (target regions and their copies,
excludeFromLatest, the end-of-life date, the safety profile's flags, tags), checked as a whole
before anything is written; new regions and copies are queued for replication, removed ones
unpublished at once with a gc job for their space. A part of :class:`~.versions.Versions`."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from ..errors import InvalidArgument, OperationNotAllowed
from . import arm_shape, patch, soft_delete, validate
from .changes import check_changes
from .placement import Placement
from .progress import Observer
from .repository import ProvisioningState, ReplicationState, Repository, VersionRow

#: what an update may change
VERSION_MUTABLE = (
    "tags",
    "properties.publishingProfile.targetRegions",
    "properties.publishingProfile.replicaCount",
    "properties.publishingProfile.excludeFromLatest",
    "properties.publishingProfile.endOfLifeDate",
    "properties.safetyProfile.allowDeletionOfReplicatedLocations",
    "properties.safetyProfile.blockDeletionBeforeEndOfLife",
)
#: computed, read-only parts of a version's JSON that an update never sees
_VERSION_COMPUTED = ("replicationStatus",)
_TR = "properties.publishingProfile.targetRegions"


class VersionUpdate:
    """``update`` of :class:`~.versions.Versions` (which supplies ``row``, ``json``,
    ``show`` and ``_after_queue``)."""

    repo: Repository
    placement: Placement

    def update(
        self, rg: str, gallery: str, image: str, version: str, *,
        target_regions: list[str] | None = None, replica_count: int | None = None,
        exclude_from_latest: bool | str | None = None, end_of_life_date: str | None = None,
        allow_deletion_of_replicated_locations: bool | str | None = None,
        block_deletion_before_end_of_life: bool | str | None = None,
        tags: dict | None = None, sets: Iterable[str | patch.Op] = (), no_wait: bool = False,
        observer: Observer | None = None,
    ) -> dict:
        """Update the mutable fields: target regions and copies, excludeFromLatest, the
        end-of-life date, the safety profile's flags and tags. New regions and copies are
        replicated (in the background with ``no_wait``, else before returning); removed
        regions and copies are unpublished at once and their space reclaimed by a gc job."""
        row = self.row(rg, gallery, image, version)
        if soft_delete.times(self.repo, row) is not None:
            raise OperationNotAllowed(
                f"image version '{row.label}' is soft-deleted; restore it (sig image-version "
                f"undelete) before updating it", target="galleryImageVersionName")
        cur = self.json(row)
        for k in _VERSION_COMPUTED:
            cur["properties"].pop(k, None)
        new = copy.deepcopy(cur)
        pp = new["properties"]["publishingProfile"]
        sp = new["properties"]["safetyProfile"]
        if replica_count is not None:
            pp["replicaCount"] = replica_count
        if target_regions is not None:
            pp["targetRegions"] = validate.parse_target_regions(target_regions)
        if exclude_from_latest is not None:
            pp["excludeFromLatest"] = validate.boolean(
                "properties.publishingProfile.excludeFromLatest", exclude_from_latest)
        if end_of_life_date is not None:
            pp["endOfLifeDate"] = end_of_life_date
        if allow_deletion_of_replicated_locations is not None:
            sp["allowDeletionOfReplicatedLocations"] = validate.boolean(
                "properties.safetyProfile.allowDeletionOfReplicatedLocations",
                allow_deletion_of_replicated_locations)
        if block_deletion_before_end_of_life is not None:
            sp["blockDeletionBeforeEndOfLife"] = validate.boolean(
                "properties.safetyProfile.blockDeletionBeforeEndOfLife",
                block_deletion_before_end_of_life)
        if tags is not None:
            new["tags"] = tags
        patch.apply(new, sets, arm_shape.VERSION)
        check_changes(cur, new, VERSION_MUTABLE)
        props = row.properties
        out_pp, trs = self._new_publishing_profile(row, cur, new)
        safety = self._new_safety_profile(props["safetyProfile"], new["properties"],
                                          out_pp.get("endOfLifeDate"))
        old_pp = cur["properties"]["publishingProfile"]
        removed = sorted({t["name"].lower() for t in old_pp["targetRegions"]}
                         - {t["name"].lower() for t in trs})
        if removed and not safety.get("allowDeletionOfReplicatedLocations"):
            raise OperationNotAllowed(
                f"{_TR}: removing region(s) {', '.join(removed)} is not allowed "
                f"(safetyProfile.allowDeletionOfReplicatedLocations is false)", target=_TR)
        props["publishingProfile"] = out_pp
        props["safetyProfile"] = safety
        new_tags = validate.tags_value("tags", new.get("tags"))
        with self.repo.transaction():
            row2 = self.row(rg, gallery, image, version)
            self.repo.update_version(row2.id, props, new_tags)
            removed_rows, fewer, queued = self._sync_regions(row2.id, old_pp["targetRegions"], trs)
            if queued:
                if row2.provisioning_state != ProvisioningState.CREATING:
                    self.repo.set_provisioning_state(row2.id, ProvisioningState.UPDATING)
                self.repo.queue_version_job(row2.id, {})
        digests = [d.digest for d in self.repo.disks_of(row2.id) if d.digest]
        gc_regions = []
        for name in removed_rows:
            if self.placement.drop_copies(name, digests, 0, row2.id):
                gc_regions.append(name)
        for name, n in fewer:
            if self.placement.drop_copies(name, digests, n, row2.id):
                gc_regions.append(name)
        if gc_regions:
            with self.repo.transaction():
                for name in gc_regions:
                    self.repo.queue_gc_job(name, row2.id)
        if queued or gc_regions:
            self._after_queue(row2.id, no_wait=no_wait, observer=observer)
        return self.show(rg, gallery, image, version)

    def _new_publishing_profile(self, row: VersionRow, cur: dict,
                                new: dict) -> tuple[dict, list[dict]]:
        """The checked publishingProfile an update asks for, and its target regions."""
        pp = new["properties"]["publishingProfile"]
        old_pp = cur["properties"]["publishingProfile"]
        rc = validate.replica_count("properties.publishingProfile.replicaCount",
                                    pp.get("replicaCount")) or 1
        # regions given without a count take the (new) common count
        trs = self.placement.normalize_target_regions(
            pp.get("targetRegions"), rc, old_pp["storageAccountType"], row.location, _TR)
        out_pp = dict(old_pp)
        out_pp["targetRegions"] = trs
        out_pp["replicaCount"] = rc
        out_pp["excludeFromLatest"] = bool(validate.boolean(
            "properties.publishingProfile.excludeFromLatest", pp.get("excludeFromLatest")))
        if pp.get("endOfLifeDate") != old_pp.get("endOfLifeDate"):
            eol = validate.end_of_life("properties.publishingProfile.endOfLifeDate",
                                       pp.get("endOfLifeDate"))
            if eol is None:
                out_pp.pop("endOfLifeDate", None)
            else:
                out_pp["endOfLifeDate"] = eol
        if old_pp.get("replicationMode") == "Shallow":
            others = [t["name"] for t in trs if t["name"].lower() != row.location.lower()]
            if others:
                raise InvalidArgument(
                    f"{_TR}: a Shallow version lives in its source region '{row.location}' "
                    f"only; it cannot be replicated to {', '.join(others)}", target=_TR)
        return out_pp, trs

    @staticmethod
    def _new_safety_profile(old: dict, new_props: dict, eol: str | None) -> dict:
        """The checked safetyProfile an update asks for (blocked deletion needs an
        end-of-life date)."""
        sp = new_props.get("safetyProfile") or {}
        out = dict(old)
        for key in ("allowDeletionOfReplicatedLocations", "blockDeletionBeforeEndOfLife"):
            if key in sp:
                out[key] = bool(validate.boolean(f"properties.safetyProfile.{key}", sp[key]))
        if out.get("blockDeletionBeforeEndOfLife") and not eol:
            if old.get("blockDeletionBeforeEndOfLife"):
                raise InvalidArgument(
                    "properties.publishingProfile.endOfLifeDate: cannot be removed while "
                    "safetyProfile.blockDeletionBeforeEndOfLife is set",
                    target="properties.publishingProfile.endOfLifeDate")
            raise InvalidArgument(
                "properties.safetyProfile.blockDeletionBeforeEndOfLife: needs "
                "properties.publishingProfile.endOfLifeDate",
                target="properties.safetyProfile.blockDeletionBeforeEndOfLife")
        return out

    def _sync_regions(self, vpk: int, old_trs: list[dict],
                      target_regions: list[dict]) -> tuple[list[str], list[tuple[str, int]], bool]:
        """(In a transaction.) Region rows for new target regions: new regions, more copies,
        another storage account type and Failed regions are (re-)queued with a new generation.
        Returns the regions removed, the regions whose copy count went down (name, new count)
        and whether work was queued."""
        rows = {r.region.lower(): r for r in self.repo.regions_of(vpk)}
        old = {t["name"].lower(): t for t in old_trs}
        want = {t["name"].lower(): t for t in target_regions}
        removed = [rows[k].region for k in rows if k not in want]
        for name in removed:
            self.repo.remove_region(vpk, name)
        fewer: list[tuple[str, int]] = []
        queued = False
        for key, t in want.items():
            r = rows.get(key)
            if r is None:
                self.repo.add_region(vpk, t["name"], ReplicationState.QUEUED)
                queued = True
                continue
            o = old.get(key, t)
            n_old, n_new = o["regionalReplicaCount"], t["regionalReplicaCount"]
            if n_new < n_old:
                fewer.append((r.region, n_new))
            if (n_new > n_old or o["storageAccountType"] != t["storageAccountType"]
                    or r.state == ReplicationState.FAILED):
                self.repo.requeue_region(vpk, r.region)
                queued = True
        return removed, fewer, queued
