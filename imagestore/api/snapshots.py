"""``Microsoft.Compute/snapshots``: PUT (create: ``creationData.createOption`` Copy from a disk
or snapshot, or Import of a ``file://`` ``sourceUri`` on the server host), GET, DELETE, list by resource group and by subscription.

The capture runs inside the PUT (a snapshot of an unchanged disk costs no new chunks); the
answer is 200 with the snapshot and the headers of a finished long-running operation, which
is what the SDK's ``begin_create_or_update`` poller follows. A PUT on an existing snapshot
is refused (Conflict): snapshots are immutable here.
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
from .versions import DISK_API_VERSIONS

COLLECTION = RG + PROVIDER + "/snapshots"
ITEM = COLLECTION + "/{snapshotName}"
_CD = "properties.creationData"


def put(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    name = req.path["snapshotName"]
    option = b.str(f"{_CD}.createOption")
    if option is None:
        raise InvalidArgument(f"{_CD}.createOption: required (Copy)",
                              target=f"{_CD}.createOption")
    if option.lower() not in ("copy", "import"):
        raise InvalidArgument(f"{_CD}.createOption: '{option}' is not supported here (Copy "
                              f"from a disk or snapshot, Import of a file:// URI)",
                              target=f"{_CD}.createOption")
    if option.lower() == "import":
        source = b.str(f"{_CD}.sourceUri")
        if not source or "://" not in source:
            raise InvalidArgument(f"{_CD}.sourceUri: required with createOption Import (a "
                                  f"file:// URI)", target=f"{_CD}.sourceUri")
    else:
        source = b.str(f"{_CD}.sourceResourceId")
        if not source:
            raise InvalidArgument(f"{_CD}.sourceResourceId: required with createOption Copy",
                                  target=f"{_CD}.sourceResourceId")
        if not source.startswith("/"):
            source = "/" + source  # Azure's examples leave the leading slash out
    with req.ctx.writing() as svc:
        out = svc.snapshots.create(req.rg, name, source,
                                   incremental=bool(b.bool("properties.incremental")),
                                   location=b.str("location"), sku=b.str("sku.name"),
                                   os_type=b.str("properties.osType"),
                                   hyper_v_generation=b.str("properties.hyperVGeneration"),
                                   tags=b.tags())
        op = svc.operations.done("create", out["id"], out["location"])
    return accepted(req, op, out["location"], 200, out)


def get(req: ArmRequest) -> Reply:
    return Reply(200, req.svc.snapshots.show(req.rg, req.path["snapshotName"]))


def delete(req: ArmRequest) -> Reply:
    name = req.path["snapshotName"]
    with req.ctx.writing() as svc:
        loc = svc.snapshots.show(req.rg, name)["location"]
        svc.snapshots.delete(req.rg, name)
        op = svc.operations.done("delete", ids.snapshot_id(req.subscription, req.rg, name), loc)
    return accepted(req, op, loc, 202)


def list_rg(req: ArmRequest) -> Reply:
    return page(req, req.svc.snapshots.list(req.rg))


def list_sub(req: ArmRequest) -> Reply:
    return page(req, in_subscription(req, req.svc.snapshots.list(None)))


def routes(ctx: ApiContext) -> list[Route]:
    v = DISK_API_VERSIONS
    return [
        arm_route(ctx, ITEM, ["PUT"], put, v),
        arm_route(ctx, ITEM, ["GET"], get, v),
        arm_route(ctx, ITEM, ["DELETE"], delete, v),
        arm_route(ctx, COLLECTION, ["GET"], list_rg, v),
        arm_route(ctx, SUB + PROVIDER + "/snapshots", ["GET"], list_sub, v),
    ]
