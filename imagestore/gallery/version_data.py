"""Hard deletion of an image version: its rows, then its data's references (shared by
``sig image-version delete`` and soft delete's purge).

The rows go in one transaction together with an ``unreference`` job naming the version's
manifests and regions; the second transaction unpublishes them and deletes that job. A kill
between the two leaves the job queued: ``store gc`` (and the worker) finish it
(:func:`resume_unreferences`), so no manifest stays published that nothing references."""

from __future__ import annotations

from .placement import Placement
from .repository import Repository, VersionRow


def delete_rows(repo: Repository, row: VersionRow) -> dict:
    """(In a transaction.) Delete the version's rows and queue the job that unreferences its
    data; returns that job's payload for :func:`unreference`."""
    digests = sorted({d.digest for d in repo.disks_of(row.id) if d.digest})
    regions = [r.region for r in repo.regions_of(row.id)]
    repo.delete_version(row.id)
    work = {"location": row.location, "digests": digests, "regions": regions}
    work["job"] = repo.queue_unreference_job(work)
    return work


def resume_unreferences(repo: Repository, placement: Placement, *,
                        dry_run: bool = False) -> list[str]:
    """Finish the unreferences a kill interrupted (queued ``unreference`` jobs); returns the
    digests nothing references any more (``dry_run``: would, changing nothing)."""
    freed: list[str] = []
    for job_id, payload in repo.queued_unreference_jobs():
        if dry_run:
            freed += [d for d in payload["digests"] if not repo.digest_referenced(d)]
        else:
            freed += unreference(repo, placement, {**payload, "job": job_id})
    return sorted(set(freed))


def freed_by_deleting(repo: Repository, rows: list[VersionRow]) -> list[str]:
    """The digests nothing would reference once ``rows`` were deleted (changes nothing)."""
    pks = [r.id for r in rows]
    digests = {d.digest for r in rows for d in repo.disks_of(r.id) if d.digest}
    return sorted(d for d in digests if not repo.digest_referenced(d, excluding_versions=pks))


def unreference(repo: Repository, placement: Placement, work: dict) -> list[str]:
    """Unpublish a deleted version's copies from every region (keeping what other versions
    still use there), in a second transaction: holding the write lock, a version being
    created concurrently either committed its reference already (the digest is kept) or will
    find the manifest gone and fail cleanly. Returns the digests nothing references any more
    (their chunks are garbage for ``store gc`` / ``region gc``)."""
    digests = work["digests"]
    with repo.transaction():
        freed = [d for d in digests if not repo.digest_referenced(d)]
        for region in dict.fromkeys([work["location"], *work["regions"]]):
            placement.drop_copies(region, digests, 0, None)
        repo.delete_job(work["job"])
    return freed


def purge(repo: Repository, placement: Placement, row: VersionRow) -> list[str]:
    """Delete the version and release its data now (both steps above)."""
    with repo.transaction():
        work = delete_rows(repo, row)
    return unreference(repo, placement, work)
