"""The sources of an image version other than disk files: snapshots (``--os-snapshot``,
``--data-snapshots`` at ``--data-snapshot-luns``) and a managed image (``--managed-image``),
checked against the definition the way Azure checks them, before anything is written.

Both are taken by reference to the manifests they hold (nothing is read or copied): the
version's disk images share the snapshot's or image's manifest, in copy 0 of the version's
source region, which must be the region the snapshot or image is in. What a disk image came
from is recorded as Azure shows it: ``osDiskImage.source.id`` / ``dataDiskImages[].source.id``
for a snapshot, ``storageProfile.source.id`` for a managed image.

Rules (Azure's, with its messages where they are known): one OS disk source
(``osDiskImage.source.uri`` or ``.id``, or ``storageProfile.source.id``: an image version or a
managed image); a managed image or image version brings all disks (no data sources beside
it); a managed image is Generalized, so it feeds only a Generalized definition; the OS type
and Hyper-V generation of the source must be the definition's; LUNs are unique over all data
sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Conflict, InvalidArgument, NotFound
from . import ids, sources
from .capture import OS_LUN, host_caching
from .repository import DefinitionRow, Repository, VersionDisk
from .resource_groups import check_ref

SP = "properties.storageProfile"
SRC = f"{SP}.source.id"
OS_URI = f"{SP}.osDiskImage.source.uri"
OS_ID = f"{SP}.osDiskImage.source.id"
OS_SRC = f"{SP}.osDiskImage.source"
DATA = f"{SP}.dataDiskImages"


@dataclass
class ResourceSources:
    """Disk images taken from snapshots or a managed image (by reference to their manifests),
    the managed image's id for ``storageProfile.source.id``, and the LUNs they use."""

    disks: list[VersionDisk] = field(default_factory=list)
    source_id: str | None = None
    #: (lun, snapshot id) of every snapshot source, for the requested storage profile
    requested: list[tuple[int, str]] = field(default_factory=list)


def check_os_sources(*, os_vhd_uri: str | None, os_snapshot: str | None,
                     managed_image: str | None, image_version: str | None,
                     data_given: bool) -> None:
    """Exactly one OS disk source; a managed image or image version brings every disk."""
    given = [(n, v) for n, v in (("osDiskImage.source.uri (a disk file)", os_vhd_uri),
                                 ("osDiskImage.source.id (a snapshot)", os_snapshot),
                                 ("source.id (a managed image)", managed_image),
                                 ("source.id (an image version)", image_version)) if v]
    if not given:
        raise InvalidArgument(f"{OS_URI}: required (or {SRC}: a managed image or an image "
                              f"version to copy; or {OS_ID}: a snapshot)", target=OS_URI)
    whole = managed_image or image_version
    if whole and (data_given or os_vhd_uri or os_snapshot):
        raise InvalidArgument(f"{SRC}: cannot be combined with disk sources (osDiskImage, "
                              f"dataDiskImages): the "
                              f"{'managed image' if managed_image else 'image version'} "
                              f"brings all disks", target=SRC)
    if len(given) > 1:
        target = OS_SRC if (os_vhd_uri or os_snapshot) else SRC
        raise InvalidArgument(f"{target}: an image version has one OS disk source, not both "
                              f"{given[0][0]} and {given[1][0]}", target=target)


def data_snapshot_luns(snapshots: list[str], luns: list[int]) -> list[int]:
    """The LUNs of the data disk snapshots (default 0, 1, …), as az pairs them."""
    if luns and not snapshots:
        raise InvalidArgument(f"{DATA}: data disk snapshot LUNs given without data disk "
                              f"snapshots", target=DATA)
    if luns and len(luns) != len(snapshots):
        raise InvalidArgument(f"{DATA}: {len(luns)} LUN(s) given for {len(snapshots)} data "
                              f"disk snapshot(s)", target=DATA)
    return list(luns) if luns else list(range(len(snapshots)))


def _mismatch(rid: str, what: str, src: str, want: str) -> str:
    # Azure's wording (GalleryRP), e.g. "The resource with id '…' has a different Hypervisor
    # generation ['V1'] than the parent gallery image Hypervisor generation ['V2']."
    return (f"The resource with id '{rid}' has a different {what} ['{src}'] than the parent "
            f"gallery image {what} ['{want}'].")


