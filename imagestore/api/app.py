"""The ASGI application: ``create_app(store_path, settings)``.

Each resource family is one module with a ``routes(ctx) -> list[Route]`` function; adding a
family is adding its module and one line to :data:`FAMILIES`.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..worker import ensure_worker
from . import (
    authorization,
    cloud,
    disks,
    export,
    galleries,
    image_versions,
    images,
    managed_images,
    oauth,
    operations,
    shared_galleries,
    snapshots,
    soft_deleted,
    virtual_machines,
)
from .context import ApiContext, Settings
from .errors import ApiError, response

log = logging.getLogger("imagestore.api")

#: the resource families served, in routing order (one line per family)
FAMILIES = [
    galleries,
    images,
    image_versions,
    soft_deleted,  # soft-deleted image versions: list, purge (issue 15)
    disks,
    operations,
    export,  # disk export: beginGetAccess/endGetAccess and the SAS blob (issue 12)
    snapshots,  # Microsoft.Compute/snapshots (issue 13)
    managed_images,  # Microsoft.Compute/images: managed images (issue 13)
    virtual_machines,  # virtualMachines, virtualMachineScaleSets (issue 14)
    shared_galleries,  # sharedGalleries and communityGalleries: consumer views (issue 15)
    authorization,  # Microsoft.Authorization: role definitions and assignments (issue 15)
    cloud,  # cloud metadata, subscriptions, tenants, resource groups (every ARM client)
    oauth,  # the directory's token and OpenID endpoints (az login, MSAL, Terraform)
]

#: ARM matches the fixed segments of a path case-insensitively
_KEYWORDS = ("subscriptions", "resourceGroups", "providers", "Microsoft.Compute", "galleries",
             "images", "versions", "disks", "snapshots", "locations", "operations",
             "operationResults", "virtualMachines", "virtualMachineScaleSets",
             "sharedGalleries", "communityGalleries", "share",
             "softDeletedArtifactTypes", "artifacts")
_CANON = {k.lower(): k for k in _KEYWORDS}


class CanonicalPath:
    """ASGI wrapper: the fixed keywords of a path in ARM's spelling (``resourcegroups`` ->
    ``resourceGroups``), names left as they are (every second segment is a name)."""

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http":
            parts = scope["path"].split("/")
            # keywords sit at odd positions: /subscriptions/{id}/resourceGroups/{rg}/providers/NS/...
            canon = [(_CANON.get(p.lower(), p) if i % 2 == 1 else p) for i, p in enumerate(parts)]
            path = "/".join(canon)
            if path != scope["path"]:
                scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def _not_found(request: Request, exc: Exception) -> Response:
    path = request.url.path
    if "/providers/Microsoft.Compute/" in path:
        return response(ApiError(404, "InvalidResourceType",
                                 f"The resource type in '{path}' could not be found in the "
                                 f"namespace 'Microsoft.Compute'."))
    return response(ApiError(404, "NotFound", f"The path '{path}' is not served here."))


def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return response(ApiError(405, "HttpMethodNotSupported",
                                 f"The resource '{request.url.path}' does not support http "
                                 f"method '{request.method}'."))
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        return _not_found(request, exc)
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    return response(ApiError(code, "BadRequest" if code < 500 else "InternalServerError",
                             str(getattr(exc, "detail", exc))))


def create_app(store_path: str, settings: Settings | None = None):  # noqa: ANN201 - ASGI app
    """The REST API over the store at ``store_path`` (created on first use)."""
    ctx = ApiContext(store_path, settings or Settings())
    routes = []
    for family in FAMILIES:
        routes.extend(family.routes(ctx))

    @asynccontextmanager
    async def lifespan(app):  # noqa: ANN001, ANN202
        # work a killed server (or its worker) left queued is taken up again
        svc = ctx.service()
        if svc.operations.in_progress() or svc.repo.pending_jobs():
            ensure_worker(svc)
        yield

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, 404: _not_found})
    app.state.ctx = ctx
    return CanonicalPath(app)
