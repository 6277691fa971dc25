"""``Microsoft.Compute/galleries/images/versions``: PUT (create or update: a long-running
operation; capture and replication run in the worker), PATCH, GET (``$expand=
ReplicationStatus``), DELETE, list by definition.

Sources: ``storageProfile.osDiskImage.source.uri`` / ``dataDiskImages[].source.uri`` take a
``file://`` URI or a path on the server host; ``storageProfile.source.id`` (or
``osDiskImage.source.id``) names another version (or a snapshot, disk or managed image), as
``--image-version`` does in the CLI.
"""

from __future__ import annotations

from starlette.routing import Route

from ..errors import InvalidArgument, NotFound, PropertyChangeNotAllowed
from ..gallery import ids, resources
from ..gallery.capture import source_path
from .context import ApiContext
from .fields import Body, update_ops
from .images import ITEM as DEFINITION
from .operations import accepted
from .routing import ArmRequest, Reply, arm_route, page_of
from .soft_deleted import restore_requested
from .versions import GALLERY_API_VERSIONS

COLLECTION = DEFINITION + "/versions"
ITEM = COLLECTION + "/{galleryImageVersionName}"
PARENTS = ("galleryName", "galleryImageName")
_PP = "properties.publishingProfile"
_SP = "properties.storageProfile"
READ_ONLY = ("properties.provisioningState", f"{_PP}.publishedDate", "properties.restore",
             "properties.replicationStatus", "properties.localStorage",
             "properties.safetyProfile.reportedForPolicyViolation",
             "properties.safetyProfile.policyViolations", _SP)
_TR_KEYS = {"name", "regionalReplicaCount", "storageAccountType", "encryption"}


def _names(req: ArmRequest) -> tuple[str, str, str, str]:
    return (req.rg, req.path["galleryName"], req.path["galleryImageName"],
            req.path["galleryImageVersionName"])


def _target_regions(b: Body) -> list[dict] | None:
    trs = b.list(f"{_PP}.targetRegions")
    if trs is None:
        return None
    out = []
    for i, t in enumerate(trs):
        f = f"{_PP}.targetRegions[{i}]"
        if not isinstance(t, dict):
            raise InvalidArgument(f"{f}: must be an object", target=f)
        tb = Body(t)
        name = tb.str("name")
        if not name:
            raise InvalidArgument(f"{f}.name: required", target=f"{f}.name")
        extra = [k for k, v in t.items() if k not in _TR_KEYS and v not in (None, False)]
        if extra:
            raise InvalidArgument(f"{f}.{extra[0]}: not supported by imagestore",
                                  target=f"{f}.{extra[0]}")
        tr: dict = {"name": name}
        if tb.int("regionalReplicaCount") is not None:
            tr["regionalReplicaCount"] = tb.int("regionalReplicaCount")
        if tb.str("storageAccountType") is not None:
            tr["storageAccountType"] = tb.str("storageAccountType")
        if t.get("encryption"):  # refused by the gallery (gallery_types.check_version)
            tr["encryption"] = t["encryption"]
        out.append(tr)
    return out


