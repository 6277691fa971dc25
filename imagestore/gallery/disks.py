"""Disks (``Microsoft.Compute/disks``) created from image versions: each one a new,
independent disk file written from the version's manifest, registered as a resource.

``-l REGION`` reads the region's copies of the version with fail-over: every chunk comes from
the first copy that has a good one (the version's copies in placement order, then any other
slot of the region). A shallow version's disk is streamed from its source file after the
fingerprint check, holding one of the version's deployment slots (see :mod:`.shallow`)."""

from __future__ import annotations

import json
import os
import sqlite3

from ..errors import Conflict, InvalidArgument, NotFound
from ..formats import WRITE_FORMATS
from ..regions.replicas import materialize_from_copies, open_slot
from . import db, ids, resources, shallow, validate
from .service import DEFAULT_LOCATION, GalleryService, ProgressFactory, _dumps
from .validate import iso, now_utc

EXTENSIONS = {"raw": "raw", "vhd": "vhd", "vhd-fixed": "vhd", "vhdx": "vhdx", "vhdx-fixed": "vhdx"}


def _disk_row(svc: GalleryService, rg: str, name: str) -> sqlite3.Row:
    row = svc.con.execute("SELECT * FROM disks WHERE rg = ? AND name = ?", (rg, name)).fetchone()
    if row is None:
        raise NotFound(f"disk '{name}' not found in resource group '{rg}'")
    return row


