"""``Microsoft.Compute/galleries``: PUT (create or update), PATCH, GET, DELETE, list by
resource group and by subscription."""

from __future__ import annotations

from starlette.routing import Route

from ..errors import InvalidArgument, NotFound
from ..gallery import ids, soft_delete
from ..gallery.directory_repository import DirectoryRepository
from . import authz
from .context import ApiContext
from .fields import Body, update_ops
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
from .versions import GALLERY_API_VERSIONS

COLLECTION = RG + PROVIDER + "/galleries"
ITEM = COLLECTION + "/{galleryName}"
#: fields of a gallery body the server sets (ignored in a PUT or PATCH)
READ_ONLY = ("properties.provisioningState", "properties.identifier",
             "properties.sharingStatus", "properties.sharingProfile.groups",
             "properties.sharingProfile.communityGalleryInfo.publicNames",
             "properties.sharingProfile.communityGalleryInfo.communityGalleryEnabled")


def _exists(req: ArmRequest) -> bool:
    try:
        req.svc.galleries.show(req.rg, req.path["galleryName"])
        return True
    except NotFound:
        return False


def put(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    name = req.path["galleryName"]
    with req.ctx.writing() as svc:
        if not _exists(req):
            out = svc.galleries.create(req.rg, name, location=b.str("location"),
                                       description=b.str("properties.description"),
                                       tags=b.tags(),
                                       sharing_profile=b.raw("properties.sharingProfile"),
                                       soft_delete_enabled=soft_delete.requested_policy(b.data),
                                       policy_guard=_policy_guard(svc, req))
            return Reply(201, out)
        return Reply(200, _update(svc, req, b))


def _policy_guard(svc, req: ArmRequest):
    """Changing ``softDeletePolicy.isSoftDeleteEnabled`` also needs
    ``galleries/share/action`` on the gallery (Owner or Compute Gallery Sharing Admin)."""
    return authz.guard(DirectoryRepository(svc.repo.con), req.claims, soft_delete.POLICY_ACTION,
                       ids.gallery_id(req.subscription, req.rg, req.path["galleryName"]))


def _update(svc, req: ArmRequest, b: Body) -> dict:
    return svc.galleries.update(req.rg, req.path["galleryName"], tags=b.tags(),
                                sets=update_ops(b.data, ignore=READ_ONLY),
                                policy_guard=_policy_guard(svc, req))


def patch_(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    with req.ctx.writing() as svc:
        return Reply(200, _update(svc, req, b))


def _sharing_groups(req: ArmRequest) -> bool:
    """``$select=Permissions`` or ``$expand=sharingProfile/Groups``: show the groups."""
    select = (req.query.get("$select") or "").lower()
    expand = (req.query.get("$expand") or "").lower()
    if select and select != "permissions":
        raise InvalidArgument(f"$select: '{req.query['$select']}' is not supported "
                              f"(Permissions)", target="$select")
    if expand and expand != "sharingprofile/groups":
        raise InvalidArgument(f"$expand: '{req.query['$expand']}' is not supported "
                              f"(SharingProfile/Groups)", target="$expand")
    return bool(select or expand)


def get(req: ArmRequest) -> Reply:
    return Reply(200, req.svc.galleries.show(req.rg, req.path["galleryName"],
                                             sharing_groups=_sharing_groups(req)))


def share(req: ArmRequest) -> Reply:
    """``POST …/share`` (action ``Microsoft.Compute/galleries/share/action``): applied at
    once; 200 with the SharingUpdate, a finished long-running operation for the SDK's
    ``gallery_sharing_profile.begin_update``."""
    with req.ctx.writing() as svc:
        return Reply(200, svc.galleries.share(req.rg, req.path["galleryName"], req.body))


def delete(req: ArmRequest) -> Reply:
    name = req.path["galleryName"]
    with req.ctx.writing() as svc:
        loc = svc.galleries.show(req.rg, name)["location"]
        svc.galleries.delete(req.rg, name)
        op = svc.operations.done("delete", ids.gallery_id(req.subscription, req.rg, name), loc)
    return accepted(req, op, loc, 202)


def list_rg(req: ArmRequest) -> Reply:
    return page(req, req.svc.galleries.list(req.rg))


def list_sub(req: ArmRequest) -> Reply:
    return page(req, in_subscription(req, req.svc.galleries.list(None)))


def routes(ctx: ApiContext) -> list[Route]:
    v = GALLERY_API_VERSIONS
    return [
        arm_route(ctx, ITEM, ["PUT"], put, v),
        arm_route(ctx, ITEM, ["PATCH"], patch_, v),
        arm_route(ctx, ITEM, ["GET"], get, v),
        arm_route(ctx, ITEM, ["DELETE"], delete, v),
        arm_route(ctx, ITEM + "/share", ["POST"], share, v),
        arm_route(ctx, COLLECTION, ["GET"], list_rg, v),
        arm_route(ctx, SUB + PROVIDER + "/galleries", ["GET"], list_sub, v),
    ]
