"""``Microsoft.Compute/disks``: PUT (create: a new disk file from an image version,
``creationData.createOption`` FromImage with ``galleryImageReference``, or Copy of a snapshot
or disk with ``sourceResourceId``), GET, DELETE, list by resource group and subscription.

The disk file is written by the request (there is no worker step for disks) under the
store's ``disks/`` directory in the format ``properties.localStorage.format`` asks for (raw
by default; ``properties.localStorage.linked: true`` with qcow2 or vhdx makes a linked clone);
a client cannot choose a path on the server. Deleting a disk through the API
removes its file when it lies in that directory, as Azure deletes a disk's data. Disk export
(``beginGetAccess``/``endGetAccess``) is served by its own module.
"""

from __future__ import annotations

import os

from starlette.routing import Route

from ..errors import InvalidArgument, NotFound, OperationNotAllowed
from ..gallery import ids, shared_views
from . import shared_galleries
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

COLLECTION = RG + PROVIDER + "/disks"
ITEM = COLLECTION + "/{diskName}"
_CD = "properties.creationData"


def create_kwargs(b: Body) -> dict:
    """A disk PUT body as :meth:`Disks.create`'s arguments."""
    option = b.str(f"{_CD}.createOption")
    ref = b.str(f"{_CD}.galleryImageReference.id")
    for key in ("sharedGalleryImageId", "communityGalleryImageId"):  # a consumer's (issue 15)
        other = b.str(f"{_CD}.galleryImageReference.{key}")
        if other is not None:
            if ref is not None:
                raise InvalidArgument(f"{_CD}.galleryImageReference: give one of id, "
                                      f"sharedGalleryImageId and communityGalleryImageId",
                                      target=f"{_CD}.galleryImageReference")
            if not shared_views.is_shared_reference(other):
                raise InvalidArgument(
                    f"{_CD}.galleryImageReference.{key}: '{other}' is not /"
                    f"{'SharedGalleries' if key.startswith('shared') else 'CommunityGalleries'}"
                    f"/NAME/Images/IMAGE/Versions/VERSION",
                    target=f"{_CD}.galleryImageReference.{key}")
            ref = other
    source = b.str(f"{_CD}.sourceResourceId")
    if option is None:
        raise InvalidArgument(f"{_CD}.createOption: required (FromImage or Copy)",
                              target=f"{_CD}.createOption")
    if option.lower() == "fromimage":
        if ref is None:
            raise InvalidArgument(f"{_CD}.galleryImageReference.id: required with createOption "
                                  f"FromImage", target=f"{_CD}.galleryImageReference.id")
        source = None
    elif option.lower() == "copy":
        if source is None:
            raise InvalidArgument(f"{_CD}.sourceResourceId: required with createOption Copy",
                                  target=f"{_CD}.sourceResourceId")
        ref = None
    else:
        raise InvalidArgument(f"{_CD}.createOption: '{option}' is not supported by imagestore "
                              f"(FromImage, Copy)", target=f"{_CD}.createOption")
    # a linked clone (issue 13): ``properties.localStorage.linked`` true (or the object a GET
    # returns, so that a GET body PUT back is the same disk)
    lk = b.raw("properties.localStorage.linked")
    if lk is not None and not isinstance(lk, bool | dict):
        raise InvalidArgument("properties.localStorage.linked: must be true or false",
                              target="properties.localStorage.linked")
    return dict(reference=ref, source=source, lun=b.int(f"{_CD}.galleryImageReference.lun"),
                fmt=b.str("properties.localStorage.format") or "raw",
                location=b.str("location"), tags=b.tags(), linked=bool(lk))


def put(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    name = req.path["diskName"]
    with req.ctx.writing() as svc:
        try:
            cur = svc.disks.show(req.rg, name)
        except NotFound:
            kw = create_kwargs(b)
            if shared_views.is_shared_reference(kw["reference"]):
                kw["viewer"] = shared_galleries.viewer(req)
            # DiskRP answers a create 200 or 202 (never 201): the file is written by now
            return Reply(200, svc.disks.create(req.rg, name, **kw))
    kw = create_kwargs(b)
    cd = cur["properties"].get("creationData", {})
    gir = cd.get("galleryImageReference", {})
    had = gir.get("id") or gir.get("sharedGalleryImageId") or gir.get("communityGalleryImageId")
    same = ((kw["reference"] or "").lower() == (had or "").lower()
            and (kw["source"] or "").lower() == (cd.get("sourceResourceId") or "").lower())
    if not same or (kw["tags"] is not None and kw["tags"] != cur.get("tags")):
        raise OperationNotAllowed(f"disk '{name}' exists; imagestore does not update disks "
                                  f"(delete it and create it again)", target="diskName")
    return Reply(200, cur)


def get(req: ArmRequest) -> Reply:
    return Reply(200, req.svc.disks.show(req.rg, req.path["diskName"]))


def delete(req: ArmRequest) -> Reply:
    name = req.path["diskName"]
    with req.ctx.writing() as svc:
        cur = svc.disks.show(req.rg, name)
        path = (cur["properties"].get("localStorage") or {}).get("path") or ""
        ours = os.path.realpath(os.path.join(req.ctx.root, "disks"))
        in_store = os.path.realpath(path).startswith(ours + os.sep)
        svc.disks.delete(req.rg, name, delete_file=in_store)
        op = svc.operations.done("delete", ids.disk_id(req.subscription, req.rg, name), cur["location"])
    return accepted(req, op, cur["location"], 202)


def list_rg(req: ArmRequest) -> Reply:
    return page(req, req.svc.disks.list(req.rg))


def list_sub(req: ArmRequest) -> Reply:
    return page(req, in_subscription(req, req.svc.disks.list(None)))


def routes(ctx: ApiContext) -> list[Route]:
    v = DISK_API_VERSIONS
    return [
        arm_route(ctx, ITEM, ["PUT"], put, v),
        arm_route(ctx, ITEM, ["GET"], get, v),
        arm_route(ctx, ITEM, ["DELETE"], delete, v),
        arm_route(ctx, COLLECTION, ["GET"], list_rg, v),
        arm_route(ctx, SUB + PROVIDER + "/disks", ["GET"], list_sub, v),
    ]
