"""The disk images of versions (``version_disks``), and what references a manifest digest
(version disks, snapshots, managed image disks)."""

from __future__ import annotations

import json
from collections.abc import Collection

from .rows import VersionDisk, VersionRow
from .versions import VersionsMixin


class VersionDisksMixin(VersionsMixin):
    """Version disks and the digests they reference."""

    def disks_of(self, version_pk: int) -> list[VersionDisk]:
        """The version's disk images, OS disk (LUN -1) first."""
        rows = self._all("SELECT * FROM version_disks WHERE version_id = ? ORDER BY lun",
                         (version_pk,))
        return [VersionDisk.from_sql(r) for r in rows]

    def insert_disks(self, version_pk: int, disks: list[VersionDisk]) -> None:
        """(In a transaction.)"""
        for d in disks:
            self.con.execute(
                "INSERT INTO version_disks(version_id, lun, digest, virtual_size, "
                "allocated_bytes, data_bytes, stored_bytes, host_caching, source_uri, "
                "source_format, shallow_path, fingerprint, source_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (version_pk, d.lun, d.digest, d.virtual_size, d.allocated_bytes, d.data_bytes,
                 d.stored_bytes, d.host_caching, d.source_uri, d.source_format, d.shallow_path,
                 d.fingerprint, d.source_id))

    def digest_referenced(self, digest: str, excluding_versions: Collection[int] = ()) -> bool:
        """Whether any version disk, snapshot or managed image disk uses manifest ``digest``
        (what keeps a manifest published); with ``excluding_versions``, as if those versions
        (primary keys) were gone (what ``store gc --dry-run`` reports for purges)."""
        skip = tuple(int(v) for v in excluding_versions)
        not_in = f" AND version_id NOT IN ({', '.join('?' * len(skip))})" if skip else ""
        return self._one(
            f"SELECT 1 FROM version_disks WHERE digest = ?{not_in} UNION ALL "
            "SELECT 1 FROM snapshots WHERE digest = ? UNION ALL "
            "SELECT 1 FROM managed_image_disks WHERE digest = ? LIMIT 1",
            (digest, *skip, digest, digest)) is not None

    def versions_using_digest(self, digest: str) -> list[tuple[VersionRow, int]]:
        """(version, LUN) of every disk image whose content is manifest ``digest``."""
        rows = self._all(
            "SELECT d.version_id AS vid, d.lun AS lun FROM version_disks d WHERE d.digest = ? "
            "ORDER BY d.version_id, d.lun", (digest,))
        out = []
        for r in rows:
            v = self.version_by_pk(r["vid"])
            if v is not None:
                out.append((v, r["lun"]))
        return out

    def disk_images_by_digest(self) -> list[tuple[str, str, str, str, str, int]]:
        """(digest, resource group, gallery, definition, version, LUN) of every captured
        disk image, by gallery, definition, version and LUN."""
        rows = self._all(
            "SELECT vd.digest, g.rg, g.name, i.name, v.name, vd.lun FROM version_disks vd "
            "JOIN versions v ON v.id = vd.version_id JOIN images i ON i.id = v.image_id "
            "JOIN galleries g ON g.id = i.gallery_id WHERE vd.digest != '' "
            "ORDER BY g.rg, g.name, i.name, v.major, v.minor, v.patch, vd.lun")
        return [tuple(r) for r in rows]

    def copies_needed(self, digest: str, region: str, exclude_version: int | None) -> int:
        """How many copies of ``digest`` the versions (other than ``exclude_version``) that
        target ``region`` need there."""
        rows = self._all(
            "SELECT v.props AS props FROM version_disks d JOIN versions v ON v.id = d.version_id "
            "JOIN version_regions r ON r.version_id = v.id "
            "WHERE d.digest = ? AND r.region = ? AND v.id IS NOT ?",
            (digest, region, exclude_version))
        need = 0
        for r in rows:
            for t in json.loads(r["props"])["publishingProfile"]["targetRegions"]:
                if t["name"].lower() == region.lower():
                    need = max(need, int(t.get("regionalReplicaCount") or 1))
        if need == 0 and self._one(
                "SELECT 1 FROM snapshots WHERE digest = ? AND location = ? COLLATE NOCASE "
                "UNION ALL SELECT 1 FROM managed_image_disks d JOIN managed_images i ON "
                "i.id = d.image_id WHERE d.digest = ? AND i.location = ? COLLATE NOCASE LIMIT 1",
                (digest, region, digest, region)):
            need = 1  # a snapshot or managed image lives in copy 0 of its region
        return need
