"""Soft-deleted versions (issue 15; see :mod:`..soft_delete`): the ``soft_deleted_versions``
markers."""

from __future__ import annotations

from .base import RepositoryBase
from .rows import VersionRow
from .versions import VERSION_ORDER, VERSION_SQL

#: soft-deleted versions with the time they were deleted (``sd_deleted``)
_SD_SQL = (VERSION_SQL.replace(" FROM versions v ",
                               ", s.deleted AS sd_deleted FROM versions v ", 1)
           + "JOIN soft_deleted_versions s ON s.version_id = v.id ")


class SoftDeletedMixin(RepositoryBase):
    """Soft-delete markers of versions."""

    def soft_deleted_time(self, version_pk: int) -> str | None:
        """When the version was soft-deleted (ISO time), or None when it is not."""
        row = self._one("SELECT deleted FROM soft_deleted_versions WHERE version_id = ?",
                        (version_pk,))
        return row[0] if row else None

    def soft_deleted_in(self, definition_pk: int) -> list[tuple[VersionRow, str]]:
        """(version, soft-deleted time) of the definition's soft-deleted versions, by
        Major.Minor.Patch."""
        rows = self._all(
            _SD_SQL + "WHERE v.image_id = ? ORDER BY v.major, v.minor, v.patch",
            (definition_pk,))
        return [(VersionRow.from_sql(r), r["sd_deleted"]) for r in rows]

    def all_soft_deleted(self) -> list[tuple[VersionRow, str]]:
        """(version, soft-deleted time) of every soft-deleted version of the store."""
        rows = self._all(_SD_SQL + VERSION_ORDER)
        return [(VersionRow.from_sql(r), r["sd_deleted"]) for r in rows]

    def mark_soft_deleted(self, version_pk: int, when: str) -> None:
        """(In a transaction.)"""
        self.con.execute("INSERT INTO soft_deleted_versions(version_id, deleted) VALUES (?,?)",
                         (version_pk, when))

    def unmark_soft_deleted(self, version_pk: int) -> None:
        """(In a transaction.) The version is active again."""
        self.con.execute("DELETE FROM soft_deleted_versions WHERE version_id = ?", (version_pk,))
