"""Image versions (``versions``), joined with their definition and gallery."""

from __future__ import annotations

from .base import sub_of
from .jobs import JobsMixin
from .rows import DefinitionRow, VersionRow, dumps
from .states import ProvisioningState, ReplicationState

VERSION_SQL = (
    "SELECT v.*, g.rg AS rg, g.name AS gallery, i.name AS image, i.props AS image_props, "
    f"{sub_of('g')} "
    "FROM versions v JOIN images i ON i.id = v.image_id JOIN galleries g ON g.id = i.gallery_id "
)
VERSION_ORDER = " ORDER BY g.rg, g.name, i.name, v.major, v.minor, v.patch"
_ACTIVE = " AND NOT EXISTS (SELECT 1 FROM soft_deleted_versions s WHERE s.version_id = v.id)"


class VersionsMixin(JobsMixin):
    """Image versions (deleting one cancels its queued jobs)."""

    def find_version(self, definition: DefinitionRow, major: int, minor: int,
                     patch: int) -> VersionRow | None:
        """The definition's version ``major.minor.patch``, or None."""
        row = self._one(VERSION_SQL + "WHERE v.image_id = ? AND v.major = ? AND v.minor = ? AND "
                        "v.patch = ?", (definition.id, major, minor, patch))
        return VersionRow.from_sql(row) if row else None

    def version_by_pk(self, pk: int) -> VersionRow | None:
        """The version with this row id, or None (deleted)."""
        row = self._one(VERSION_SQL + "WHERE v.id = ?", (pk,))
        return VersionRow.from_sql(row) if row else None

    def list_versions(self, definition: DefinitionRow, *, newest_first: bool = False,
                      limit: int | None = None, offset: int = 0,
                      active_only: bool = False) -> list[VersionRow]:
        """The definition's versions by Major.Minor.Patch; ``limit``/``offset`` take one page
        of that order (``latest`` reads the newest few, not the whole history);
        ``active_only`` leaves soft-deleted versions out."""
        order = "DESC" if newest_first else "ASC"
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        active = _ACTIVE if active_only else ""
        rows = self._all(VERSION_SQL + f"WHERE v.image_id = ?{active} ORDER BY v.major {order}, "
                         f"v.minor {order}, v.patch {order}{page}", (definition.id,))
        return [VersionRow.from_sql(r) for r in rows]

    def version_names(self, definition_pk: int, *, active_only: bool = False) -> list[str]:
        """Names of the definition's versions (``active_only``: not soft-deleted ones)."""
        active = _ACTIVE if active_only else ""
        return [r[0] for r in self._all(
            f"SELECT v.name FROM versions v WHERE v.image_id = ?{active} "
            "ORDER BY v.major, v.minor, v.patch", (definition_pk,))]

    def insert_version(self, definition_pk: int, name: str, parts: tuple[int, int, int],
                       location: str, tags: dict, props: dict, state: ProvisioningState,
                       source_version_id: str | None, created: str) -> int:
        """(In a transaction.) A new version row; returns its row id."""
        cur = self.con.execute(
            "INSERT INTO versions(image_id, name, major, minor, patch, location, tags, props, "
            "provisioning_state, source_version_id, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (definition_pk, name, *parts, location, dumps(tags), dumps(props), state.value,
             source_version_id, created))
        return int(cur.lastrowid)

    def update_version(self, pk: int, props: dict, tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE versions SET props = ?, tags = ? WHERE id = ?",
                         (dumps(props), dumps(tags), pk))

    def set_provisioning_state(self, pk: int, state: ProvisioningState) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE versions SET provisioning_state = ? WHERE id = ?",
                         (state.value, pk))

    def delete_version(self, pk: int) -> None:
        """(In a transaction.) The version with its disks and region rows (cascade) and its
        queued version jobs."""
        self.con.execute("DELETE FROM versions WHERE id = ?", (pk,))
        self.cancel_version_jobs(pk)

    def versions_targeting(self, region: str) -> list[VersionRow]:
        """Every version that has ``region`` among its target regions."""
        rows = self._all(VERSION_SQL + "WHERE EXISTS (SELECT 1 FROM version_regions r WHERE "
                         "r.version_id = v.id AND r.region = ?)" + VERSION_ORDER, (region,))
        return [VersionRow.from_sql(r) for r in rows]

    def versions_with_only_copy_in(self, region: str) -> list[VersionRow]:
        """Versions whose only Completed copy is in ``region``."""
        done = ReplicationState.COMPLETED.value
        rows = self._all(
            VERSION_SQL + "WHERE EXISTS (SELECT 1 FROM version_regions r WHERE r.version_id = v.id "
            "AND r.region = ? AND r.state = ?) AND NOT EXISTS (SELECT 1 FROM "
            "version_regions r WHERE r.version_id = v.id AND r.region <> ? AND "
            "r.state = ?)" + VERSION_ORDER, (region, done, region, done))
        return [VersionRow.from_sql(r) for r in rows]
