"""Soft delete of image versions (issue 15; Azure's preview feature of the same name).

A gallery's ``properties.softDeletePolicy.isSoftDeleteEnabled`` decides what deleting one of
its image versions does. Off (the default): the version is deleted at once, as before. On:
the version is marked SoftDeleted and keeps all its rows, manifests and chunks (so ``store
gc`` keeps them); it leaves ``sig image-version list`` and is never resolved as ``latest``,
but a reference naming it explicitly (a disk, a VM) still works — "available for use only
when a specific version is requested". It can be restored (``undelete``; REST: a PUT with
``properties.restore: true``) in its home region, or purged (hard-deleted) at once.

Times, on the gallery clock (:mod:`imagestore.clock`, ``IMAGESTORE_NOW`` in tests)::

    softDeletedTime                         delete
    consumptionEndTime   = + 7 days         retention: usable by explicit version, restorable
    hardDeletionTargetTime = + 7 + 7 days   grace: unusable (409), still restorable
    after that                              gone: every read treats it as absent; the next
                                            write to its definition or `store gc` purges it

Retention is Azure's documented 7 days (not updatable). The grace period's length is not
documented; imagestore's decision is 7 days, shown as ``gracePeriodInDays``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import InvalidArgument, NotFound, OperationNotAllowed
from . import ids, validate
from .placement import Placement
from .repository import DefinitionRow, GalleryRow, Repository, VersionRow
from .validate import iso, now_utc

RETENTION_DAYS = 7
GRACE_DAYS = 7
#: what enabling or disabling soft delete needs besides ``galleries/write`` (the doc: "only
#: the subscription Owner or a Compute Gallery Sharing Admin can enable it")
POLICY_ACTION = "Microsoft.Compute/galleries/share/action"
SOFT_DELETED_TYPE = "Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions"
_FLAG = "properties.softDeletePolicy.isSoftDeleteEnabled"
_POLICY = "properties.softDeletePolicy"

#: a check run before a gallery's soft-delete flag changes (the caller's RBAC, or None)
PolicyGuard = Callable[[], None]


# -- the gallery's policy ---------------------------------------------------------------------


def policy_json(stored: dict) -> dict:
    """The ``softDeletePolicy`` JSON of a stored policy ``{"isSoftDeleteEnabled": bool}``."""
    return {"isSoftDeleteEnabled": bool(stored.get("isSoftDeleteEnabled")),
            "retentionPeriodInDays": RETENTION_DAYS, "gracePeriodInDays": GRACE_DAYS}


def flag(value: object, field: str = _FLAG) -> bool:
    """A requested soft-delete flag (true/false in any case, a JSON boolean)."""
    b = validate.boolean(field, value)
    if b is None:
        raise InvalidArgument(f"{field}: must be true or false", target=field)
    return bool(b)


def requested_policy(doc: dict) -> bool | None:
    """The flag a gallery JSON asks for (None: no policy in it). The fixed periods may be
    repeated as shown; any other value is refused."""
    pol = (doc.get("properties") or {}).get("softDeletePolicy")
    if pol is None:
        return None
    if not isinstance(pol, dict):
        raise InvalidArgument(f"{_POLICY}: must be an object", target=_POLICY)
    for key, fixed in (("retentionPeriodInDays", RETENTION_DAYS),
                       ("gracePeriodInDays", GRACE_DAYS)):
        if pol.get(key) is not None and pol[key] != fixed:
            raise InvalidArgument(f"{_POLICY}.{key}: is {fixed} days and cannot be changed "
                                  f"(got {pol[key]!r})", target=f"{_POLICY}.{key}")
    unknown = sorted(set(pol) - {"isSoftDeleteEnabled", "retentionPeriodInDays",
                                 "gracePeriodInDays"})
    if unknown:
        raise InvalidArgument(f"{_POLICY}.{unknown[0]}: not a soft delete policy field",
                              target=f"{_POLICY}.{unknown[0]}")
    if pol.get("isSoftDeleteEnabled") is None:
        return None
    return flag(pol["isSoftDeleteEnabled"])


def comparable(cur: dict, new: dict) -> tuple[dict, dict]:
    """Copies of a gallery's JSON before and after an update for the change check: the
    read-only periods removed and the policy object on both sides, so only a change of the
    flag shows (as ``properties.softDeletePolicy.isSoftDeleteEnabled``)."""
    out = []
    for doc in (cur, new):
        doc = copy.deepcopy(doc)
        props = doc.get("properties")
        pol = props.get("softDeletePolicy") if isinstance(props, dict) else None
        if isinstance(pol, dict):
            pol.pop("retentionPeriodInDays", None)
            pol.pop("gracePeriodInDays", None)
        elif isinstance(props, dict) and pol is None:
            props["softDeletePolicy"] = {}
        out.append(doc)
    return out[0], out[1]


def enabled(gallery_props: dict) -> bool:
    """Whether a gallery's stored properties have soft delete on."""
    return bool((gallery_props.get("softDeletePolicy") or {}).get("isSoftDeleteEnabled"))


