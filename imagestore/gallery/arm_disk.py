"""ARM JSON of a managed disk (``Microsoft.Compute/disks``) made from an image version.

Two halves:

* :func:`carried_over` is called once, when the disk is created: what Azure copies from the
  image definition onto a disk made from it (OS disk: ``osType``, ``hyperVGeneration``,
  ``purchasePlan``, ``supportedCapabilities``, ``supportsHibernation``,
  ``securityProfile.securityType``; a data disk gets none of them). The result is stored with
  the disk, so a later change or deletion of the definition does not change the disk.
* :func:`disk_json` renders a stored disk row the way the Disks - Get API returns it: the
  stored properties plus the fields every Azure disk carries (``uniqueId``, platform-key
  ``encryption``, ``networkAccessPolicy``/``publicNetworkAccess``, the performance ``tier``
  with its ``diskIOPSReadWrite``/``diskMBpsReadWrite``).

Local facts (file path, format, bytes written) stay under ``properties.localStorage``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime

from . import ids

#: a disk's SKU; imagestore's disks are files on local storage, shown as Standard HDD
DEFAULT_SKU = "Standard_LRS"
SKU_TIERS = {"Standard_LRS": "Standard", "StandardSSD_LRS": "Standard", "Premium_LRS": "Premium"}

#: baseline performance tiers: (name, size GiB, IOPS, MB/s), as Azure's managed disk size
#: tables give them (Standard HDD S*, Standard SSD E*, Premium SSD P*). A disk gets the
#: smallest tier its size fits in, as Azure assigns it at creation.
PERFORMANCE_TIERS: dict[str, tuple[tuple[str, int, int, int], ...]] = {
    "Standard_LRS": (
        ("S4", 32, 500, 60), ("S6", 64, 500, 60), ("S10", 128, 500, 60),
        ("S15", 256, 500, 60), ("S20", 512, 500, 60), ("S30", 1024, 500, 60),
        ("S40", 2048, 500, 60), ("S50", 4096, 500, 60), ("S60", 8192, 1300, 300),
        ("S70", 16384, 2000, 500), ("S80", 32767, 2000, 500),
    ),
    "StandardSSD_LRS": (
        ("E1", 4, 500, 60), ("E2", 8, 500, 60), ("E3", 16, 500, 60), ("E4", 32, 500, 60),
        ("E6", 64, 500, 60), ("E10", 128, 500, 60), ("E15", 256, 500, 60),
        ("E20", 512, 500, 60), ("E30", 1024, 500, 60), ("E40", 2048, 500, 60),
        ("E50", 4096, 500, 60), ("E60", 8192, 2000, 400), ("E70", 16384, 4000, 600),
        ("E80", 32767, 6000, 750),
    ),
    "Premium_LRS": (
        ("P1", 4, 120, 25), ("P2", 8, 120, 25), ("P3", 16, 120, 25), ("P4", 32, 120, 25),
        ("P6", 64, 240, 50), ("P10", 128, 500, 100), ("P15", 256, 1100, 125),
        ("P20", 512, 2300, 150), ("P30", 1024, 5000, 200), ("P40", 2048, 7500, 250),
        ("P50", 4096, 7500, 250), ("P60", 8192, 16000, 500), ("P70", 16384, 18000, 750),
        ("P80", 32767, 20000, 900),
    ),
}

#: gallery ``SecurityType`` feature -> where a disk made from the image shows it
_SECURITY_TYPE = {  # disk securityProfile.securityType (DiskSecurityTypes)
    "TrustedLaunch": "TrustedLaunch",
    "ConfidentialVM": "ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey",
}
_SECURITY_OPTION = {  # disk supportedCapabilities.supportedSecurityOption
    "TrustedLaunchSupported": "TrustedLaunchSupported",
    "TrustedLaunchAndConfidentialVmSupported": "TrustedLaunchAndConfidentialVMSupported",
}


def performance(sku: str, size_gb: int) -> tuple[str, int, int] | None:
    """The baseline tier, IOPS and MB/s of a disk of ``size_gb`` GiB, or None (no fixed
    tiers for the SKU, or larger than the largest)."""
    for name, gib, iops, mbps in PERFORMANCE_TIERS.get(sku, ()):
        if size_gb <= gib:
            return name, iops, mbps
    return None


def carried_over(image_props: dict, lun: int | None) -> dict:
    """The properties Azure copies from the image definition onto a disk made from its OS
    disk image (``lun`` None); a data disk image carries none of them over."""
    if lun is not None:
        return {}
    features = {f["name"]: f["value"] for f in image_props.get("features") or ()}
    out: dict = {"osType": image_props["osType"],
                 "hyperVGeneration": image_props.get("hyperVGeneration") or "V1"}
    plan = image_props.get("purchasePlan") or {}
    if plan.get("name") and plan.get("publisher") and plan.get("product"):
        out["purchasePlan"] = {k: plan[k] for k in ("name", "publisher", "product")}
    caps: dict = {}
    if features.get("DiskControllerTypes"):
        caps["diskControllerTypes"] = features["DiskControllerTypes"]
    if features.get("IsAcceleratedNetworkSupported"):
        caps["acceleratedNetwork"] = features["IsAcceleratedNetworkSupported"] == "True"
    caps["architecture"] = image_props.get("architecture") or "x64"
    sec = features.get("SecurityType")
    if sec in _SECURITY_OPTION:
        caps["supportedSecurityOption"] = _SECURITY_OPTION[sec]
    out["supportedCapabilities"] = caps
    if features.get("IsHibernateSupported"):
        out["supportsHibernation"] = features["IsHibernateSupported"] == "True"
    if sec in _SECURITY_TYPE:
        out["securityProfile"] = {"securityType": _SECURITY_TYPE[sec]}
    return out


def creation_data(version_id: str, lun: int | None) -> dict:
    """``creationData`` of a disk made from a gallery image version: Azure fills in both
    ``imageReference`` and ``galleryImageReference`` with the version's id; from a shared
    or community version, with ``sharedGalleryImageId`` / ``communityGalleryImageId``."""
    key = {"/sharedgalleries/": "sharedGalleryImageId",
           "/communitygalleries/": "communityGalleryImageId"}.get(
        version_id[:version_id.find("/", 1) + 1].lower())
    # a consumer's shared or community image (issue 15): its own id, never the private one
    ref: dict = {key or "id": version_id}
    if lun is not None:
        ref["lun"] = lun
    return {"createOption": "FromImage", "imageReference": dict(ref),
            "galleryImageReference": dict(ref)}


def new_unique_id() -> str:
    """A disk's ``uniqueId``: a random GUID, fixed at creation."""
    return str(uuid.uuid4())


