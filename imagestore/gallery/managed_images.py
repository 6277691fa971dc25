"""Managed images (``Microsoft.Compute/images``, Azure's legacy custom images): an OS disk and
data disks by LUN, made from disks or snapshots, always ``Generalized``.

**Create** takes each source as Azure would copy it: a snapshot's manifest is shared (nothing
read), a disk's file is captured as it is now into copy 0 of its region (deduplicated). Every
source must be in one region, the image's. The rows are inserted in one transaction after the
captures; a failure removes the manifests it published. An image feeds ``sig image-version
create --managed-image`` (Generalized definitions only) — it is no gallery image definition.

**Delete** removes the rows, then unpublishes the manifests nothing else uses.
"""

from __future__ import annotations

from ..errors import Conflict, IntegrityError, InvalidArgument
from . import arm_image, capture, resources, sources, validate
from .capture_intents import CaptureIntent
from .placement import Placement
from .progress import Observer
from .repository import ManagedImageDisk, Repository
from .versions import DEFAULT_LOCATION

_OS = "properties.storageProfile.osDisk"
_OS_TYPE = "properties.storageProfile.osDisk.osType"
_DATA = "properties.storageProfile.dataDisks"
_HYPER_V = "properties.hyperVGeneration"
CACHING = ("None", "ReadOnly", "ReadWrite")
#: StorageAccountTypes an image disk may name
STORAGE_SKUS = ("Standard_LRS", "Premium_LRS", "StandardSSD_LRS", "UltraSSD_LRS", "Premium_ZRS",
                "StandardSSD_ZRS", "PremiumV2_LRS")


