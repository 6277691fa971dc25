"""ARM JSON of a managed image (``Microsoft.Compute/images``), as Images - Get returns it:
``storageProfile.osDisk`` (``osType``, ``osState`` Generalized, the ``snapshot`` or
``managedDisk`` it came from, ``caching``, ``storageAccountType``, ``diskSizeGB``),
``dataDisks`` by LUN, ``zoneResilient``, ``hyperVGeneration``, ``provisioningState``. Local
facts (manifest digests, bytes) under ``properties.localStorage``."""

from __future__ import annotations

import json
import sqlite3

from . import ids

_ORDER = ("sourceVirtualMachine", "storageProfile", "provisioningState", "hyperVGeneration")


def image_json(row: sqlite3.Row) -> dict:
    """A managed image row -> its ARM JSON."""
    p = json.loads(row["props"])
    props = {k: p.pop(k) for k in _ORDER if k in p}
    local = p.pop("localStorage", None)
    props.update(p)
    if local is not None:
        props["localStorage"] = local
    return {
        "id": ids.managed_image_id(row["subscription"], row["rg"], row["name"]),
        "name": row["name"],
        "type": ids.MANAGED_IMAGE_TYPE,
        "location": row["location"],
        "tags": json.loads(row["tags"]),
        "properties": props,
    }