def _legacy_unique_id(row: sqlite3.Row) -> str:
    # disks recorded before uniqueId was: a GUID derived from what identifies this disk (its
    # id and creation time), so it is the same on every read and differs for a re-created disk
    # (all such disks predate subscriptions: the local one, so the GUID stays what it was)
    key = f"{ids.disk_id(ids.SUBSCRIPTION, row['rg'], row['name'])}|{row['created']}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def subscription_of(row: sqlite3.Row) -> str:
    """The subscription of a row (a typed row carries it; a bare database row is local)."""
    return row["subscription"] if "subscription" in row.keys() else ids.SUBSCRIPTION


#: where a disk's export grant is kept in its stored properties (:mod:`.disk_access`)
ACCESS_KEY = "_access"


def parse_time(t: str) -> datetime:
    """A stored UTC time ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def disk_state(props: dict, now: datetime | None = None) -> str | None:
    """``diskState`` as it reads now: ``ActiveSAS`` while an unattached disk has an unexpired
    export grant (as Azure shows a disk being exported), else the stored state."""
    state = props.get("diskState")
    rec = props.get(ACCESS_KEY)
    if rec and state in (None, "Unattached") and (now or datetime.now(UTC)) < parse_time(
            rec["expires"]):
        return "ActiveSAS"
    return state


#: Disks - Get property order (as the service returns it)
_ORDER = (
    "osType", "hyperVGeneration", "purchasePlan", "supportedCapabilities", "supportsHibernation",
    "securityProfile", "creationData", "diskSizeGB", "diskIOPSReadWrite", "diskMBpsReadWrite",
    "encryption", "networkAccessPolicy", "publicNetworkAccess", "timeCreated",
    "provisioningState", "diskState", "diskSizeBytes", "uniqueId", "tier",
)


def disk_json(row: sqlite3.Row) -> dict:
    """A disk row -> the ARM JSON of Disks - Get."""
    p = json.loads(row["props"])
    state = disk_state(p)
    if p.pop(ACCESS_KEY, None) is not None and state is not None:
        p["diskState"] = state
    sku = DEFAULT_SKU
    cd = p.get("creationData") or {}
    ref = cd.get("galleryImageReference")
    if ref and "imageReference" not in cd:  # recorded before imageReference was shown
        p["creationData"] = {"createOption": cd.get("createOption", "FromImage"),
                             "imageReference": dict(ref), "galleryImageReference": dict(ref)}
    p.setdefault("uniqueId", _legacy_unique_id(row))
    p.setdefault("encryption", {"type": "EncryptionAtRestWithPlatformKey"})
    p.setdefault("networkAccessPolicy", "AllowAll")
    p.setdefault("publicNetworkAccess", "Enabled")
    perf = performance(sku, int(p.get("diskSizeGB") or 0))
    if perf is not None:
        tier, iops, mbps = perf
        p.setdefault("tier", tier)
        p.setdefault("diskIOPSReadWrite", iops)
        p.setdefault("diskMBpsReadWrite", mbps)
    props = {k: p.pop(k) for k in _ORDER if k in p}
    local = p.pop("localStorage", None)
    props.update(p)  # anything else that was recorded, in its own order
    if local is not None:
        props["localStorage"] = local
    return {
        "id": ids.disk_id(subscription_of(row), row["rg"], row["name"]),
        "name": row["name"],
        "type": ids.DISK_TYPE,
        "location": row["location"],
        "tags": json.loads(row["tags"]),
        "sku": {"name": sku, "tier": SKU_TIERS.get(sku, "Standard")},
        "properties": props,
    }
