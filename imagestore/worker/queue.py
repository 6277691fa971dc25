"""The job queue as the worker sees it: claim the next job, finish it, give up on it.

Jobs are rows of the ``jobs`` table (see :class:`imagestore.gallery.repository.JobKind`):
``version`` jobs (the queued capture, then every target region of the version) and ``gc``
jobs (reclaim the space of copies removed from a region). A job is ``queued`` until a worker
claims it (``running``, with the worker's pid) and is deleted when done. The services queue
jobs in the same transaction as the change that needs them.
"""

from __future__ import annotations

import os

from ..gallery.repository import JobRow, Repository

MAX_ATTEMPTS = 10  # claims of one job before it is failed (a job that kills its worker)


class JobQueue:
    """The queue of one store's gallery database."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def pending(self, version_pk: int | None = None) -> int:
        """Queued or running jobs (of one version, or all)."""
        return self.repo.pending_jobs(version_pk)

    def claim(self, only_version: int | None = None) -> JobRow | None:
        """The oldest queued job (of one version), now running for this process; None when
        there is none. ``attempts`` is the count before this claim."""
        with self.repo.transaction():
            return self.repo.claim_job(os.getpid(), only_version)

    def exhausted(self, job: JobRow) -> bool:
        """Whether the job was claimed too often (it keeps killing its worker)."""
        return job.attempts + 1 > MAX_ATTEMPTS

    def done(self, job: JobRow) -> None:
        """The job finished: remove it."""
        with self.repo.transaction():
            self.repo.delete_job(job.id)