class ManagedImages:
    """The managed image operations over the repository."""

    def __init__(self, repo: Repository, placement: Placement) -> None:
        self.repo = repo
        self.placement = placement

    def create(self, rg: str, name: str, source: str, *, os_type: str | None,
               data_disk_sources: list[str] | tuple[str, ...] = (),
               data_disk_luns: list[int] | tuple[int, ...] | None = None,
               hyper_v_generation: str | None = None, location: str | None = None,
               os_disk_caching: str | None = None, data_disk_caching: str | None = None,
               storage_sku: str | None = None, zone_resilient: bool = False,
               tags: dict | None = None, observer: Observer | None = None,
               threads: int = 2) -> dict:
        """Create image ``name`` from ``source`` (OS disk: a disk or snapshot, name or id) and
        ``data_disk_sources`` (at ``data_disk_luns``, default 0, 1, … in order, as az
        numbers them). Returns the image's JSON."""
        validate.resource_group(rg)
        validate.disk_name(name, "imageName")
        if os_type is None:
            raise InvalidArgument(f"{_OS_TYPE}: required to create the image (Linux or "
                                  f"Windows)", target=_OS_TYPE)
        os_type = validate.enum(_OS_TYPE, os_type, validate.OS_TYPES)
        hyperv = validate.enum(_HYPER_V, hyper_v_generation or "V1",
                               validate.HYPER_V_GENERATIONS)
        os_caching = validate.enum(f"{_OS}.caching", os_disk_caching or "ReadWrite", CACHING)
        data_caching = validate.enum(f"{_DATA}.caching", data_disk_caching or "None", CACHING)
        sku = validate.enum(f"{_OS}.storageAccountType", storage_sku or "Standard_LRS",
                            STORAGE_SKUS)
        tags = tags or {}
        if self.repo.find_managed_image(rg, name):
            raise Conflict(f"image '{name}' already exists in resource group '{rg}'",
                           target="imageName")
        texts = list(data_disk_sources or ())
        luns = list(range(len(texts))) if data_disk_luns is None else list(data_disk_luns)
        if len(luns) != len(texts):
            raise InvalidArgument(f"{_DATA}: {len(luns)} LUN(s) for {len(texts)} data disk(s)",
                                  target=_DATA)
        for i, lun in enumerate(luns):
            if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= validate.MAX_LUN:
                raise InvalidArgument(f"{_DATA}[{i}].lun: '{lun}' must be an integer from 0 to "
                                      f"{validate.MAX_LUN}", target=f"{_DATA}[{i}].lun")
            if lun in luns[:i]:
                raise InvalidArgument(f"{_DATA}[{i}].lun: LUN {lun} is used twice",
                                      target=f"{_DATA}[{i}].lun")
        named = [(-1, source, _OS)] + [(lun, text, f"{_DATA}[{i}]") for i, (lun, text) in
                                       enumerate(zip(luns, texts, strict=True))]
        fields = {lun: fld for lun, _t, fld in named}
        resolved = {lun: sources.resolve(self.repo, text, rg, field=fld)
                    for lun, text, fld in named if not sources.is_uri(text)}
        # image files (file:// URIs, Azure's blobUri) go to the region of the other sources
        file_region = next(iter(resolved.values())).location if resolved else (
            self.placement.require_region(location or DEFAULT_LOCATION))
        srcs = [(lun, resolved[lun] if lun in resolved else
                 sources.file_source(text, file_region, field=fld)) for lun, text, fld in named]
        region = srcs[0][1].location
        for lun, s in srcs:
            if s.location.lower() != region.lower():
                field = fields[lun]
                raise InvalidArgument(f"{field}: {s.label} is in region '{s.location}'; every "
                                      f"source of an image must be in one region ('{region}')",
                                      target=field)
        if location is not None:
            loc = self.placement.require_region(location)
            if loc.lower() != region.lower():
                raise InvalidArgument(f"location: the image's sources are in region "
                                      f"'{region}', not '{loc}'", target="location")
        region = self.placement.require_region(region)
        for lun, s in srcs:
            if s.kind in ("disk", "file"):
                s.disk_file(fields[lun])  # the file is there
        store, close_store = self.placement.open_source_store(region)
        published = CaptureIntent(self.repo, self.placement, region)  # named until the row commits
        try:
            disks: list[ManagedImageDisk] = []
            for lun, s in srcs:
                if s.kind == "snapshot":
                    r = s.row
                    disks.append(ManagedImageDisk(
                        lun=lun, digest=r.digest, virtual_size=r.virtual_size,
                        allocated_bytes=r.allocated_bytes, data_bytes=r.data_bytes,
                        stored_bytes=0, source_format=r.source_format, source_kind="snapshot",
                        source_id=s.id))
                    continue
                path, sfmt = s.disk_file(fields[lun])
                label = f"image {name} " + ("os disk" if lun < 0 else f"data disk lun {lun}")
                res = capture.capture_file(
                    store, path, source_format=sfmt, label=label, allow_parent_dir=s.parent_dir,
                    threads=threads, observer=observer, published=published,
                    domain=self.placement.capture_domain(rg))
                disks.append(ManagedImageDisk(
                    lun=lun, digest=res.digest, virtual_size=res.virtual_size,
                    allocated_bytes=res.allocated_bytes, data_bytes=res.data_bytes,
                    stored_bytes=res.stored_bytes, source_format=res.source_format,
                    source_kind="managedDisk" if s.kind == "disk" else "blobUri",
                    source_id=s.id))
            props = self._properties(os_type, hyperv, os_caching, data_caching, sku,
                                     zone_resilient, disks)
            with self.repo.transaction():
                if self.repo.find_managed_image(rg, name):
                    raise Conflict(f"image '{name}' already exists in resource group '{rg}'",
                                   target="imageName")
                for d in disks:
                    if not store.has_manifest(d.digest):
                        raise IntegrityError(
                            f"manifest {d.digest} is missing from region '{region}' (removed "
                            f"by a concurrent deletion?); run the command again")
                self.repo.insert_managed_image(rg, name, region, tags, props, disks)
                published.end()
        except BaseException:
            published.abandon(store)
            raise
        finally:
            if close_store:
                store.close()
        return self.show(rg, name)

    @staticmethod
    def _properties(os_type: str, hyperv: str, os_caching: str, data_caching: str, sku: str,
                    zone_resilient: bool, disks: list[ManagedImageDisk]) -> dict:
        def disk_entry(d: ManagedImageDisk) -> dict:
            if d.source_kind == "blobUri":  # an image file (file:// URI)
                return {"blobUri": d.source_id}
            return {d.source_kind: {"id": d.source_id}}

        def local(d: ManagedImageDisk) -> dict:
            return {"manifestDigest": d.digest, "virtualSize": d.virtual_size,
                    "allocatedBytes": d.allocated_bytes, "dataBytes": d.data_bytes,
                    "storedBytes": d.stored_bytes, "sourceFormat": d.source_format}

        os_d = next(d for d in disks if d.lun < 0)
        data = sorted((d for d in disks if d.lun >= 0), key=lambda d: d.lun)
        sp: dict = {"osDisk": {"osType": os_type, "osState": "Generalized", **disk_entry(os_d),
                               "caching": os_caching, "storageAccountType": sku,
                               "diskSizeGB": resources.size_in_gb(os_d.virtual_size)}}
        sp["dataDisks"] = [{"lun": d.lun, **disk_entry(d), "caching": data_caching,
                            "storageAccountType": sku,
                            "diskSizeGB": resources.size_in_gb(d.virtual_size)} for d in data]
        sp["zoneResilient"] = bool(zone_resilient)
        out: dict = {"storageProfile": sp, "provisioningState": "Succeeded",
                     "hyperVGeneration": hyperv,
                     "localStorage": {"osDisk": local(os_d),
                                      "dataDisks": [{"lun": d.lun, **local(d)} for d in data]}}
        return out

    def show(self, rg: str, name: str) -> dict:
        """The image's JSON (NotFound when there is none)."""
        return arm_image.image_json(self.repo.managed_image(rg, name))

    def list(self, rg: str | None = None) -> list[dict]:
        """Managed images of ``rg`` (all resource groups when None)."""
        return [arm_image.image_json(r) for r in self.repo.list_managed_images(rg)]

    def delete(self, rg: str, name: str) -> list[str]:
        """Delete the image; returns the manifest digests nothing references any more."""
        with self.repo.transaction():
            row = self.repo.managed_image(rg, name)
            digests = sorted({d.digest for d in self.repo.managed_image_disks(row.id)})
            self.repo.delete_managed_image(row.id)
        with self.repo.transaction():
            freed = [d for d in digests if not self.repo.digest_referenced(d)]
            self.placement.drop_copies(row.location, digests, 0, None)
        return freed
