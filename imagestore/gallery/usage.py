"""Which image versions use which disk content: manifest digest -> version disks.

A small read-only query over the existing tables for the layers above the store (``store
verify`` names the versions a damaged chunk, manifest or index affects; the store itself knows
only digests). Never creates the gallery database.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

from ..home import Home


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


_SQL = """
SELECT vd.digest, g.rg, g.name, i.name, v.name, vd.lun
FROM version_disks vd
JOIN versions v ON v.id = vd.version_id
JOIN images i ON i.id = v.image_id
JOIN galleries g ON g.id = i.gallery_id
WHERE vd.digest != ''
ORDER BY g.rg, g.name, i.name, v.major, v.minor, v.patch, vd.lun
"""


def versions_by_digest(home: Home) -> dict[str, list[VersionDisk]]:
    """Every manifest digest a version disk captured, with the version disks using it (a
    store without a gallery database has none)."""
    if not os.path.exists(home.db_path):
        return {}
    con = sqlite3.connect(f"file:{quote(home.db_path)}?mode=ro", uri=True, timeout=60)
    try:
        out: dict[str, list[VersionDisk]] = {}
        for digest, rg, g, d, v, lun in con.execute(_SQL):
            out.setdefault(digest, []).append(VersionDisk(rg, g, d, v, None if lun < 0 else lun))
        return out
    finally:
        con.close()
