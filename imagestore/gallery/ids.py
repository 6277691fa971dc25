"""ARM resource ids of the gallery layer: formatting, and parsing of full ids and short forms.

Full ids::

    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries/{g}
        /images/{d}/versions/{v}
    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}

Short forms (resource group from ``-g``, default ``default``): ``g/d/v`` names a version,
``g/d`` names a definition (= its latest version). ``latest`` as the version means the same.
Segment keywords are matched case-insensitively, as ARM does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ImagestoreError, InvalidArgument

#: the local subscription (of the local tenant): where a resource group without a row is
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RG = "default"
PROVIDER = "Microsoft.Compute"

GALLERY_TYPE = "Microsoft.Compute/galleries"
IMAGE_TYPE = "Microsoft.Compute/galleries/images"
VERSION_TYPE = "Microsoft.Compute/galleries/images/versions"
DISK_TYPE = "Microsoft.Compute/disks"
SNAPSHOT_TYPE = "Microsoft.Compute/snapshots"
MANAGED_IMAGE_TYPE = "Microsoft.Compute/images"

#: id segment of the top-level resources a disk, snapshot, image or version source can name
#: -> what messages call it
RESOURCE_KINDS = {"disks": "disk", "snapshots": "snapshot", "images": "image"}


def subscription_id(sub: str) -> str:
    """The ARM id of a subscription."""
    return f"/subscriptions/{sub}"


def resource_group_id(sub: str, rg: str) -> str:
    """The ARM id of a resource group."""
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def _prefix(sub: str, rg: str) -> str:
    return f"{resource_group_id(sub, rg)}/providers/{PROVIDER}"


def resource_id(sub: str, rg: str, kind: str, name: str) -> str:
    """The ARM id of a top-level Microsoft.Compute resource (``kind``: ``disks``,
    ``virtualMachines`` …)."""
    return f"{_prefix(sub, rg)}/{kind}/{name}"


def gallery_id(sub: str, rg: str, gallery: str) -> str:
    """The ARM id of a gallery (``sub``: its resource group's subscription)."""
    return f"{_prefix(sub, rg)}/galleries/{gallery}"


def image_id(sub: str, rg: str, gallery: str, image: str) -> str:
    """The ARM id of an image definition."""
    return f"{gallery_id(sub, rg, gallery)}/images/{image}"


def version_id(sub: str, rg: str, gallery: str, image: str, version: str) -> str:
    """The ARM id of an image version."""
    return f"{image_id(sub, rg, gallery, image)}/versions/{version}"


def disk_id(sub: str, rg: str, name: str) -> str:
    """The ARM id of a disk."""
    return resource_id(sub, rg, "disks", name)


def snapshot_id(sub: str, rg: str, name: str) -> str:
    """The ARM id of a snapshot."""
    return resource_id(sub, rg, "snapshots", name)


def managed_image_id(sub: str, rg: str, name: str) -> str:
    """The ARM id of a managed image (``Microsoft.Compute/images``)."""
    return resource_id(sub, rg, "images", name)


@dataclass(frozen=True)
class ResourceRef:
    """A top-level Microsoft.Compute resource named by id or by name: ``kind`` is the id
    segment (``disks``, ``snapshots``, ``images``), or None for a bare name (the caller
    decides what it may be, as az does: a snapshot first, then a disk)."""

    kind: str | None
    rg: str
    name: str
    #: the subscription a full id names (None for a bare name); the caller checks it exists
    #: and holds ``rg`` (:func:`.resource_groups.check_ref`)
    subscription: str | None = None


def parse_resource_ref(text: str, default_rg: str, *, field: str,
                       kinds: tuple[str, ...]) -> ResourceRef:
    """A full ARM id of a disk, snapshot or managed image (``kinds``: which are allowed), or a
    bare name in ``default_rg``. An id of any other type is refused naming what it is."""
    raw = (text or "").strip()
    if not raw:
        raise _err(InvalidArgument, field, f"{field}: empty resource id")
    allowed = " or ".join(RESOURCE_KINDS[k] for k in kinds)
    if "/" not in raw:
        return ResourceRef(None, default_rg, raw)
    parts = raw.strip("/").split("/")
    keys = [p.lower() for p in parts[0::2]]
    vals = parts[1::2]
    if len(parts) % 2 or any(not v for v in vals) or keys[:3] != [
            "subscriptions", "resourcegroups", "providers"] or len(keys) < 4:
        raise _err(InvalidArgument, field, f"{field}: '{text}' is not a valid {allowed} id "
                   f"(/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/"
                   f"{'|'.join(kinds)}/NAME)")
    if vals[2].lower() != PROVIDER.lower():
        raise _err(InvalidArgument, field, f"{field}: provider '{vals[2]}' is not {PROVIDER}")
    if len(keys) != 4 or keys[3] not in kinds:
        what = "/".join(parts[6::2]) or "?"
        article = "an" if allowed[0] in "aeiou" else "a"
        raise _err(InvalidArgument, field,
                   f"{field}: '{text}' is a {PROVIDER}/{what} id, not {article} {allowed} id")
    return ResourceRef(keys[3], vals[1], vals[3], vals[0])


@dataclass(frozen=True)
class ImageRef:
    """A reference to an image version, or to a definition (``version is None`` = latest)."""

    rg: str
    gallery: str
    image: str
    version: str | None
    #: the subscription a full id names (None for a short form); the caller checks it
    subscription: str | None = None

    @property
    def is_latest(self) -> bool:
        """The reference names a definition: its latest version is meant."""
        return self.version is None


def _err(cls: type[ImagestoreError], field: str, message: str) -> ImagestoreError:
    """An error about ``field`` (a JSON target unless it is a flag name)."""
    return cls(message, target=None if field.startswith("-") else field)


def parse_image_ref(text: str, default_rg: str = DEFAULT_RG, *, field: str = "id") -> ImageRef:
    """Parse a full ARM version/definition id or a short form ``g/d/v`` / ``g/d``."""
    raw = (text or "").strip()
    if not raw:
        raise _err(InvalidArgument, field, f"{field}: empty image reference")
    if raw.startswith("/"):
        parts = raw.strip("/").split("/")
        keys = [p.lower() for p in parts[0::2]]
        vals = parts[1::2]
        if len(parts) % 2 or any(not v for v in vals):
            raise _err(InvalidArgument, field, f"{field}: '{text}' is not a valid resource id")
        want = ["subscriptions", "resourcegroups", "providers", "galleries", "images"]
        if keys[: len(want)] != want or len(keys) not in (5, 6) or (
            len(keys) == 6 and keys[5] != "versions"
        ):
            raise _err(InvalidArgument, field,
                f"{field}: '{text}' is not a gallery image definition or version id "
                f"(/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/galleries/G"
                f"/images/D[/versions/V])"
            )
        if vals[2].lower() != PROVIDER.lower():
            raise _err(InvalidArgument, field, f"{field}: provider '{vals[2]}' is not {PROVIDER}")
        sub: str | None = vals[0]
        rg, g, d = vals[1], vals[3], vals[4]
        v = vals[5] if len(vals) == 6 else None
    else:
        parts = raw.split("/")
        if len(parts) not in (2, 3) or any(not p for p in parts):
            raise _err(InvalidArgument, field,
                f"{field}: '{text}' is neither a resource id nor GALLERY/DEFINITION[/VERSION]"
            )
        rg, sub = default_rg, None
        g, d = parts[0], parts[1]
        v = parts[2] if len(parts) == 3 else None
    if v is not None and v.lower() == "latest":
        v = None
    return ImageRef(rg, g, d, v, sub)
