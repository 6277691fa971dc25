"""``Microsoft.Compute/images`` (managed images; gallery image definitions are
:mod:`.images`): PUT (create from disks and snapshots named in ``storageProfile``), GET,
DELETE, list by resource group and by subscription.

The captures run inside the PUT; the answer is 200 with the image and the headers of a
finished long-running operation. Managed images are Generalized; a ``Specialized`` OS disk,
a ``blobUri`` other than a ``file://`` URI or a ``sourceVirtualMachine`` source is refused
(InvalidParameter), as is a PUT on an existing image (Conflict).
"""

from __future__ import annotations

from starlette.routing import Route

from ..errors import InvalidArgument
from ..gallery import ids
from .context import ApiContext
from .fields import Body
from .operations import accepted
from .routing import (
    PROVIDER,
    RG,
    SUB,
    ArmRequest,
    Reply,
    arm_route,
    in_subscription,
    page,
)
from .versions import COMPUTE_API_VERSIONS

COLLECTION = RG + PROVIDER + "/images"
ITEM = COLLECTION + "/{imageName}"
_SP = "properties.storageProfile"


def _source(disk: dict, field: str) -> str:
    """The disk or snapshot id an image disk names (one of ``managedDisk``, ``snapshot``)."""
    if not isinstance(disk, dict):
        raise InvalidArgument(f"{field}: must be an object", target=field)
    b = Body(disk)
    blob = b.str("blobUri")
    if blob is not None:
        if not blob.startswith("file://"):
            raise InvalidArgument(f"{field}.blobUri: '{blob}': only file:// URIs of image files "
                                  f"on the server host (or a disk or snapshot)",
                                  target=f"{field}.blobUri")
        if b.raw("managedDisk") is not None or b.raw("snapshot") is not None:
            raise InvalidArgument(f"{field}: give exactly one of managedDisk.id, snapshot.id "
                                  f"or blobUri", target=field)
        return blob
    named = [(k, b.str(f"{k}.id")) for k in ("managedDisk", "snapshot")]
    named = [(k, v) for k, v in named if v]
    if len(named) != 1:
        raise InvalidArgument(f"{field}: give exactly one of managedDisk.id or snapshot.id",
                              target=field)
    kind, rid = named[0]
    rid = rid if rid.startswith("/") else "/" + rid
    want = "/disks/" if kind == "managedDisk" else "/snapshots/"
    if want not in rid.lower():
        raise InvalidArgument(f"{field}.{kind}.id: '{rid}' is not a "
                              f"{'disk' if kind == 'managedDisk' else 'snapshot'} id",
                              target=f"{field}.{kind}.id")
    return rid


def put(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    name = req.path["imageName"]
    if b.raw("properties.sourceVirtualMachine") is not None:
        raise InvalidArgument("properties.sourceVirtualMachine: capturing a virtual machine "
                              "is not supported here (name its disks in storageProfile)",
                              target="properties.sourceVirtualMachine")
    osd = b.obj(f"{_SP}.osDisk")
    if osd is None:
        raise InvalidArgument(f"{_SP}.osDisk: required", target=f"{_SP}.osDisk")
    ob = Body(osd)
    state = ob.str("osState")
    if state is not None and state.lower() != "generalized":
        raise InvalidArgument(f"{_SP}.osDisk.osState: '{state}': a managed image is "
                              f"Generalized", target=f"{_SP}.osDisk.osState")
    source = _source(osd, f"{_SP}.osDisk")
    data = b.list(f"{_SP}.dataDisks") or []
    luns, data_sources = [], []
    caching = None
    for i, d in enumerate(data):
        field = f"{_SP}.dataDisks[{i}]"
        data_sources.append(_source(d, field))
        lun = Body(d).int("lun")
        if lun is None:
            raise InvalidArgument(f"{field}.lun: required", target=f"{field}.lun")
        luns.append(lun)
        caching = caching or Body(d).str("caching")
    with req.ctx.writing() as svc:
        out = svc.managed_images.create(
            req.rg, name, source, os_type=ob.str("osType"), data_disk_sources=data_sources,
            data_disk_luns=luns, hyper_v_generation=b.str("properties.hyperVGeneration"),
            location=b.str("location"), os_disk_caching=ob.str("caching"),
            data_disk_caching=caching, storage_sku=ob.str("storageAccountType"),
            zone_resilient=bool(b.bool(f"{_SP}.zoneResilient")), tags=b.tags())
        op = svc.operations.done("create", out["id"], out["location"])
    return accepted(req, op, out["location"], 200, out)


def get(req: ArmRequest) -> Reply:
    return Reply(200, req.svc.managed_images.show(req.rg, req.path["imageName"]))


def delete(req: ArmRequest) -> Reply:
    name = req.path["imageName"]
    with req.ctx.writing() as svc:
        loc = svc.managed_images.show(req.rg, name)["location"]
        svc.managed_images.delete(req.rg, name)
        op = svc.operations.done("delete", ids.managed_image_id(req.subscription, req.rg, name), loc)
    return accepted(req, op, loc, 202)


def list_rg(req: ArmRequest) -> Reply:
    return page(req, req.svc.managed_images.list(req.rg))


def list_sub(req: ArmRequest) -> Reply:
    return page(req, in_subscription(req, req.svc.managed_images.list(None)))


def routes(ctx: ApiContext) -> list[Route]:
    v = COMPUTE_API_VERSIONS
    return [
        arm_route(ctx, ITEM, ["PUT"], put, v),
        arm_route(ctx, ITEM, ["GET"], get, v),
        arm_route(ctx, ITEM, ["DELETE"], delete, v),
        arm_route(ctx, COLLECTION, ["GET"], list_rg, v),
        arm_route(ctx, SUB + PROVIDER + "/images", ["GET"], list_sub, v),
    ]
