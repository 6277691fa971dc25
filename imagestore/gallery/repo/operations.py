"""Long-running operations of the REST API (``operations``)."""

from __future__ import annotations

from ..validate import iso, now_utc
from .base import RepositoryBase
from .rows import OperationRow, dumps


class OperationsMixin(RepositoryBase):
    """Long-running operations."""

    def insert_operation(self, op_id: str, kind: str, resource_id: str, location: str,
                         version_pk: int | None, status: str, error: dict | None = None) -> None:
        """(In a transaction.) Record an operation."""
        ended = None if status == "InProgress" else iso(now_utc())
        self.con.execute(
            "INSERT INTO operations(id, kind, resource_id, location, version_id, status, error,"
            " created, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (op_id, kind, resource_id, location, version_pk, status,
             dumps(error) if error else None, iso(now_utc()), ended))

    def operation(self, op_id: str) -> OperationRow | None:
        """The operation, or None."""
        row = self._one("SELECT * FROM operations WHERE id = ?", (op_id,))
        return OperationRow.from_sql(row) if row else None

    def finish_operation(self, op_id: str, status: str, error: dict | None = None) -> None:
        """(In a transaction.) An operation reached its end (only the first end counts)."""
        self.con.execute("UPDATE operations SET status = ?, error = ?, ended = ? "
                         "WHERE id = ? AND status = 'InProgress'",
                         (status, dumps(error) if error else None, iso(now_utc()), op_id))

    def operations_in_progress(self) -> list[OperationRow]:
        """Operations not finished yet (a restarted server resumes their work)."""
        return [OperationRow.from_sql(r) for r in
                self._all("SELECT * FROM operations WHERE status = 'InProgress' ORDER BY created")]
