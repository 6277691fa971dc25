"""Routes as ARM has them: every request is authenticated (bearer token), carries an accepted
``api-version``, has a bounded JSON body, and runs its handler (sync: the services use
SQLite) in a worker thread; every failure becomes ARM's error body.

A resource family module declares its routes with :func:`arm_route`::

    def routes(ctx):
        return [arm_route(ctx, GALLERY + "/{galleryName}", ["GET"], get_gallery,
                          GALLERY_API_VERSIONS, parents=())]

and a handler takes an :class:`ArmRequest` and returns a :class:`Reply`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ImagestoreError, InvalidArgument, Unauthenticated
from ..gallery import GalleryService, ids, resource_groups
from ..gallery.directory_repository import DirectoryRepository
from ..identity import TENANT, Claims, auxiliary, tokens
from . import authz, versions
from .context import ApiContext
from .errors import ApiError, from_domain, internal, invalid_content, response

SUB = "/subscriptions/{subscriptionId}"
RG = SUB + "/resourceGroups/{resourceGroupName}"
PROVIDER = "/providers/Microsoft.Compute"


@dataclass
class Reply:
    """A handler's answer."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ArmRequest:
    """What a handler gets."""

    ctx: ApiContext
    method: str
    path: dict[str, str]
    query: dict[str, str]
    body: Any
    api_version: str
    claims: Claims
    base_url: str
    url_path: str
    #: the path's subscription as the directory stores it (checked before the handler runs;
    #: the local one for paths without a subscription, such as ``/tenants``)
    subscription: str = ids.SUBSCRIPTION

    @property
    def svc(self) -> GalleryService:
        """This thread's gallery service (reads)."""
        return self.ctx.service()

    @property
    def rg(self) -> str:
        return self.path["resourceGroupName"]

    def require_body(self) -> dict:
        """The JSON object body (400 when absent or not an object)."""
        if not isinstance(self.body, dict):
            raise invalid_content("the body must be a JSON object")
        return self.body

    def url(self, path: str, **query: str) -> str:
        """An absolute URL on this server."""
        q = {"api-version": self.api_version, **query}
        return f"{self.base_url}{path}?{urlencode(q)}"


Handler = Callable[[ArmRequest], Reply]


def bearer(request: Request) -> str:
    """The bearer token of the request (Unauthenticated when there is none)."""
    h = request.headers.get("authorization")
    if not h:
        raise Unauthenticated("Authentication failed. The 'Authorization' header is missing.",
                              code="AuthenticationFailed")
    scheme, _, tok = h.partition(" ")
    if scheme.lower() != "bearer" or not tok.strip():
        raise Unauthenticated("Authentication failed. The 'Authorization' header is not "
                              "'Bearer <token>'.", code="InvalidAuthenticationToken")
    return tok.strip()


def authenticate(ctx: ApiContext, request: Request) -> Claims:
    """Verify the request's token against the store's key, and its auxiliary tokens
    (``x-ms-authorization-auxiliary``, :mod:`imagestore.identity.auxiliary`)."""
    claims = tokens.verify(ctx.root, bearer(request), audiences=ctx.settings.audiences)
    aux = auxiliary.verify(ctx.root, request.headers.get(auxiliary.HEADER), claims,
                           audiences=ctx.settings.audiences)
    return dataclasses.replace(claims, aux=aux) if aux else claims


