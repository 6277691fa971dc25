"""Hard deletion of an image version: its rows, then its data's references (shared by
``sig image-version delete`` and soft delete's purge)."""

from __future__ import annotations

from .placement import Placement
from .repository import Repository, VersionRow


def delete_rows(repo: Repository, row: VersionRow) -> tuple[list[str], list[str]]:
    """(In a transaction.) Delete the version's rows; returns (its manifest digests, its
    regions) for :func:`unreference`."""
    digests = sorted({d.digest for d in repo.disks_of(row.id) if d.digest})
    regions = [r.region for r in repo.regions_of(row.id)]
    repo.delete_version(row.id)
    return digests, regions


def unreference(repo: Repository, placement: Placement, row: VersionRow, digests: list[str],
                regions: list[str]) -> list[str]:
    """Unpublish a deleted version's copies from every region (keeping what other versions
    still use there), in a second transaction: holding the write lock, a version being
    created concurrently either committed its reference already (the digest is kept) or will
    find the manifest gone and fail cleanly. Returns the digests nothing references any more
    (their chunks are garbage for ``store gc`` / ``region gc``)."""
    with repo.transaction():
        freed = [d for d in digests if not repo.digest_referenced(d)]
        for region in dict.fromkeys([row.location, *regions]):
            placement.drop_copies(region, digests, 0, None)
    return freed


def purge(repo: Repository, placement: Placement, row: VersionRow) -> list[str]:
    """Delete the version and release its data now (both steps above)."""
    with repo.transaction():
        digests, regions = delete_rows(repo, row)
    return unreference(repo, placement, row, digests, regions)