def guard_change(old: bool, new: bool, guard: PolicyGuard | None) -> None:
    """Run the caller's RBAC check when the flag changes. Decision: disabling needs the same
    action as enabling (else a Contributor could switch the protection off and purge)."""
    if old != new and guard is not None:
        guard()


def check_enable(repo: Repository, gallery: GalleryRow) -> None:
    """Soft delete "can't be enabled if the gallery, its definitions and versions are in
    different locations" (Azure's doc): 409 OperationNotAllowed naming the first one."""
    home = gallery.location.lower()
    for d in repo.list_definitions(gallery):
        if d.location.lower() != home:
            raise OperationNotAllowed(
                f"{_FLAG}: image definition '{gallery.name}/{d.name}' is in '{d.location}', "
                f"not in the gallery's location '{gallery.location}'; soft delete needs them "
                f"in one location", target=_FLAG)
        for v in repo.list_versions(d):
            if v.location.lower() != home:
                raise OperationNotAllowed(
                    f"{_FLAG}: image version '{v.label}' is in '{v.location}', not in the "
                    f"gallery's location '{gallery.location}'; soft delete needs them in one "
                    f"location", target=_FLAG)


# -- times ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Times:
    """When a version was soft-deleted, stops being usable, and is purged."""

    deleted: datetime
    consumption_end: datetime
    hard_deletion: datetime

    @classmethod
    def of(cls, deleted_iso: str) -> Times:
        d = validate.parse_datetime("softDeletedTime", deleted_iso)
        end = d + timedelta(days=RETENTION_DAYS)
        return cls(d, end, end + timedelta(days=GRACE_DAYS))

    def gone(self, now: datetime) -> bool:
        return now >= self.hard_deletion

    def usable(self, now: datetime) -> bool:
        return now < self.consumption_end


def times(repo: Repository, row: VersionRow) -> Times | None:
    """The version's soft-delete times, or None when it is active."""
    when = repo.soft_deleted_time(row.id)
    return Times.of(when) if when is not None else None


def gone(repo: Repository, row: VersionRow) -> bool:
    """Whether the version is soft-deleted past its hard-deletion time (absent to reads)."""
    t = times(repo, row)
    return t is not None and t.gone(now_utc())


def check_usable(repo: Repository, row: VersionRow) -> None:
    """Refuse (409 OperationNotAllowed) a version in its grace period as a source of a disk
    or VM; during the retention period it stays usable by explicit version."""
    t = times(repo, row)
    if t is not None and not t.usable(now_utc()):
        raise OperationNotAllowed(
            f"image version '{row.label}' was soft-deleted at {iso(t.deleted)} and is not "
            f"usable after {iso(t.consumption_end)}; restore it (sig image-version undelete) "
            f"to use it", target="galleryImageVersionName")


def local_json(repo: Repository, row: VersionRow) -> dict | None:
    """``properties.localStorage.softDeleted`` of a soft-deleted version (None: active)."""
    t = times(repo, row)
    if t is None:
        return None
    return {"softDeletedTime": iso(t.deleted), "consumptionEndTime": iso(t.consumption_end),
            "hardDeletionTargetTime": iso(t.hard_deletion)}


def soft_deleted_json(row: VersionRow, t: Times) -> dict:
    """A ``GallerySoftDeletedResource`` (what ``softDeletedArtifactTypes/Images/artifacts/
    {image}/versions`` lists)."""
    vid = ids.version_id(row.subscription, row.rg, row.gallery, row.image, row.name)
    gid = ids.gallery_id(row.subscription, row.rg, row.gallery)
    return {
        "id": f"{gid}/softDeletedArtifactTypes/Images/artifacts/{row.image}/versions/{row.name}",
        "name": row.name,
        "type": SOFT_DELETED_TYPE,
        "location": row.location,
        "properties": {
            "resourceArmId": vid,
            "softDeletedArtifactType": "Images",
            "softDeletedTime": iso(t.deleted),
            "consumptionEndTime": iso(t.consumption_end),
            "hardDeletionTargetTime": iso(t.hard_deletion),
        },
    }


# -- the operations ---------------------------------------------------------------------------

#: hard-deletes one version row and releases its data: (repo, placement, row) -> freed
#: digests (:func:`.version_data.purge`)
Purge = Callable[[Repository, Placement, VersionRow], list[str]]


