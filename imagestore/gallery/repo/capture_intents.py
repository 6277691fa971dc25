"""Capture intents (``capture_intents``, migration ``0013_capture_intents``; the rules are in
:mod:`..capture_intents`): the manifests a running capture is about to publish."""

from __future__ import annotations

from .base import RepositoryBase
from .rows import CaptureIntentRow


class CaptureIntentsMixin(RepositoryBase):
    """Capture intents."""

    def insert_capture_intent(self, host: str, pid: int, region: str, store: str,
                              digests: str) -> int:
        """(In a transaction.) A new intent created now (database clock); returns its id.
        ``digests`` is the JSON list of the manifests it names."""
        cur = self.con.execute(
            "INSERT INTO capture_intents(host, pid, region, store, digests, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (host, pid, region, store, digests, self.now()))
        return int(cur.lastrowid)

    def set_capture_intent_digests(self, pk: int, digests: str) -> None:
        """(In a transaction.) The intent names these manifests now (a JSON list)."""
        self.con.execute("UPDATE capture_intents SET digests = ? WHERE id = ?", (digests, pk))

    def delete_capture_intent(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM capture_intents WHERE id = ?", (pk,))

    def capture_intents(self) -> list[CaptureIntentRow]:
        """Every intent, oldest first."""
        return [CaptureIntentRow.from_sql(r) for r in self._all(
            "SELECT id, host, pid, region, store, digests, created FROM capture_intents "
            "ORDER BY id")]
