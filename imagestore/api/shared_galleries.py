"""Consumer views (issue 15): ``…/locations/{location}/sharedGalleries`` (direct shares) and
``…/locations/{location}/communityGalleries`` (community galleries), read-only, computed by
:mod:`imagestore.gallery.shared_views` on every request.

Who sees what (decisions, README "Sharing"): a shared gallery is seen through subscription
``{subscriptionId}`` when the share lists that subscription, or — with ``sharedTo=tenant`` for
the list, always for a GET by name — the caller's tenant (the token's ``tid``) or the
subscription's home tenant; the caller
needs ``Microsoft.Compute/locations/sharedGalleries[/images[/versions]]/read`` over the
subscription (Reader there has it; checked by :mod:`.authz` like every route). A community
gallery is seen by every signed-in principal of any tenant (not RBAC-checked). Anything not
seen is 404 ``ResourceNotFound``, the same for missing and not shared.
"""

from __future__ import annotations

from starlette.routing import Route

from ..errors import InvalidArgument
from ..gallery.directory_repository import DirectoryRepository
from ..gallery.shared_views import COMMUNITY, SHARED, ConsumerViews, Viewer
from ..identity import TENANT
from .context import ApiContext
from .routing import PROVIDER, SUB, ArmRequest, Reply, arm_route, page
from .versions import GALLERY_API_VERSIONS

LOCATION = SUB + PROVIDER + "/locations/{location}"
SHARED_ITEM = LOCATION + "/sharedGalleries/{galleryUniqueName}"
COMMUNITY_ITEM = LOCATION + "/communityGalleries/{publicGalleryName}"
IMAGES = "/images"
IMAGE = "/images/{galleryImageName}"
VERSIONS = IMAGE + "/versions"
VERSION = VERSIONS + "/{galleryImageVersionName}"


def _views(req: ArmRequest) -> ConsumerViews:
    return ConsumerViews(req.svc.repo)


def viewer(req: ArmRequest) -> Viewer:
    """The request's subscription and the caller's tenant."""
    row = DirectoryRepository(req.svc.repo.con).subscription(req.subscription)
    return Viewer(req.subscription, req.claims.tid, row[2] if row else TENANT)


def _args(req: ArmRequest, kind: str) -> tuple:
    name = req.path["galleryUniqueName" if kind == SHARED else "publicGalleryName"]
    return kind, req.path["location"], name


def _who(req: ArmRequest, kind: str) -> Viewer | None:
    return viewer(req) if kind == SHARED else None


def list_shared(req: ArmRequest) -> Reply:
    to = req.query.get("sharedTo")
    if to is not None and to.lower() != "tenant":
        raise InvalidArgument(f"sharedTo: '{to}' is not a valid value (tenant)", target="sharedTo")
    return page(req, _views(req).list_shared(viewer(req), req.path["location"],
                                             shared_to_tenant=to is not None))


def _handlers(kind: str) -> list[tuple[str, object]]:
    def gallery(req: ArmRequest) -> Reply:
        return Reply(200, _views(req).gallery(*_args(req, kind), _who(req, kind)))

    def images(req: ArmRequest) -> Reply:
        return page(req, _views(req).images(*_args(req, kind), _who(req, kind)))

    def image(req: ArmRequest) -> Reply:
        return Reply(200, _views(req).image(*_args(req, kind), req.path["galleryImageName"],
                                            _who(req, kind)))

    def versions(req: ArmRequest) -> Reply:
        return page(req, _views(req).versions(*_args(req, kind), req.path["galleryImageName"],
                                              _who(req, kind)))

    def version(req: ArmRequest) -> Reply:
        return Reply(200, _views(req).version(*_args(req, kind), req.path["galleryImageName"],
                                              req.path["galleryImageVersionName"],
                                              _who(req, kind)))

    return [("", gallery), (IMAGES, images), (IMAGE, image), (VERSIONS, versions),
            (VERSION, version)]


def routes(ctx: ApiContext) -> list[Route]:
    v = GALLERY_API_VERSIONS
    out = [arm_route(ctx, LOCATION + "/sharedGalleries", ["GET"], list_shared, v)]
    for base, kind in ((SHARED_ITEM, SHARED), (COMMUNITY_ITEM, COMMUNITY)):
        out += [arm_route(ctx, base + tail, ["GET"], h, v) for tail, h in _handlers(kind)]
    return out