async def read_body(ctx: ApiContext, request: Request) -> Any:
    """The JSON body (None when empty), bounded by ``max_body``."""
    limit = ctx.settings.max_body
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise invalid_content("Content-Length is not a number") from None
        if n > limit:
            raise too_large(n, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid_content(f"not JSON ({e})") from None


def too_large(n: int, limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge",
                    f"The request body ({n} bytes or more) is larger than this server's limit "
                    f"of {limit} bytes.")


def arm_route(ctx: ApiContext, path: str, methods: list[str], handler: Handler,
              api_versions: tuple[str, ...], *, parents: tuple[str, ...] = (),
              check_group: bool = True) -> Route:
    """A Starlette route running ``handler`` the ARM way. ``parents``: path parameters that
    name parent resources (their NotFound is ParentResourceNotFound). The path's subscription
    must exist (404 SubscriptionNotFound) and, unless ``check_group`` is False (the resource
    group routes themselves), its resource group must be in that subscription (404
    ResourceGroupNotFound; :func:`imagestore.gallery.resource_groups.check_scope`)."""

    async def endpoint(request: Request) -> Response:
        try:
            claims = authenticate(ctx, request)
            query = dict(request.query_params)
            api_version = versions.check(query, api_versions)
            path_params = dict(request.path_params)
            data = await read_body(ctx, request) if request.method in ("PUT", "PATCH", "POST") else None
            req = ArmRequest(ctx, request.method, path_params, query, data, api_version,
                             claims, str(request.base_url).rstrip("/"), request.url.path)
            reply = await run_in_threadpool(_authorized, handler, req, path, check_group)
        except ApiError as e:
            return response(e)
        except ImagestoreError as e:
            return response(from_domain(e, parent_targets=parents, tenant=TENANT))
        except Exception as e:  # noqa: BLE001 - the API's last line of defence
            return response(internal(e))
        if reply.body is None:
            return Response(status_code=reply.status, headers=reply.headers)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    return Route(path, endpoint, methods=methods)


def _authorized(handler: Handler, req: ArmRequest, template: str, check_group: bool) -> Reply:
    """The path's subscription, RBAC (issue 15; :mod:`.authz`), the path's resource group,
    then the handler."""
    repo = req.svc.repo
    sub = req.path.get("subscriptionId")
    if sub is not None:
        req.subscription = resource_groups.require_subscription(repo, sub)
    authz.check(DirectoryRepository(repo.con), req.claims, req.method, template,
                req.url_path, req.body, store_root=req.ctx.root,
                import_dirs=req.ctx.settings.principal_import_dirs)
    rg = req.path.get("resourceGroupName")
    if rg is not None and check_group:
        resource_groups.check_scope(repo, req.subscription, rg)
    return handler(req)


def in_subscription(req: ArmRequest, items: list[dict]) -> list[dict]:
    """The resources of a subscription-wide list that are in the path's subscription (every
    resource's ``id`` starts with its resource group's subscription)."""
    prefix = ids.subscription_id(req.subscription).lower() + "/"
    return [x for x in items if str(x.get("id", "")).lower().startswith(prefix)]


# -- paging ----------------------------------------------------------------------------------


def page(req: ArmRequest, items: list[Any]) -> Reply:
    """One page of a list (``value``), with ``nextLink`` when there are more."""
    return page_of(req, lambda start, n: items[start:start + n])


def page_of(req: ArmRequest, fetch: Callable[[int, int], list[Any]]) -> Reply:
    """One page of a list that ``fetch(start, n)`` renders a slice of (at most ``n`` items
    from ``start``), so a page costs its own items, not the whole list (issue 17: a page of
    versions at 1,000 versions costs what it costs at 100)."""
    size = req.ctx.settings.page_size
    start = 0
    token = req.query.get("$skipToken")
    if token is not None:
        try:
            start = int(base64.urlsafe_b64decode(token.encode() + b"==").decode())
            if start < 0:
                raise ValueError(start)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(f"$skipToken: '{token}' is not a token this server issued",
                                  target="$skipToken") from None
    items = fetch(start, size + 1)  # one more than the page: is there a next one?
    out: dict[str, Any] = {"value": items[:size]}
    if len(items) > size:
        nxt = base64.urlsafe_b64encode(str(start + size).encode()).decode().rstrip("=")
        out["nextLink"] = req.url(req.url_path, **{"$skipToken": nxt})
    return Reply(200, out)
