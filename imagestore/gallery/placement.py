"""Where a version's data lives: which regions exist, the blob store a capture goes to, the
copy slots a disk is read from, target-region rules, and unpublishing surplus copies.

Copy placement itself (zones, slots, storage account types) is :mod:`imagestore.regions.replicas`;
this module applies it to gallery versions. It never builds store paths: it asks the blob
stores (``has_manifest``) and the region registry. Which dedup domain a capture runs in
is :mod:`.dedup`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..errors import InvalidArgument, NotFound
from ..home import DEFAULT_REGION, Home
from ..regions import replicas
from ..regions.registry import Region, RegionRegistry
from ..store.cas import BlobStore
from ..store.domains import Domain
from . import dedup, ids, validate
from .repository import Repository

#: region name -> its canonical name, or None when there is no such region
RegionLookup = Callable[[str], "str | None"]

#: the properties a target region entry may have
TARGET_REGION_KEYS = ("name", "regionalReplicaCount", "storageAccountType", "excludeFromLatest")


class Placement:
    """Regions and copies for the gallery services. ``region_lookup`` overrides which regions
    exist (tests); by default the store's region registry decides."""

    def __init__(self, home: Home, repo: Repository, *,
                 region_lookup: RegionLookup | None = None) -> None:
        self.home = home
        self.repo = repo
        self.registry = RegionRegistry(home)
        self.region_lookup = region_lookup

    # -- which regions exist -----------------------------------------------------------------

    def lookup(self, name: str) -> str | None:
        """The canonical name of region ``name``, or None."""
        if self.region_lookup is not None:
            return self.region_lookup(name)
        r = self.registry.find(name)
        return r.name if r is not None else None

    def region_exists(self, name: str) -> bool:
        """Whether region ``name`` exists."""
        return self.lookup(name) is not None

    def require_region(self, name: str, field: str = "location") -> str:
        """The canonical name of region ``name``; InvalidArgument/NotFound naming ``field``."""
        validate.region_name(name, field)
        canon = self.lookup(name)
        if canon is None:
            raise NotFound(f"{field}: region '{name}' not found (create it with 'imagestore "
                           f"region create')", target=validate.target_of(field))
        return canon

    def region(self, name: str, field: str = "location") -> Region:
        """The registered region ``name`` (NotFound naming ``field``)."""
        return self.registry.get(name, field)

    # -- stores ------------------------------------------------------------------------------

    def dedup_domain(self, resource_id: str) -> Domain:
        """The dedup domain a capture into ``resource_id`` runs in: that of its
        subscription's tenant (:mod:`.dedup`). Call before anything is stored."""
        return dedup.domain_of(self.repo.con, self.home.root, resource_id)

    def capture_domain(self, rg: str) -> Domain:
        """The dedup domain of a capture into a resource of resource group ``rg`` (a
        resource's subscription is its group's)."""
        return self.dedup_domain(ids.resource_group_id(self.subscription_of(rg), rg))

    def subscription_of(self, rg: str) -> str:
        """The subscription of resource group ``rg`` (:meth:`Repository.subscription_of`)."""
        return self.repo.subscription_of(rg)

    def open_source_store(self, location: str) -> tuple[BlobStore, bool]:
        """Copy 0 of region ``location``, where captures go; the flag says whether the
        caller must close it (the home's cached ``local`` store is shared)."""
        if location.lower() == DEFAULT_REGION:
            return self.home.blob_store(DEFAULT_REGION), False
        region = self.region(location)
        if region.storage != "directory":
            raise InvalidArgument(
                f"location: region '{region.name}' keeps its data in blob storage, where "
                f"captures do not go; capture into a directory region (e.g. local) and list "
                f"'{region.name}' in the target regions", target="location")
        replicas.check_zones(region, [region.zones[0]])
        return replicas.open_slot(region.zones[0], self.home.config), True

    def read_slots(self, region_name: str, copies: int, sku: str) -> list[str]:
        """Slot directories of a version's copies in a region (placement order), followed by
        any other slot of the region (fail-over reads may use them too)."""
        region = self.region(region_name)
        plan = replicas.plan_copies(region, copies, sku)
        return plan + [p for p in replicas.region_slots(region) if p not in plan]

    def open_slots_holding(self, paths: Iterable[str], digest: str) -> list[BlobStore]:
        """The blob stores among ``paths`` that hold manifest ``digest`` (caller closes)."""
        out: list[BlobStore] = []
        for p in paths:
            try:
                s = replicas.open_slot(p, self.home.config, create=False)
            except NotFound:
                continue
            if s.has_manifest(digest):
                out.append(s)
            else:
                s.close()
        return out

    def store_holding(self, digest: str, prefer: str) -> BlobStore:
        """A blob store holding ``digest``: a slot of region ``prefer`` first (copy 0 of the
        source region is where a capture went), else any slot of any region (a version
        copied by reference from elsewhere). The caller closes it."""
        regions = self.registry.list()
        regions.sort(key=lambda r: r.name.lower() != prefer.lower())
        for region in regions:
            for p in replicas.region_slots(region):
                found = self.open_slots_holding([p], digest)
                if found:
                    return found[0]
        raise NotFound(f"manifest {digest}: no region holds the version's data (capture lost?)")

    # -- target regions ----------------------------------------------------------------------

    def normalize_target_regions(self, trs, replica_count: int, sat: str, location: str,
                                 field: str) -> list[dict]:
        """Check and complete ``targetRegions`` entries: known regions, each once, counts and
        storage account types filled in from the version's defaults, Standard_ZRS only with
        enough zones, the source region included, at most MAX_REPLICAS copies in total."""
        target = validate.target_of(field)
        if not isinstance(trs, list) or not trs:
            raise InvalidArgument(f"{field}: must list at least one region", target=target)
        out: list[dict] = []
        seen: set[str] = set()
        for i, tr in enumerate(trs):
            if not isinstance(tr, dict) or not tr.get("name"):
                raise InvalidArgument(f"{field}[{i}]: must be an object with a name",
                                      target=f"{target}[{i}]")
            extra = set(tr) - set(TARGET_REGION_KEYS)
            if extra:
                raise InvalidArgument(f"{field}[{i}]: unknown property '{sorted(extra)[0]}'",
                                      target=f"{target}[{i}]")
            name = self.require_region(str(tr["name"]), field)
            if name.lower() in seen:
                raise InvalidArgument(f"{field}: region '{name}' is listed twice", target=target)
            seen.add(name.lower())
            d = {
                "name": name,
                "regionalReplicaCount": validate.replica_count(
                    f"{field}[{i}].regionalReplicaCount",
                    tr.get("regionalReplicaCount", replica_count)),
                "storageAccountType": validate.enum(
                    f"{field}[{i}].storageAccountType", tr.get("storageAccountType") or sat,
                    validate.STORAGE_ACCOUNT_TYPES),
            }
            if tr.get("excludeFromLatest") is not None:
                d["excludeFromLatest"] = validate.boolean(
                    f"{field}[{i}].excludeFromLatest", tr["excludeFromLatest"])
            if d["storageAccountType"] == "Standard_ZRS":
                region = self.registry.find(name) if self.region_lookup is None else None
                if region is not None and d["regionalReplicaCount"] > len(region.zones):
                    raise InvalidArgument(
                        f"{field}: region '{name}': Standard_ZRS keeps each of "
                        f"{d['regionalReplicaCount']} copies in a distinct zone, but the region "
                        f"has {len(region.zones)} zone(s)", target=target)
            out.append(d)
        if location.lower() not in seen:
            raise InvalidArgument(f"{field}: must include the source region '{location}'",
                                  target=target)
        total = sum(d["regionalReplicaCount"] for d in out)
        if total > validate.MAX_REPLICAS:
            raise InvalidArgument(
                f"{field}: {total} replicas in total; an image version has at most "
                f"{validate.MAX_REPLICAS} replicas over all its regions", target=target)
        return out

    # -- unpublishing ------------------------------------------------------------------------

    def drop_copies(self, region_name: str, digests: Iterable[str], keep: int,
                    exclude_version: int | None) -> list[str]:
        """Unpublish ``digests`` from the slots of a region beyond the first ``keep`` copies,
        keeping what other versions still need there. Returns the slots changed."""
        region = self.registry.find(region_name)
        if region is None:
            return []
        changed: list[str] = []
        for d in dict.fromkeys(x for x in digests if x):
            k = max(keep, self.repo.copies_needed(d, region.name, exclude_version))
            changed += replicas.remove_copies(region, d, keep=k)
        return changed
