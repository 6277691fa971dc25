"""Disks and snapshots as the sources of other resources: resolving a name or ARM id the way
az does (a bare name is a snapshot of the resource group if there is one, else a disk), and
reading what a source carries (its bytes, its OS properties, its region).

Used by snapshots (``snapshot create --source``), managed images (``image create --source``,
``--data-disk-sources``) and disks (``disk create --source``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InvalidArgument, NotFound
from . import ids
from .repository import DiskRow, Repository, SnapshotRow
from .resource_groups import check_ref

#: disk properties a snapshot, image or disk made from a disk carries over (as Azure copies
#: them from the source onto the new resource)
CARRIED = ("osType", "hyperVGeneration", "purchasePlan", "supportedCapabilities",
           "supportsHibernation", "securityProfile")


@dataclass(frozen=True)
class DiskSource:
    """A disk or a snapshot named as a source: ``kind`` ``disk`` or ``snapshot``."""

    kind: str
    row: DiskRow | SnapshotRow

    @property
    def id(self) -> str:
        """The ARM id of the source."""
        if self.kind == "disk":
            return ids.disk_id(self.row.subscription, self.row.rg, self.row.name)
        return ids.snapshot_id(self.row.subscription, self.row.rg, self.row.name)

    @property
    def location(self) -> str:
        return self.row.location

    @property
    def properties(self) -> dict:
        return self.row.properties

    @property
    def unique_id(self) -> str | None:
        return self.properties.get("uniqueId")

    @property
    def carried(self) -> dict:
        """The OS properties a resource made from this source takes over."""
        p = self.properties
        return {k: p[k] for k in CARRIED if k in p}

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.row.name}'"

    @property
    def parent_dir(self) -> str | None:
        """Where a linked disk's parent lives (its reads must be allowed there), else None."""
        if not isinstance(self.row, DiskRow):
            return None
        linked = self.row.properties.get("localStorage", {}).get("linked")
        return os.path.dirname(linked["parentPath"]) if linked else None

    def disk_file(self, field: str) -> tuple[str, str]:
        """(path, source format for open_disk) of a disk source's file; NotFound naming
        ``field`` when the file is gone."""
        assert isinstance(self.row, DiskRow)
        path = self.row.path
        if not os.path.exists(path):
            raise NotFound(f"{field}: disk '{self.row.name}': its file {path} does not exist "
                           f"(removed outside imagestore?)", target=field)
        return path, ("raw" if self.row.format == "raw" else "auto")


@dataclass(frozen=True)
class FileSource:
    """A disk image file named by a ``file://`` URI (``createOption: Import``, as az takes a
    VHD blob URI): captured as it is, in the region asked for."""

    uri: str
    path: str
    location: str
    kind: str = "file"

    @property
    def id(self) -> str:
        return self.uri

    @property
    def properties(self) -> dict:
        return {}

    @property
    def unique_id(self) -> str | None:
        return None

    @property
    def carried(self) -> dict:
        return {}

    @property
    def label(self) -> str:
        return f"file {self.path}"

    @property
    def parent_dir(self) -> str | None:
        return None

    def disk_file(self, field: str) -> tuple[str, str]:
        if not os.path.isfile(self.path):
            raise NotFound(f"{field}: {self.path}: no such file", target=field)
        return self.path, "auto"


def is_uri(text: str) -> bool:
    """Whether a source names a URI (``scheme://…``) rather than a resource."""
    return "://" in (text or "")


def file_source(text: str, location: str, *, field: str) -> FileSource:
    """A ``file://`` URI source; other schemes are refused (no blob storage sources here)."""
    from urllib.parse import unquote, urlparse

    if not text.startswith("file://"):
        raise InvalidArgument(f"{field}: '{text}': only file:// URIs (or a disk or snapshot) "
                              f"are supported as a source", target=field)
    return FileSource(text, unquote(urlparse(text).path), location)


def resolve(repo: Repository, text: str, rg: str, *, field: str,
            kinds: tuple[str, ...] = ("snapshots", "disks")) -> DiskSource:
    """A disk or snapshot by ARM id, or by name in ``rg`` (a snapshot first, then a disk, as
    az resolves ``--source``). NotFound naming ``field`` when there is none."""
    ref = ids.parse_resource_ref(text, rg, field=field, kinds=kinds)
    check_ref(repo, ref.subscription, ref.rg, field)
    if ref.kind in (None, "snapshots") and "snapshots" in kinds:
        snap = repo.find_snapshot(ref.rg, ref.name)
        if snap is not None:
            return DiskSource("snapshot", snap)
    if ref.kind in (None, "disks") and "disks" in kinds:
        disk = repo.find_disk(ref.rg, ref.name)
        if disk is not None:
            return DiskSource("disk", disk)
    what = {None: " or ".join(ids.RESOURCE_KINDS[k] for k in kinds)}.get(
        ref.kind, ids.RESOURCE_KINDS.get(ref.kind or "", "resource"))
    raise NotFound(f"{field}: {what} '{ref.name}' not found in resource group '{ref.rg}'",
                   target=field)