def create_disk(
    svc: GalleryService, rg: str, name: str, reference: str, *, lun: int | None = None,
    fmt: str = "raw", path: str | None = None, location: str | None = None,
    tags: dict | None = None, progress: ProgressFactory | None = None, threads: int = 2,
) -> dict:
    validate.resource_group(rg)
    validate.disk_name(name)
    fmt = validate.enum("--format", fmt or "raw", WRITE_FORMATS)
    location = svc.require_region(location or DEFAULT_LOCATION)
    if lun is not None and (isinstance(lun, bool) or not 0 <= lun <= validate.MAX_LUN):
        raise InvalidArgument(
            f"--gallery-image-reference-lun: '{lun}' must be an integer from 0 to {validate.MAX_LUN}")
    if svc.con.execute("SELECT 1 FROM disks WHERE rg = ? AND name = ?", (rg, name)).fetchone():
        raise Conflict(f"disk '{name}' already exists in resource group '{rg}'")
    vrow = svc.resolve_version(reference, rg, location)
    vid = ids.version_id(vrow["rg"], vrow["gallery"], vrow["image"], vrow["name"])
    regions = {r["region"].lower(): r["state"] for r in svc._regions_of(vrow["id"])}
    state = regions.get(location.lower())
    if state is None:
        raise NotFound(f"--location: image version '{vid}' is not replicated to region '{location}'")
    if state != "Completed":
        raise Conflict(f"--location: image version '{vid}' is not available in region "
                       f"'{location}' yet (replication {state})")
    disks = svc._disks_of(vrow["id"])
    want = -1 if lun is None else lun
    drow = next((d for d in disks if d["lun"] == want), None)
    if drow is None:
        luns = ", ".join(str(d["lun"]) for d in disks if d["lun"] >= 0) or "none"
        if lun is None:
            raise NotFound(f"--gallery-image-reference: image version '{vid}' has no OS disk image")
        raise NotFound(
            f"--gallery-image-reference-lun: image version '{vid}' has no data disk image with "
            f"LUN {lun} (data disk LUNs: {luns})")
    if path is None:
        path = os.path.join(svc.home.root, "disks", f"{name}.{EXTENSIONS[fmt]}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.lexists(path):
        raise Conflict(f"--path: {path} already exists")
    bar = progress("create disk") if progress else None
    try:
        if drow["shallow_path"]:
            virtual_size, written = _from_shallow(svc, vrow, vid, drow, path, fmt, bar)
        else:
            res = _from_copies(svc, vrow, location, drow["digest"], path, fmt, threads, bar)
            virtual_size, written = res.virtual_size, res.written_bytes
    finally:
        if bar is not None:
            bar.close()
    image_props = json.loads(vrow["image_props"])
    ref: dict = {"id": vid}
    if lun is not None:
        ref["lun"] = lun
    props: dict = {}
    if lun is None:
        props["osType"] = image_props["osType"]
    props["hyperVGeneration"] = image_props["hyperVGeneration"]
    props.update({
        "creationData": {"createOption": "FromImage", "galleryImageReference": ref},
        "diskSizeGB": resources.size_in_gb(virtual_size),
        "diskSizeBytes": virtual_size,
        "timeCreated": iso(now_utc()),
        "provisioningState": "Succeeded",
        "diskState": "Unattached",
        "localStorage": {
            "path": path,
            "format": fmt,
            "virtualSize": virtual_size,
            "writtenBytes": written,
            "manifestDigest": drow["digest"] or None,
            "requestedReference": reference,
        },
    })
    try:
        with db.transaction(svc.con):
            if svc.con.execute("SELECT 1 FROM disks WHERE rg = ? AND name = ?", (rg, name)).fetchone():
                raise Conflict(f"disk '{name}' already exists in resource group '{rg}'")
            svc.con.execute(
                "INSERT INTO disks(rg, name, location, tags, props, path, format, created) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (rg, name, location, _dumps(tags or {}), _dumps(props), path, fmt, iso(now_utc())),
            )
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise
    return show_disk(svc, rg, name)


def _from_copies(svc: GalleryService, vrow, location: str, digest: str, path: str, fmt: str,
                 threads: int, bar):
    pp = json.loads(vrow["props"])["publishingProfile"]
    tr = next((t for t in pp["targetRegions"] if t["name"].lower() == location.lower()), {})
    paths = svc.region_copies(location, int(tr.get("regionalReplicaCount") or 1),
                              tr.get("storageAccountType") or "Standard_LRS")
    cfg = svc.home.config
    slots = []
    try:
        for p in paths:
            if os.path.exists(os.path.join(p, "manifests", f"{digest}.mf")):
                slots.append(open_slot(p, cfg, create=False))
        if not slots:
            raise NotFound(f"--location: no copy of manifest {digest} in region '{location}' "
                           f"(run 'imagestore store verify --repair --region {location}')")
        return materialize_from_copies(slots, digest, path, fmt=fmt, overwrite=False,
                                       threads=threads, progress=bar)
    finally:
        for s in slots:
            s.close()


def _from_shallow(svc: GalleryService, vrow, vid: str, drow, path: str, fmt: str, bar):
    what = f"image version '{vrow['gallery']}/{vrow['image']}/{vrow['name']}'"
    fp = json.loads(drow["fingerprint"] or "{}")
    src = drow["shallow_path"]
    with shallow.deploy_slot(svc.home.root, f"v{vrow['id']}", what):
        shallow.check(src, fp, what)
        out = shallow.create_disk_from_source(src, path, fmt, progress=bar)
        try:
            shallow.check(src, fp, what)  # changed while it was read: the disk is not valid
        except Exception:
            os.unlink(path)
            raise
    return out


def show_disk(svc: GalleryService, rg: str, name: str) -> dict:
    return resources.disk_json(_disk_row(svc, rg, name))


def list_disks(svc: GalleryService, rg: str | None = None) -> list[dict]:
    if rg is None:
        rows = svc.con.execute("SELECT * FROM disks ORDER BY rg, name").fetchall()
    else:
        rows = svc.con.execute("SELECT * FROM disks WHERE rg = ? ORDER BY name", (rg,)).fetchall()
    return [resources.disk_json(r) for r in rows]


def delete_disk(svc: GalleryService, rg: str, name: str, *, delete_file: bool = False) -> None:
    with db.transaction(svc.con):
        row = _disk_row(svc, rg, name)
        svc.con.execute("DELETE FROM disks WHERE id = ?", (row["id"],))
    if delete_file:
        try:
            os.unlink(row["path"])
        except FileNotFoundError:
            pass
