"""The replication state of versions per target region (``version_regions``)."""

from __future__ import annotations

from ..validate import iso, now_utc
from .rows import VersionRegion
from .states import ProvisioningState, ReplicationState
from .versions import VersionsMixin

_PENDING = (ReplicationState.QUEUED.value, ReplicationState.REPLICATING.value)


class VersionRegionsMixin(VersionsMixin):
    """Version regions (settling one sets the version's provisioning state)."""

    def regions_of(self, version_pk: int) -> list[VersionRegion]:
        """The version's target regions in the order they were added."""
        rows = self._all("SELECT * FROM version_regions WHERE version_id = ? ORDER BY rowid",
                         (version_pk,))
        return [VersionRegion.from_sql(r) for r in rows]

    def region_of(self, version_pk: int, region: str) -> VersionRegion | None:
        """The version's row for ``region``, or None when it does not target it."""
        row = self._one("SELECT * FROM version_regions WHERE version_id = ? AND region = ?",
                        (version_pk, region))
        return VersionRegion.from_sql(row) if row else None

    def add_region(self, version_pk: int, region: str, state: ReplicationState) -> None:
        """(In a transaction.) A new target region, Completed (100 %) or Queued (0 %)."""
        done = state == ReplicationState.COMPLETED
        self.con.execute(
            "INSERT INTO version_regions(version_id, region, state, progress, details, updated) "
            "VALUES (?,?,?,?,?,?)",
            (version_pk, region, state.value, 100 if done else 0, "", iso(now_utc())))

    def remove_region(self, version_pk: int, region: str) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM version_regions WHERE version_id = ? AND region = ?",
                         (version_pk, region))

    def requeue_region(self, version_pk: int, region: str) -> None:
        """(In a transaction.) Queue the region again under a new generation, so a worker
        finishing an outdated pass cannot mark it Completed."""
        self.con.execute(
            "UPDATE version_regions SET state = ?, progress = 0, details = '', bytes_done = 0, "
            "gen = gen + 1, updated = ? WHERE version_id = ? AND region = ?",
            (ReplicationState.QUEUED.value, iso(now_utc()), version_pk, region))

    def mark_capturing(self, version_pk: int, region: str, details: str) -> None:
        """(In a transaction.) The source region, while a queued capture runs."""
        self.con.execute(
            "UPDATE version_regions SET state = ?, details = ?, updated = ? "
            "WHERE version_id = ? AND region = ? AND state = ?",
            (ReplicationState.REPLICATING.value, details, iso(now_utc()), version_pk, region,
             ReplicationState.QUEUED.value))

    _GEN = "WHERE version_id = ? AND region = ? AND gen = ?"

    def begin_replication(self, version_pk: int, region: str, gen: int, total: int) -> None:
        """(In a transaction.) Generation ``gen`` of the region starts copying ``total`` bytes."""
        self.con.execute(
            f"UPDATE version_regions SET state = ?, progress = 0, details = '', bytes_done = 0, "
            f"bytes_total = ?, updated = ? {self._GEN}",
            (ReplicationState.REPLICATING.value, total, iso(now_utc()), version_pk, region, gen))

    def record_progress(self, version_pk: int, region: str, gen: int, percent: int,
                        done: int) -> None:
        """(In a transaction.)"""
        self.con.execute(
            f"UPDATE version_regions SET progress = ?, bytes_done = ?, updated = ? {self._GEN} "
            f"AND state = ?",
            (percent, done, iso(now_utc()), version_pk, region, gen,
             ReplicationState.REPLICATING.value))

    def complete_replication(self, version_pk: int, region: str, gen: int, total: int,
                             sent: int) -> bool:
        """(In a transaction.) Mark generation ``gen`` Completed; False when the row changed
        meanwhile (re-queued, removed, or the version deleted)."""
        cur = self.con.execute(
            f"UPDATE version_regions SET state = ?, progress = 100, details = '', "
            f"bytes_done = ?, bytes_sent = bytes_sent + ?, updated = ? {self._GEN}",
            (ReplicationState.COMPLETED.value, total, sent, iso(now_utc()), version_pk, region,
             gen))
        return cur.rowcount > 0

    def fail_replication(self, version_pk: int, region: str, gen: int, details: str) -> None:
        """(In a transaction.)"""
        self.con.execute(
            f"UPDATE version_regions SET state = ?, details = ?, updated = ? {self._GEN}",
            (ReplicationState.FAILED.value, details, iso(now_utc()), version_pk, region, gen))

    def fail_unfinished(self, version_pk: int, details: str) -> None:
        """(In a transaction.) Every queued or replicating region of the version fails, and
        the version's provisioning state follows."""
        self.con.execute(
            "UPDATE version_regions SET state = ?, details = ?, updated = ? WHERE "
            "version_id = ? AND state IN (?, ?)",
            (ReplicationState.FAILED.value, details, iso(now_utc()), version_pk, *_PENDING))
        self.settle_version(version_pk)

    def settle_version(self, version_pk: int) -> None:
        """(In a transaction.) provisioningState from the regions' states, once no region is
        pending: Failed if any failed, else Succeeded."""
        states = [ReplicationState(r[0]) for r in self._all(
            "SELECT state FROM version_regions WHERE version_id = ?", (version_pk,))]
        if any(s.pending for s in states):
            return  # re-queued meanwhile: another job follows
        failed = any(s == ReplicationState.FAILED for s in states)
        self.set_provisioning_state(
            version_pk, ProvisioningState.FAILED if failed else ProvisioningState.SUCCEEDED)
