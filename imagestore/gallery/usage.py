"""Which image versions, snapshots and managed images use which disk content: manifest digest
-> version disks (:func:`versions_by_digest`) and -> snapshots and managed image disks
(:func:`owners_by_digest`).

A small read-only query (in :mod:`.repository`, like every gallery statement) for the layers
above the store (``store verify`` names the versions a damaged chunk, manifest or index
affects; the store itself knows only digests). Never creates the gallery database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..home import Home
from . import backends, ids
from .repository import Repository


@dataclass(frozen=True)
class VersionDisk:
    """One disk of an image version: ``lun`` is None for the OS disk."""

    resource_group: str
    gallery: str
    definition: str
    version: str
    lun: int | None

    def to_json(self) -> dict:
        """As ``store verify`` reports it."""
        return {
            "resourceGroup": self.resource_group,
            "gallery": self.gallery,
            "definition": self.definition,
            "version": self.version,
            "lun": self.lun,
            "disk": "os" if self.lun is None else "data",
        }

    def __str__(self) -> str:
        disk = "OS disk" if self.lun is None else f"LUN {self.lun}"
        return f"{self.gallery}/{self.definition}/{self.version} ({disk})"


def versions_by_digest(home: Home) -> dict[str, list[VersionDisk]]:
    """Every manifest digest a version disk captured, with the version disks using it (a
    store without a gallery database has none). Reads through a read-only repository."""
    with _readonly(home) as repo:
        if repo is None:
            return {}
        out: dict[str, list[VersionDisk]] = {}
        for digest, rg, g, d, v, lun in repo.disk_images_by_digest():
            out.setdefault(digest, []).append(VersionDisk(rg, g, d, v, None if lun < 0 else lun))
        return out


@dataclass(frozen=True)
class Owner:
    """A snapshot, or one disk of a managed image (``lun`` None for its OS disk), holding a
    manifest: ``kind`` is ``snapshot`` or ``image``."""

    kind: str
    resource_group: str
    name: str
    lun: int | None
    #: the resource group's subscription
    subscription: str = ids.SUBSCRIPTION

    @property
    def id(self) -> str:
        """The ARM id of the snapshot or managed image."""
        if self.kind == "snapshot":
            return ids.snapshot_id(self.subscription, self.resource_group, self.name)
        return ids.managed_image_id(self.subscription, self.resource_group, self.name)

    def to_json(self) -> dict:
        """As ``store verify`` reports it (``affectedResources``)."""
        out = {"id": self.id, "type": ids.SNAPSHOT_TYPE if self.kind == "snapshot" else
               ids.MANAGED_IMAGE_TYPE, "resourceGroup": self.resource_group, "name": self.name}
        if self.kind == "image":
            out["lun"] = self.lun
            out["disk"] = "os" if self.lun is None else "data"
        return out

    def __str__(self) -> str:
        if self.kind == "snapshot":
            return f"snapshot {self.resource_group}/{self.name}"
        disk = "OS disk" if self.lun is None else f"LUN {self.lun}"
        return f"image {self.resource_group}/{self.name} ({disk})"


def owners_by_digest(home: Home) -> dict[str, list[Owner]]:
    """Every manifest digest a snapshot or managed image holds, with its owners (none for a
    store without a gallery database, or one written before snapshots existed)."""
    with _readonly(home) as repo:
        if repo is None or "snapshots" not in _tables(repo):
            return {}  # not migrated yet: no snapshots or images
        out: dict[str, list[Owner]] = {}
        with_groups = "resource_groups" in _tables(repo)  # else every group is local
        for digest, kind, rg, name, lun in repo.owners_by_digest():
            sub = repo.subscription_of(rg) if with_groups else ids.SUBSCRIPTION
            out.setdefault(digest, []).append(Owner(kind, rg, name, lun, sub))
        return out


def _tables(repo: Repository) -> set[str]:
    return {t.lower() for t in repo.con.table_names()}


@contextmanager
def _readonly(home: Home) -> Iterator[Repository | None]:
    """The store's gallery opened read-only through the backend seam, or None when there is
    none yet (no gallery.sqlite; a PostgreSQL database no imagestore has written)."""
    target = home.gallery_database
    if not backends.exists(target):
        yield None
        return
    repo = Repository.open_readonly(target)
    try:
        yield repo if "schema_migrations" in _tables(repo) else None
    finally:
        repo.close()
