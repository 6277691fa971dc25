"""Soft-deleted image versions (issue 15): ``GET …/galleries/{g}/softDeletedArtifactTypes/
Images/artifacts/{image}/versions`` lists them (``GallerySoftDeletedResource``, the SDK's
``soft_deleted_resource.list_by_artifact_name``), ``DELETE …/versions/{v}`` on that path
purges one (hard delete; the SDK has no method for it yet). Soft delete itself is the normal
version DELETE in a gallery with ``softDeletePolicy.isSoftDeleteEnabled``, and restoring is a
PUT of the version (:func:`restore_requested`); see :mod:`imagestore.gallery.soft_delete`.

RBAC: the actions are derived from the path as for every route —
``Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions/read`` and
``…/delete`` (Azure does not document them; decision).
"""

from __future__ import annotations

from starlette.routing import Route

from ..errors import InvalidArgument
from ..gallery import ids
from .context import ApiContext
from .fields import Body
from .galleries import ITEM as GALLERY
from .operations import accepted
from .routing import ArmRequest, Reply, arm_route, page
from .versions import GALLERY_API_VERSIONS

COLLECTION = (GALLERY + "/softDeletedArtifactTypes/{artifactType}/artifacts/{artifactName}"
              "/versions")
ITEM = COLLECTION + "/{versionName}"
PARENTS = ("galleryName", "galleryImageName")  # the definition is artifactName


def _names(req: ArmRequest) -> tuple[str, str, str]:
    kind = req.path["artifactType"]
    if kind.lower() != "images":
        raise InvalidArgument(f"artifactType: '{kind}' is not a soft-deleted artifact type "
                              f"(Images)", target="artifactType")
    return req.rg, req.path["galleryName"], req.path["artifactName"]


def list_versions(req: ArmRequest) -> Reply:
    rg, g, image = _names(req)
    return page(req, req.svc.soft_delete.list(rg, g, image))


def purge(req: ArmRequest) -> Reply:
    rg, g, image = _names(req)
    v = req.path["versionName"]
    with req.ctx.writing() as svc:
        loc = svc.versions.row(rg, g, image, v).location
        svc.soft_delete.purge(rg, g, image, v)
        op = svc.operations.done("delete", ids.version_id(req.subscription, rg, g, image, v), loc)
    return accepted(req, op, loc, 202)


def restore_requested(b: Body, svc, names: tuple[str, str, str, str]) -> bool:
    """Whether a version PUT is a restore: ``properties.restore`` true, or any PUT of a
    soft-deleted version (Azure: "PUT the version with its home-region location")."""
    if b.bool("properties.restore"):
        return True
    return svc.soft_delete.is_soft_deleted(*names)


def routes(ctx: ApiContext) -> list[Route]:
    v = GALLERY_API_VERSIONS
    return [
        arm_route(ctx, COLLECTION, ["GET"], list_versions, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["DELETE"], purge, v, parents=PARENTS),
    ]
