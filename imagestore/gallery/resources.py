"""ARM JSON shaping: database rows -> the resource JSON the Azure REST API returns.

Property names follow the REST API (``properties.publishingProfile.targetRegions[]`` …).
Facts Azure does not have (manifest digests, byte counts, local file paths) live under
``properties.localStorage`` and never replace an Azure property.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

from . import arm_disk, ids, sharing, soft_delete
from .repo.states import ReplicationState

GIB = 1 << 30


def size_in_gb(n: int) -> int:
    return (n + GIB - 1) // GIB


def _base(rid: str, name: str, rtype: str, row: sqlite3.Row) -> dict:
    return {
        "id": rid,
        "name": name,
        "type": rtype,
        "location": row["location"],
        "tags": json.loads(row["tags"]),
    }


def gallery_json(row: sqlite3.Row, *, sharing_groups: bool = False) -> dict:
    props = json.loads(row["props"])
    out = _base(ids.gallery_id(row["subscription"], row["rg"], row["name"]), row["name"], ids.GALLERY_TYPE, row)
    p: dict = {}
    if props.get("description") is not None:
        p["description"] = props["description"]
    p["identifier"] = {"uniqueName": f"{row['subscription']}-{row['name'].upper()}"}
    if props.get("softDeletePolicy") is not None:
        p["softDeletePolicy"] = soft_delete.policy_json(props["softDeletePolicy"])
    p["provisioningState"] = "Succeeded"
    profile = sharing.profile_json(props, with_groups=sharing_groups)  # issue 15
    if profile is not None:
        p["sharingProfile"] = profile
        status = sharing.sharing_status(props, row["location"])
        if status is not None:
            p["sharingStatus"] = status
    out["properties"] = p
    return out


IMAGE_ORDER = (
    "description", "eula", "privacyStatementUri", "releaseNoteUri", "osType", "osState",
    "hyperVGeneration", "endOfLifeDate", "identifier", "recommended", "disallowed",
    "purchasePlan", "features", "architecture",
)


def image_json(row: sqlite3.Row) -> dict:
    """``row`` joins images with its gallery (columns rg, gallery)."""
    props = json.loads(row["props"])
    out = _base(ids.image_id(row["subscription"], row["rg"], row["gallery"], row["name"]), row["name"], ids.IMAGE_TYPE, row)
    p = {k: props[k] for k in IMAGE_ORDER if props.get(k) is not None}
    p["provisioningState"] = "Succeeded"
    out["properties"] = p
    return out


def disk_image_json(d: sqlite3.Row, with_source: bool) -> dict:
    out: dict = {"sizeInGB": size_in_gb(d["virtual_size"]), "hostCaching": d["host_caching"]}
    source_id = d["source_id"] if "source_id" in d.keys() else None
    if with_source and source_id:  # made from a snapshot
        out["source"] = {"id": source_id}
    elif with_source and d["source_uri"]:
        out["source"] = {"uri": d["source_uri"]}
    return out


def local_disk_json(d: sqlite3.Row) -> dict:
    out = {
        "manifestDigest": d["digest"] or None,
        "virtualSize": d["virtual_size"],
        "allocatedBytes": d["allocated_bytes"],
        "dataBytes": d["data_bytes"],
        "storedBytes": d["stored_bytes"],
        "sourceFormat": d["source_format"],
    }
    if d["shallow_path"]:
        out["shallowSource"] = {"path": d["shallow_path"],
                                "fingerprint": json.loads(d["fingerprint"] or "{}")}
    return out


def version_json(row: sqlite3.Row, disks: list[sqlite3.Row], regions: list[sqlite3.Row],
                 *, expand_replication: bool = False) -> dict:
    """``row`` joins versions with image and gallery (columns rg, gallery, image)."""
    props = json.loads(row["props"])
    out = _base(
        ids.version_id(row["subscription"], row["rg"], row["gallery"], row["image"], row["name"]), row["name"],
        ids.VERSION_TYPE, row,
    )
    by_ref = row["source_version_id"] is not None
    sp: dict = {}
    if by_ref:
        sp["source"] = {"id": row["source_version_id"]}
        if "/providers/microsoft.compute/virtualmachines/" in row["source_version_id"].lower():
            sp["source"]["virtualMachineId"] = row["source_version_id"]  # captured from a VM
    os_disk = [d for d in disks if d["lun"] < 0]
    data = sorted((d for d in disks if d["lun"] >= 0), key=lambda d: d["lun"])
    if os_disk:
        sp["osDiskImage"] = disk_image_json(os_disk[0], not by_ref)
    if data:
        sp["dataDiskImages"] = [{"lun": d["lun"], **disk_image_json(d, not by_ref)} for d in data]
    asked = props.get("storageProfile") or {}
    if not by_ref and asked:
        # disks not captured yet (--no-wait), or the capture failed: Azure echoes the request
        if "osDiskImage" not in sp and "osDiskImage" in asked:
            sp["osDiskImage"] = copy.deepcopy(asked["osDiskImage"])
        have = {d["lun"] for d in data}
        missing = [copy.deepcopy(x) for x in asked.get("dataDiskImages", ())
                   if x["lun"] not in have]
        if missing:
            sp["dataDiskImages"] = sorted(sp.get("dataDiskImages", []) + missing,
                                          key=lambda x: x["lun"])
    p: dict = {
        "publishingProfile": props["publishingProfile"],
        "storageProfile": sp,
        "safetyProfile": {**props["safetyProfile"], "reportedForPolicyViolation": False},
        "provisioningState": row["provisioning_state"],
    }
    if expand_replication:
        p["replicationStatus"] = replication_status(regions)
    local: dict = {"region": row["location"]}
    if os_disk:
        local["osDiskImage"] = local_disk_json(os_disk[0])
    if data:
        local["dataDiskImages"] = [{"lun": d["lun"], **local_disk_json(d)} for d in data]
    if expand_replication:
        local["replication"] = [
            {"region": r["region"], "state": r["state"], "bytesDone": r["bytes_done"], "bytesTotal": r["bytes_total"],
             "bytesSent": r["bytes_sent"], "updated": r["updated"]}
            for r in regions
        ]
    p["localStorage"] = local
    out["properties"] = p
    return out


def aggregated_state(states: list[str]) -> str:
    """As the REST API derives it: InProgress while any region is queued or replicating;
    then Failed if any region failed; Completed when all completed; Unknown otherwise."""
    if not states:
        return "Unknown"
    if any(s in ("Queued", "Replicating") for s in states):
        return "InProgress"
    if any(s == "Failed" for s in states):
        return "Failed"
    if all(s == "Completed" for s in states):
        return "Completed"
    return "Unknown"


#: the REST API's ``ReplicationState`` values; imagestore's own ``Queued`` (waiting for the
#: worker) is not one of them
REPLICATION_STATES = ("Unknown", "Replicating", "Completed", "Failed")


def regional_state(state: str) -> tuple[str, bool]:
    """A region's local replication state -> (its ``ReplicationState``, whether it has not
    started). Azure shows a target region whose copy has not started yet as ``Replicating``
    with progress 0, so ``Queued`` is shown that way (the local state stays visible under
    ``properties.localStorage.replication[].state``); anything unknown is ``Unknown``."""
    if state == ReplicationState.QUEUED:
        return ReplicationState.REPLICATING.value, True
    return (state if state in REPLICATION_STATES else "Unknown"), False


def replication_status(regions: list[sqlite3.Row]) -> dict:
    agg = aggregated_state([r["state"] for r in regions])
    summary = []
    for r in regions:
        state, not_started = regional_state(r["state"])
        summary.append({"region": r["region"], "state": state,
                        "progress": 0 if not_started else r["progress"],
                        "details": r["details"]})
    return {"aggregatedState": agg, "summary": summary}


def requested_storage_profile(sources: list[tuple[int, str]],
                              resource_ids: list[tuple[int, str]] = ()) -> dict:
    """The ``storageProfile`` a create request asks for ((lun or -1, source path) pairs, and
    (lun or -1, snapshot id) pairs): what Azure echoes while the version is still being
    created, before sizes are known."""
    sp: dict = {}
    data = []
    entries = [(lun, {"uri": file_uri(path)}) for lun, path in sources]
    entries += [(lun, {"id": rid}) for lun, rid in resource_ids]
    for lun, source in entries:
        img = {"hostCaching": "ReadWrite" if lun < 0 else "None", "source": source}
        if lun < 0:
            sp["osDiskImage"] = img
        else:
            data.append({"lun": lun, **img})
    if data:
        sp["dataDiskImages"] = sorted(data, key=lambda d: d["lun"])
    return sp


def disk_json(row: sqlite3.Row) -> dict:
    """A disk row -> its ARM JSON (see :mod:`.arm_disk`)."""
    return arm_disk.disk_json(row)


def file_uri(path: str) -> str:
    return Path(path).absolute().as_uri()
