"""ARM JSON of a snapshot (``Microsoft.Compute/snapshots``), as Snapshots - Get returns it.

The stored properties (what the snapshot took over from its source disk, ``creationData``
``Copy`` with ``sourceResourceId``/``sourceUniqueId``, sizes, ``incremental``) plus what every
Azure snapshot carries (platform-key ``encryption``, ``networkAccessPolicy``,
``publicNetworkAccess``, the ``sku``). Local facts (manifest digest, bytes stored, the source
file) stay under ``properties.localStorage``.
"""

from __future__ import annotations

import json
import sqlite3

from . import ids

#: snapshot SKUs (SnapshotStorageAccountTypes) and their tier
SKUS = {"Standard_LRS": "Standard", "Premium_LRS": "Premium", "Standard_ZRS": "Standard"}
DEFAULT_SKU = "Standard_LRS"

#: Snapshots - Get property order
_ORDER = (
    "osType", "hyperVGeneration", "purchasePlan", "supportedCapabilities", "supportsHibernation",
    "securityProfile", "creationData", "diskSizeGB", "encryption", "incremental",
    "incrementalSnapshotFamilyId", "networkAccessPolicy", "publicNetworkAccess", "timeCreated",
    "provisioningState", "diskState", "diskSizeBytes", "uniqueId",
)


def snapshot_json(row: sqlite3.Row) -> dict:
    """A snapshot row -> its ARM JSON."""
    p = json.loads(row["props"])
    sku = p.pop("sku", None) or DEFAULT_SKU
    p.setdefault("encryption", {"type": "EncryptionAtRestWithPlatformKey"})
    p.setdefault("networkAccessPolicy", "AllowAll")
    p.setdefault("publicNetworkAccess", "Enabled")
    props = {k: p.pop(k) for k in _ORDER if k in p}
    local = p.pop("localStorage", None)
    props.update(p)
    if local is not None:
        props["localStorage"] = local
    return {
        "id": ids.snapshot_id(row["subscription"], row["rg"], row["name"]),
        "name": row["name"],
        "type": ids.SNAPSHOT_TYPE,
        "location": row["location"],
        "tags": json.loads(row["tags"]),
        "sku": {"name": sku, "tier": SKUS.get(sku, "Standard")},
        "properties": props,
    }