def _sources(b: Body) -> dict:
    """The disk sources of a create request as create()'s arguments: files by URI, snapshots
    by ``source.id`` of the OS or a data disk image, a managed image or another version by
    ``storageProfile.source.id``."""
    ref = b.str(f"{_SP}.source.id")
    os_id = b.str(f"{_SP}.osDiskImage.source.id")
    os_uri = b.str(f"{_SP}.osDiskImage.source.uri")
    managed = os_snapshot = None
    if ref and _is_type(ref, "images"):
        managed, ref = ref, None
    if os_id and _is_type(os_id, "snapshots"):
        os_snapshot = os_id
    elif os_id and ref is None:
        ref = os_id
    uris: list[str] = []
    luns: list[int] = []
    snaps: list[str] = []
    snap_luns: list[int] = []
    for i, d in enumerate(b.list(f"{_SP}.dataDiskImages") or []):
        f = f"{_SP}.dataDiskImages[{i}]"
        if not isinstance(d, dict):
            raise InvalidArgument(f"{f}: must be an object", target=f)
        db = Body(d)
        lun = db.int("lun")
        if lun is None:
            raise InvalidArgument(f"{f}.lun: required", target=f"{f}.lun")
        uri = db.str("source.uri")
        sid = db.str("source.id")
        if uri is None and sid is not None:
            snaps.append(sid)
            snap_luns.append(lun)
            continue
        if uri is None:
            raise InvalidArgument(f"{f}.source.uri: required (a file:// URI or a path on the "
                                  f"server, or source.id: a snapshot)", target=f"{f}.source.uri")
        uris.append(uri)
        luns.append(lun)
    return {"os_vhd_uri": os_uri, "data_vhds_uris": uris, "data_vhds_luns": luns,
            "image_version": ref, "managed_image": managed, "os_snapshot": os_snapshot,
            "data_snapshots": snaps, "data_snapshot_luns": snap_luns}


def _is_type(arm_id: str, kind: str) -> bool:
    """Whether ``arm_id`` is a top-level Microsoft.Compute ``kind`` resource's id."""
    segs = arm_id.strip("/").split("/")
    return len(segs) == 8 and segs[5].lower() == "microsoft.compute" and segs[6].lower() == kind


def _vm_source(b: Body) -> str | None:
    """The VM a version is captured from: ``storageProfile.source.virtualMachineId``, or a
    VM's id as ``source.id``."""
    vm = b.str(f"{_SP}.source.virtualMachineId")
    ref = b.str(f"{_SP}.source.id")
    if vm is None and ref and "/providers/microsoft.compute/virtualmachines/" in ref.lower():
        vm = ref
    return vm


def _capture(svc, b: Body, vm: str, rg: str, definition: dict) -> dict:  # noqa: ANN001
    """The VM's disks as the version's sources (the compute layer's checks: stopped, OS
    state, generation); no other disk source beside it."""
    from ..compute.service import ComputeService

    if (b.str(f"{_SP}.osDiskImage.source.uri") or b.str(f"{_SP}.osDiskImage.source.id")
            or b.list(f"{_SP}.dataDiskImages")):
        raise InvalidArgument(f"{_SP}.source.virtualMachineId: the VM brings its OS and data "
                              f"disks; it cannot be combined with osDiskImage or "
                              f"dataDiskImages sources", target=f"{_SP}.source.virtualMachineId")
    src = ComputeService(svc).vms.capture_sources(vm, rg, definition)
    return {"os_vhd_uri": src["os"], "data_vhds_uris": [p for _lun, p in src["data"]],
            "data_vhds_luns": [lun for lun, _p in src["data"]], "image_version": None,
            "allow_parent_dir": src["allowParentDir"], "source_resource_id": src["vmId"]}


def create_kwargs(b: Body) -> dict:
    """The body of a version PUT as :meth:`Versions.create`'s arguments."""
    return dict(
        **_sources(b),
        location=b.str("location"), target_regions=_target_regions(b),
        replica_count=b.int(f"{_PP}.replicaCount"),
        storage_account_type=b.str(f"{_PP}.storageAccountType"),
        replication_mode=b.str(f"{_PP}.replicationMode"),
        exclude_from_latest=bool(b.bool(f"{_PP}.excludeFromLatest")),
        end_of_life_date=b.str(f"{_PP}.endOfLifeDate"),
        block_deletion_before_end_of_life=bool(
            b.bool("properties.safetyProfile.blockDeletionBeforeEndOfLife")),
        allow_deletion_of_replicated_locations=bool(
            b.bool("properties.safetyProfile.allowDeletionOfReplicatedLocations")),
        tags=b.tags(),
    )


