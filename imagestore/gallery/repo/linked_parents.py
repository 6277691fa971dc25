"""Linked-clone parents (``linked_parents``) and the disks that pin them (``disk_links``)."""

from __future__ import annotations

from ..validate import iso, now_utc
from .base import RepositoryBase
from .rows import LinkedParentRow


class LinkedParentsMixin(RepositoryBase):
    """Linked-clone parents."""

    def find_linked_parent(self, location: str, digest: str, fmt: str) -> LinkedParentRow | None:
        """The parent of ``digest`` in ``location`` in format ``fmt``, or None."""
        row = self._one("SELECT * FROM linked_parents WHERE location = ? AND digest = ? AND "
                        "format = ?", (location, digest, fmt))
        return LinkedParentRow.from_sql(row) if row else None

    def insert_linked_parent(self, location: str, digest: str, fmt: str, path: str,
                             virtual_size: int) -> int:
        """(In a transaction.)"""
        cur = self.con.execute(
            "INSERT INTO linked_parents(location, digest, format, path, virtual_size, created) "
            "VALUES (?,?,?,?,?,?)", (location, digest, fmt, path, virtual_size, iso(now_utc())))
        return int(cur.lastrowid)

    def list_linked_parents(self) -> list[tuple[LinkedParentRow, int]]:
        """Every parent with the number of disks linked to it."""
        rows = self._all(
            "SELECT p.*, (SELECT COUNT(*) FROM disk_links l WHERE l.parent_id = p.id) AS n "
            "FROM linked_parents p ORDER BY p.id")
        return [(LinkedParentRow.from_sql(r), int(r["n"])) for r in rows]

    def delete_linked_parent(self, pk: int) -> bool:
        """(In a transaction.) Remove a parent no disk links to; False when one does."""
        if self._one("SELECT 1 FROM disk_links WHERE parent_id = ?", (pk,)):
            return False
        self.con.execute("DELETE FROM linked_parents WHERE id = ?", (pk,))
        return True

    def link_disk(self, disk_pk: int, parent_pk: int) -> None:
        """(In a transaction.) Pin ``parent_pk`` for the disk."""
        self.con.execute("INSERT INTO disk_links(disk_id, parent_id) VALUES (?, ?)",
                         (disk_pk, parent_pk))

    def unlink_disk(self, disk_pk: int) -> None:
        """(In a transaction.) The disk no longer needs its parent."""
        self.con.execute("DELETE FROM disk_links WHERE disk_id = ?", (disk_pk,))

    def parent_of_disk(self, disk_pk: int) -> LinkedParentRow | None:
        """The parent a linked disk pins, or None."""
        row = self._one("SELECT p.* FROM linked_parents p JOIN disk_links l ON "
                        "l.parent_id = p.id WHERE l.disk_id = ?", (disk_pk,))
        return LinkedParentRow.from_sql(row) if row else None
