"""Snapshots and managed images (``snapshots``, ``managed_images``, ``managed_image_disks``):
the captured artifacts that are not gallery versions."""

from __future__ import annotations

from ...errors import NotFound
from ..validate import iso, now_utc
from .base import RepositoryBase
from .rows import ManagedImageDisk, ManagedImageRow, SnapshotRow, dumps


class ArtifactsMixin(RepositoryBase):
    """Snapshots and managed images."""

    def find_snapshot(self, rg: str, name: str) -> SnapshotRow | None:
        """The snapshot, or None."""
        return self._find_named("snapshots", SnapshotRow, rg, name)

    def snapshot(self, rg: str, name: str) -> SnapshotRow:
        """The snapshot; NotFound when there is none."""
        row = self.find_snapshot(rg, name)
        if row is None:
            raise NotFound(f"snapshot '{name}' not found in resource group '{rg}'",
                           target="snapshotName")
        return row

    def list_snapshots(self, rg: str | None = None) -> list[SnapshotRow]:
        """Snapshots of a resource group (all when ``rg`` is None), by name."""
        return self._list_named("snapshots", SnapshotRow, rg)

    def insert_snapshot(self, rg: str, name: str, location: str, tags: dict, props: dict, *,
                        digest: str, virtual_size: int, allocated_bytes: int, data_bytes: int,
                        stored_bytes: int, source_format: str | None, source_id: str) -> None:
        """(In a transaction.)"""
        self.con.execute(
            "INSERT INTO snapshots(rg, name, location, tags, props, digest, virtual_size, "
            "allocated_bytes, data_bytes, stored_bytes, source_format, source_id, created) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), digest, virtual_size,
             allocated_bytes, data_bytes, stored_bytes, source_format, source_id,
             iso(now_utc())))

    def delete_snapshot(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM snapshots WHERE id = ?", (pk,))

    # -- managed images ----------------------------------------------------------------------

    def find_managed_image(self, rg: str, name: str) -> ManagedImageRow | None:
        """The managed image, or None."""
        return self._find_named("managed_images", ManagedImageRow, rg, name)

    def managed_image(self, rg: str, name: str) -> ManagedImageRow:
        """The managed image; NotFound when there is none."""
        row = self.find_managed_image(rg, name)
        if row is None:
            raise NotFound(f"image '{name}' not found in resource group '{rg}'",
                           target="imageName")
        return row

    def list_managed_images(self, rg: str | None = None) -> list[ManagedImageRow]:
        """Managed images of a resource group (all when ``rg`` is None), by name."""
        return self._list_named("managed_images", ManagedImageRow, rg)

    def managed_image_disks(self, image_pk: int) -> list[ManagedImageDisk]:
        """The image's disks, OS disk (LUN -1) first."""
        rows = self._all("SELECT * FROM managed_image_disks WHERE image_id = ? ORDER BY lun",
                         (image_pk,))
        return [ManagedImageDisk.from_sql(r) for r in rows]

    def insert_managed_image(self, rg: str, name: str, location: str, tags: dict, props: dict,
                             disks: list[ManagedImageDisk]) -> int:
        """(In a transaction.) The image and its disks; returns its row id."""
        cur = self.con.execute(
            "INSERT INTO managed_images(rg, name, location, tags, props, created) "
            "VALUES (?,?,?,?,?,?)", (rg, name, location, dumps(tags), dumps(props),
                                     iso(now_utc())))
        pk = int(cur.lastrowid)
        for d in disks:
            self.con.execute(
                "INSERT INTO managed_image_disks(image_id, lun, digest, virtual_size, "
                "allocated_bytes, data_bytes, stored_bytes, source_format, source_kind, "
                "source_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (pk, d.lun, d.digest, d.virtual_size, d.allocated_bytes, d.data_bytes,
                 d.stored_bytes, d.source_format, d.source_kind, d.source_id))
        return pk

    def delete_managed_image(self, pk: int) -> None:
        """(In a transaction.) The image with its disks (cascade)."""
        self.con.execute("DELETE FROM managed_images WHERE id = ?", (pk,))

    def snapshots_and_images_in(self, region: str) -> list[tuple[str, str, str]]:
        """(kind ``snapshot``/``image``, resource group, name) of every snapshot and managed
        image whose data lives in ``region``."""
        rows = self._all(
            "SELECT 'snapshot', rg, name FROM snapshots WHERE location = ? COLLATE NOCASE "
            "UNION ALL SELECT 'image', rg, name FROM managed_images WHERE location = ? "
            "COLLATE NOCASE ORDER BY 1 DESC, 2, 3", (region, region))
        return [(r[0], r[1], r[2]) for r in rows]

    def owners_by_digest(self) -> list[tuple[str, str, str, str, int | None]]:
        """(digest, kind ``snapshot``/``image``, resource group, name, LUN or None) of every
        snapshot and managed image disk, by kind, resource group, name and LUN."""
        rows = self._all(
            "SELECT digest, 'snapshot', rg, name, NULL FROM snapshots UNION ALL "
            "SELECT d.digest, 'image', i.rg, i.name, d.lun FROM managed_image_disks d "
            "JOIN managed_images i ON i.id = d.image_id ORDER BY 2 DESC, 3, 4, 5")
        return [(r[0], r[1], r[2], r[3], None if r[4] is None or r[4] < 0 else r[4])
                for r in rows]