class SoftDelete:
    """List, restore and purge soft-deleted versions; purge expired ones."""

    def __init__(self, repo: Repository, placement: Placement, purge: Purge) -> None:
        self.repo = repo
        self.placement = placement
        self._purge = purge

    def _definition(self, rg: str, gallery: str, image: str) -> DefinitionRow:
        return self.repo.definition(rg, gallery, image)

    def _row(self, rg: str, gallery: str, image: str, version: str) -> tuple[VersionRow, Times]:
        d = self._definition(rg, gallery, image)
        row = self.repo.find_version(d, *validate.version_name(version))
        t = times(self.repo, row) if row is not None else None
        if row is None or (t is not None and t.gone(now_utc())):
            raise NotFound(f"image version '{gallery}/{image}/{version}' not found in resource "
                           f"group '{rg}'", target="galleryImageVersionName")
        if t is None:
            raise OperationNotAllowed(
                f"image version '{gallery}/{image}/{version}' is not soft-deleted",
                target="galleryImageVersionName")
        return row, t

    def list(self, rg: str, gallery: str, image: str) -> list[dict]:
        """The definition's soft-deleted versions (not yet past their hard-deletion time)."""
        d = self._definition(rg, gallery, image)
        now = now_utc()
        out = []
        for row, when in self.repo.soft_deleted_in(d.id):
            t = Times.of(when)
            if not t.gone(now):
                out.append(soft_deleted_json(row, t))
        return out

    def is_soft_deleted(self, rg: str, gallery: str, image: str, version: str) -> bool:
        """Whether the version exists and is soft-deleted (False for an active or absent
        one)."""
        try:
            d = self._definition(rg, gallery, image)
            row = self.repo.find_version(d, *validate.version_name(version))
        except (NotFound, InvalidArgument):
            return False
        return row is not None and times(self.repo, row) is not None and not gone(self.repo, row)

    def restore(self, rg: str, gallery: str, image: str, version: str, *,
                location: str | None = None) -> VersionRow:
        """Make a soft-deleted version active again, in its home region (``location``, when
        given, must be it: 400 otherwise). Active again it is listed and can be latest."""
        with self.repo.transaction():
            row, _t = self._row(rg, gallery, image, version)
            if location is not None and location.strip().lower() != row.location.lower():
                raise InvalidArgument(
                    f"location: '{location}' is not the home region '{row.location}' of image "
                    f"version '{row.label}'; a soft-deleted version is restored in its home "
                    f"region", target="location")
            self.repo.unmark_soft_deleted(row.id)
        return row

    def purge(self, rg: str, gallery: str, image: str, version: str) -> list[str]:
        """Hard-delete a soft-deleted version now; returns the manifests no longer used."""
        row, _t = self._row(rg, gallery, image, version)
        return self._purge(self.repo, self.placement, row)

    def purge_expired(self, definition: DefinitionRow | None = None, *,
                      dry_run: bool = False) -> list[str]:
        """Hard-delete the soft-deleted versions past their hard-deletion time (of
        ``definition``, or of the whole store); returns their ids."""
        out = []
        for row in self.expired(definition):
            out.append(ids.version_id(row.subscription, row.rg, row.gallery, row.image, row.name))
            if not dry_run:
                self._purge(self.repo, self.placement, row)
        return out

    def expired(self, definition: DefinitionRow | None = None) -> list[VersionRow]:
        """The soft-deleted versions past their hard-deletion time (of ``definition``, or of
        the whole store)."""
        now = now_utc()
        found = (self.repo.soft_deleted_in(definition.id) if definition is not None
                 else self.repo.all_soft_deleted())
        return [row for row, when in found if Times.of(when).gone(now)]

    def before_definition_delete(self, gallery: GalleryRow, definition: DefinitionRow) -> None:
        """Deleting a definition that holds soft-deleted versions is refused while the
        gallery has soft delete on (409 OperationNotAllowed; purge them or disable soft
        delete first); with it off they are purged with the definition."""
        self.purge_expired(definition)
        held = self.repo.soft_deleted_in(definition.id)
        if not held:
            return
        if enabled(gallery.properties):
            names = ", ".join(r.name for r, _ in held)
            raise OperationNotAllowed(
                f"image definition '{definition.gallery}/{definition.name}' holds "
                f"{len(held)} soft-deleted image version(s): {names}; purge them (sig "
                f"image-version purge) or disable soft delete on gallery "
                f"'{definition.gallery}' first", target="galleryImageName")
        for row, _ in held:
            self._purge(self.repo, self.placement, row)
