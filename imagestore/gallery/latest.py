"""``latest``: which version of an image definition a reference without a version means.

The highest Major, then Minor, then Patch among the active (not soft-deleted) versions whose
replication to the region has completed and that are not excluded from latest there (a target region's own
``excludeFromLatest`` overrides the version's). A version still replicating elsewhere, or
failed in another region, qualifies where it is complete.
"""

from __future__ import annotations

from ..errors import NotFound
from .repository import DefinitionRow, ReplicationState, Repository, VersionRow


def latest_version(repo: Repository, definition: DefinitionRow, region: str) -> VersionRow:
    """The latest version of ``definition`` in ``region``; NotFound saying why each version
    was passed over."""
    skipped: list[str] = []
    for v in _newest_first(repo, definition):
        pp = v.properties["publishingProfile"]
        tr = next((t for t in pp["targetRegions"] if t["name"].lower() == region.lower()), None)
        if tr is None:
            skipped.append(f"{v.name} (not in region {region})")
            continue
        excl = tr.get("excludeFromLatest")
        if excl is None:
            excl = pp.get("excludeFromLatest", False)
        if excl:
            skipped.append(f"{v.name} (excluded from latest)")
            continue
        reg = repo.region_of(v.id, region)
        if reg is None or reg.state != ReplicationState.COMPLETED:
            state = reg.state if reg is not None else "missing"
            skipped.append(f"{v.name} (replication {state} in {region})")
            continue
        return v
    why = f": {', '.join(skipped)}" if skipped else ""
    raise NotFound(
        f"image definition '{definition.gallery}/{definition.name}': no version qualifies as "
        f"latest in region '{region}' ({len(skipped)} version(s){why})"
    )


#: ``latest`` reads versions newest first in pages of this many, doubling (1, 2, 4, ...): the answer is
#: nearly always among the newest few, so its cost does not grow with the history
#: (``imagestore bench scale``)
FIRST_PAGE = 1


def _newest_first(repo: Repository, definition: DefinitionRow):
    offset, size = 0, FIRST_PAGE
    while True:
        page = repo.list_versions(definition, newest_first=True, limit=size, offset=offset,
                                  active_only=True)  # soft-deleted: never latest
        yield from page
        if len(page) < size:
            return
        offset += size
        size = min(size * 2, 1024)