def _same_source(b: Body, cur: dict) -> None:
    """A PUT on an existing version may repeat its source, not change it."""
    want = b.str(f"{_SP}.osDiskImage.source.uri")
    have = (cur["properties"]["storageProfile"].get("osDiskImage") or {}).get("source", {}).get("uri")
    if want is not None and have is not None and resources.file_uri(source_path(want)) != have:
        t = f"{_SP}.osDiskImage.source.uri"
        raise PropertyChangeNotAllowed(f"Changing property '{t}' is not allowed", target=t)
    want_id = b.str(f"{_SP}.source.id")
    have_id = (cur["properties"]["storageProfile"].get("source") or {}).get("id")
    if want_id is not None and want_id.lower() != (have_id or "").lower():
        t = f"{_SP}.source.id"
        raise PropertyChangeNotAllowed(f"Changing property '{t}' is not allowed", target=t)


def _after_write(req: ArmRequest, svc, out: dict, kind: str, status: int) -> Reply:
    """201/200, with an operation to poll while the version is Creating or Updating."""
    rg, g, d, v = _names(req)
    if out["properties"]["provisioningState"] in ("Succeeded", "Failed"):
        return Reply(status, out)
    op = svc.operations.start(kind, out["id"], out["location"],
                              version_pk=svc.version_pk(rg, g, d, v))
    return accepted(req, op, out["location"], status, out)


def put(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    rg, g, d, v = _names(req)
    with req.ctx.writing() as svc:
        if restore_requested(b, svc, (rg, g, d, v)):  # soft delete (issue 15)
            svc.soft_delete.restore(rg, g, d, v, location=b.str("location"))
            return Reply(200, svc.versions.show(rg, g, d, v))
        try:
            cur = svc.versions.show(rg, g, d, v)
        except NotFound as e:
            if e.target != "galleryImageVersionName" and e.target is not None:
                raise
            definition = svc.definitions.show(rg, g, d)  # a missing parent says so
            kw = create_kwargs(b)
            allow = req.ctx.settings.allow_parent_dir
            vm = _vm_source(b)
            if vm is not None:  # capture a stopped VM's disks (api >= 2023-07-03)
                kw.update(_capture(svc, b, vm, rg, definition["properties"]))
                allow = kw.pop("allow_parent_dir")
            out = svc.versions.create(rg, g, d, v, **kw, no_wait=True, allow_parent_dir=allow)
            return _after_write(req, svc, out, "create", 201)
        _same_source(b, cur)
        out = _update(svc, req, b)
        return _after_write(req, svc, out, "update", 200)


def _update(svc, req: ArmRequest, b: Body) -> dict:
    return svc.versions.update(*_names(req), tags=b.tags(),
                               sets=update_ops(b.data, ignore=READ_ONLY), no_wait=True)


def patch_(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    with req.ctx.writing() as svc:
        if b.obj(_SP):
            _same_source(b, svc.versions.show(*_names(req)))
        out = _update(svc, req, b)
        return _after_write(req, svc, out, "update", 200)


def get(req: ArmRequest) -> Reply:
    return Reply(200, req.svc.versions.show(*_names(req), expand=req.query.get("$expand")))


def delete(req: ArmRequest) -> Reply:
    rg, g, d, v = _names(req)
    with req.ctx.writing() as svc:
        loc = svc.versions.show(rg, g, d, v)["location"]
        svc.versions.delete(rg, g, d, v)
        op = svc.operations.done("delete", ids.version_id(req.subscription, rg, g, d, v), loc)
    return accepted(req, op, loc, 202)


def list_definition(req: ArmRequest) -> Reply:
    rg, g, d = req.rg, req.path["galleryName"], req.path["galleryImageName"]
    return page_of(req, lambda start, n: req.svc.versions.list(rg, g, d, offset=start, limit=n))


def routes(ctx: ApiContext) -> list[Route]:
    v = GALLERY_API_VERSIONS
    return [
        arm_route(ctx, ITEM, ["PUT"], put, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["PATCH"], patch_, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["GET"], get, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["DELETE"], delete, v, parents=PARENTS),
        arm_route(ctx, COLLECTION, ["GET"], list_definition, v, parents=PARENTS),
    ]
