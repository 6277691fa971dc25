"""Which image versions use which disk content: manifest digest -> version disks.

A small read-only query (in :mod:`.repository`, like every gallery statement) for the layers
above the store (``store verify`` names the versions a damaged chunk, manifest or index
affects; the store itself knows only digests). Never creates the gallery database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..home import Home
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
    if not os.path.exists(home.db_path):
        return {}
    repo = Repository.open_readonly(home.db_path)
    try:
        out: dict[str, list[VersionDisk]] = {}
        for digest, rg, g, d, v, lun in repo.disk_images_by_digest():
            out.setdefault(digest, []).append(VersionDisk(rg, g, d, v, None if lun < 0 else lun))
        return out
    finally:
        repo.close()
