"""The job queue (``jobs``) and the worker lease (``worker_lease``)."""

from __future__ import annotations

import json

from ..validate import iso, now_utc
from .base import RepositoryBase
from .rows import JobRow, LeaseRow
from .states import JobKind, JobState


class JobsMixin(RepositoryBase):
    """Jobs and the worker lease."""

    def queue_version_job(self, version_pk: int, payload: dict) -> None:
        """(In a transaction.) Queue a version job; one already queued for the version absorbs
        it (payloads merged)."""
        row = self._one("SELECT id, payload FROM jobs WHERE kind = ? AND version_id = ? "
                        "AND state = ? ORDER BY id LIMIT 1",
                        (JobKind.VERSION.value, version_pk, JobState.QUEUED.value))
        if row is not None:
            merged = {**json.loads(row["payload"]), **payload}
            self.con.execute("UPDATE jobs SET payload = ? WHERE id = ?",
                             (json.dumps(merged), row["id"]))
            return
        self.con.execute("INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
                         "(?, ?, ?, ?, ?)", (JobKind.VERSION.value, version_pk,
                                             json.dumps(payload), JobState.QUEUED.value,
                                             iso(now_utc())))

    def queue_gc_job(self, region: str, version_pk: int | None = None) -> None:
        """(In a transaction.) Queue a gc of ``region`` unless one is queued already."""
        if self._one("SELECT 1 FROM jobs WHERE kind = ? AND state = ? AND "
                     "json_extract(payload, '$.region') = ? COLLATE NOCASE",
                     (JobKind.GC.value, JobState.QUEUED.value, region)):
            return
        self.con.execute("INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
                         "(?, ?, ?, ?, ?)", (JobKind.GC.value, version_pk,
                                             json.dumps({"region": region}),
                                             JobState.QUEUED.value, iso(now_utc())))

    def queue_unreference_job(self, payload: dict) -> int:
        """(In a transaction.) Queue the unreference of a deleted version's data; its id."""
        cur = self.con.execute(
            "INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
            "(?, NULL, ?, ?, ?)", (JobKind.UNREFERENCE.value, json.dumps(payload),
                                   JobState.QUEUED.value, iso(now_utc())))
        return int(cur.lastrowid)

    def queued_unreference_jobs(self) -> list[tuple[int, dict]]:
        """(id, payload) of the queued unreference jobs, oldest first."""
        return [(int(r["id"]), json.loads(r["payload"])) for r in self._all(
            "SELECT id, payload FROM jobs WHERE kind = ? AND state = ? ORDER BY id",
            (JobKind.UNREFERENCE.value, JobState.QUEUED.value))]

    def cancel_version_jobs(self, version_pk: int) -> None:
        """(In a transaction.) Drop the version's queued (not running) jobs."""
        self.con.execute("DELETE FROM jobs WHERE kind = ? AND version_id = ? AND state = ?",
                         (JobKind.VERSION.value, version_pk, JobState.QUEUED.value))

    def pending_jobs(self, version_pk: int | None = None) -> int:
        """Queued or running jobs (of one version, or all)."""
        states = (JobState.QUEUED.value, JobState.RUNNING.value)
        if version_pk is None:
            return self._one("SELECT count(*) FROM jobs WHERE state IN (?, ?)", states)[0]
        return self._one("SELECT count(*) FROM jobs WHERE state IN (?, ?) AND version_id = ?",
                         (*states, version_pk))[0]

    def claim_job(self, pid: int, only_version: int | None = None) -> JobRow | None:
        """(In a transaction.) The oldest queued job (of one version), now running for ``pid``;
        the row is returned as it was before the claim."""
        sql = "SELECT * FROM jobs WHERE state = ?"
        args: tuple = (JobState.QUEUED.value,)
        if only_version is not None:
            sql += " AND version_id = ?"
            args += (only_version,)
        row = self._one(sql + " ORDER BY id LIMIT 1", args)
        if row is None:
            return None
        self.con.execute("UPDATE jobs SET state = ?, worker_pid = ?, attempts = attempts + 1, "
                         "started = ? WHERE id = ?",
                         (JobState.RUNNING.value, pid, iso(now_utc()), row["id"]))
        return JobRow.from_sql(row)

    def delete_job(self, job_id: int) -> None:
        """(In a transaction.) A job that finished (or failed for good)."""
        self.con.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def requeue_running_jobs(self) -> None:
        """(In a transaction.) Jobs a dead worker was running go back to the queue."""
        self.con.execute("UPDATE jobs SET state = ?, worker_pid = NULL WHERE state = ?",
                         (JobState.QUEUED.value, JobState.RUNNING.value))

    # -- the worker lease --------------------------------------------------------------------

    def lease(self) -> LeaseRow | None:
        """The lease row as stored (live or not)."""
        row = self._one("SELECT pid, host, heartbeat, started FROM worker_lease WHERE id = 1")
        return LeaseRow.from_sql(row) if row else None

    def write_lease(self, pid: int, host: str, heartbeat: float) -> None:
        """(In a transaction.) ``pid`` on ``host`` holds the lease from now on."""
        self.con.execute(
            "INSERT INTO worker_lease(id, pid, host, heartbeat, started) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, "
            "heartbeat = excluded.heartbeat, started = excluded.started",
            (pid, host, heartbeat, iso(now_utc())))

    def beat(self, pid: int, host: str, heartbeat: float) -> bool:
        """Refresh the lease's heartbeat if ``pid`` on ``host`` still holds it (autocommit);
        False when it no longer does."""
        cur = self.con.execute(
            "UPDATE worker_lease SET heartbeat = ? WHERE id = 1 AND pid = ? AND host = ?",
            (heartbeat, pid, host))
        return cur.rowcount > 0

    def drop_lease(self, pid: int, host: str) -> None:
        """(In a transaction.) Release the lease if ``pid`` on ``host`` holds it."""
        self.con.execute("DELETE FROM worker_lease WHERE id = 1 AND pid = ? AND host = ?",
                         (pid, host))
