"""Disk resources (``disks``)."""

from __future__ import annotations

from ...errors import NotFound
from ..validate import iso, now_utc
from .base import RepositoryBase, select_table
from .rows import DiskRow, dumps


class DisksMixin(RepositoryBase):
    """Disks."""

    def find_disk(self, rg: str, name: str) -> DiskRow | None:
        """The disk resource, or None."""
        return self._find_named("disks", DiskRow, rg, name)

    def disk_at_path(self, path: str) -> bool:
        """Whether a disk row records the file ``path``."""
        return self._one("SELECT 1 FROM disks WHERE path = ?", (path,)) is not None

    def disk(self, rg: str, name: str) -> DiskRow:
        """The disk resource; NotFound when there is none."""
        row = self.find_disk(rg, name)
        if row is None:
            raise NotFound(f"disk '{name}' not found in resource group '{rg}'", target="diskName")
        return row

    def list_disks(self, rg: str | None = None) -> list[DiskRow]:
        """Disks of a resource group (all when ``rg`` is None)."""
        return self._list_named("disks", DiskRow, rg)

    def insert_disk(self, rg: str, name: str, location: str, tags: dict, props: dict,
                    path: str, fmt: str) -> None:
        """(In a transaction.)"""
        self.con.execute(
            "INSERT INTO disks(rg, name, location, tags, props, path, format, created) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), path, fmt, iso(now_utc())))

    def delete_disk(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM disks WHERE id = ?", (pk,))

    def update_disk_props(self, pk: int, props: dict) -> None:
        """(In a transaction.) Replace a disk's stored properties (export grants, issue 12)."""
        self.con.execute("UPDATE disks SET props = ? WHERE id = ?", (dumps(props), pk))

    def disks_with_grant(self, grant_id: str) -> list[DiskRow]:
        """Disks whose stored properties mention ``grant_id`` (an export grant's random id;
        the caller checks the grant field itself)."""
        rows = self._all(select_table("disks") + "WHERE props LIKE ?", (f"%{grant_id}%",))
        return [DiskRow.from_sql(r) for r in rows]