def check_fits(rid: str, definition: DefinitionRow, *, os_type: str | None,
               hyper_v_generation: str | None, os_state: str | None, target: str) -> None:
    """The source's OS type, Hyper-V generation and OS state (where it has them) against the
    definition's: OS type and state are a BadRequest, the generation a Conflict, as Azure."""
    d = definition.properties
    if os_state and os_state != d.get("osState"):
        raise InvalidArgument(_mismatch(rid, "OS state", os_state, d.get("osState")),
                              target=target, code="BadRequest")
    if os_type and os_type != d.get("osType"):
        raise InvalidArgument(_mismatch(rid, "OS type", os_type, d.get("osType")),
                              target=target, code="BadRequest")
    want = d.get("hyperVGeneration") or "V1"
    if hyper_v_generation and hyper_v_generation != want:
        raise Conflict(_mismatch(rid, "Hypervisor generation", hyper_v_generation, want),
                       target=target)


def resolve(repo: Repository, rg: str, definition: DefinitionRow, location: str, *,
            os_snapshot: str | None, data_snapshots: list[str], luns: list[int],
            managed_image: str | None) -> ResourceSources:
    """Resolve and check the snapshot and managed image sources (``luns`` checked by
    :func:`data_snapshot_luns`). NotFound for a missing resource, InvalidArgument for an id
    of another type or another region."""
    out = ResourceSources()
    picks: list[tuple[int, str, str]] = []  # (lun, text, field)
    if os_snapshot:
        picks.append((OS_LUN, os_snapshot, OS_ID))
    for i, (lun, text) in enumerate(zip(luns, data_snapshots, strict=True)):
        picks.append((lun, text, f"{DATA}[{i}].source.id"))
    for lun, text, fld in picks:
        snap = sources.resolve(repo, text, rg, field=fld, kinds=("snapshots",))
        row = snap.row
        if row.location.lower() != location.lower():
            raise InvalidArgument(f"{fld}: snapshot '{row.name}' is in region "
                                  f"'{row.location}'; the version's source region is "
                                  f"'{location}'", target=fld)
        if lun == OS_LUN:
            p = row.properties
            check_fits(snap.id, definition, os_type=p.get("osType"),
                       hyper_v_generation=p.get("hyperVGeneration"), os_state=None,
                       target=fld)
        out.disks.append(VersionDisk(
            lun=lun, digest=row.digest, virtual_size=row.virtual_size,
            allocated_bytes=row.allocated_bytes, data_bytes=row.data_bytes, stored_bytes=0,
            host_caching=host_caching(lun), source_uri=None, source_format=row.source_format,
            source_id=snap.id))
        out.requested.append((lun, snap.id))
    if managed_image:
        ref = ids.parse_resource_ref(managed_image, rg, field=SRC, kinds=("images",))
        check_ref(repo, ref.subscription, ref.rg, SRC)
        img = repo.find_managed_image(ref.rg, ref.name)
        if img is None:
            raise NotFound(f"{SRC}: image '{ref.name}' not found in resource group '{ref.rg}'",
                           target=SRC)
        rid = ids.managed_image_id(img.subscription, img.rg, img.name)
        if img.location.lower() != location.lower():
            raise InvalidArgument(f"{SRC}: image '{img.name}' is in region '{img.location}'; "
                                  f"the version's source region is '{location}'", target=SRC)
        p = img.properties
        osd = p["storageProfile"]["osDisk"]
        check_fits(rid, definition, os_type=osd.get("osType"),
                   hyper_v_generation=p.get("hyperVGeneration") or "V1",
                   os_state=osd.get("osState") or "Generalized", target=SRC)
        for d in repo.managed_image_disks(img.id):
            out.disks.append(VersionDisk(
                lun=d.lun, digest=d.digest, virtual_size=d.virtual_size,
                allocated_bytes=d.allocated_bytes, data_bytes=d.data_bytes, stored_bytes=0,
                host_caching=host_caching(d.lun), source_uri=None,
                source_format=d.source_format))
        out.source_id = rid
    return out
