"""What every ARM client asks before it touches a resource: the cloud's metadata document,
and Microsoft.Resources' subscriptions, tenants and resource groups.

- ``GET /metadata/endpoints?api-version=…`` — ARM's cloud metadata, as
  ``management.azure.com`` serves it: for ``2022-09-01`` (what ``az cloud register
  --endpoint-resource-manager`` and go-azure-sdk — Terraform's azurerm ``metadata_host``,
  Pulumi — request) one object ``{name, resourceManager, authentication: {loginEndpoint,
  audiences, tenant, identityProvider}, portal, graph, suffixes{…}, …}``; for ``2019-05-01``
  / ``2020-06-01`` a list of that one cloud; for ``2015-01-01`` the Azure Stack form
  (``galleryEndpoint``, ``graphEndpoint``, ``portalEndpoint``, ``authentication``). Every
  endpoint is this server (the URL the client used); services imagestore does not have get
  suffixes under ``imagestore.local``, which resolve nowhere. ``az cloud register`` with a
  trailing slash asks for ``//metadata/endpoints``: both paths answer.
- ``GET /subscriptions``, ``/subscriptions/{id}``, ``/tenants`` (bearer token): the
  directory's subscriptions and tenants, as ``az login`` lists them (a principal's token:
  those of its tenant; the owner's: all).
- ``GET|HEAD|PUT|DELETE /subscriptions/{id}/resourceGroups/{rg}`` and ``GET
  /subscriptions/{id}/resourceGroups``: resource groups as rows, each in one subscription
  (:mod:`imagestore.gallery.resource_groups`: names unique in the store). In the local
  subscription a valid name without a row is an implicit group (location ``local``), so
  clients that look one up (``az … -g RG`` without ``-l``) get it, as before.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..gallery import ids
from ..gallery.directory_repository import DirectoryRepository
from ..identity import TENANT, authorize
from .context import ApiContext
from .errors import ApiError, response
from .routing import ArmRequest, Reply, arm_route, page

#: Microsoft.Resources api-versions (subscriptions, tenants, resource groups)
RESOURCES_API_VERSIONS: tuple[str, ...] = (
    "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
    "2022-12-01", "2022-09-01", "2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01",
    "2020-06-01", "2020-01-01", "2019-11-01", "2019-10-01", "2019-08-01", "2019-07-01",
    "2019-06-01", "2019-05-10", "2019-05-01", "2018-05-01", "2018-02-01", "2016-09-01",
    "2016-06-01", "2016-02-01",
)
METADATA_API_VERSIONS = ("2022-09-01", "2020-06-01", "2019-05-01", "2018-01-01", "2015-01-01")
CLOUD_NAME = "imagestore"
DEFAULT_LOCATION = "local"
#: what a token for this server's ARM is asked for (the first is az's resource id)
AUDIENCES = ["https://management.core.windows.net/", "https://management.azure.com/"]
_SUFFIX = "imagestore.local"


def metadata(base: str) -> dict:
    """The 2022-09-01 cloud metadata document of this server at ``base``."""
    root = base + "/"
    return {
        "portal": base,
        "authentication": {"loginEndpoint": root, "audiences": list(AUDIENCES),
                           "tenant": "common", "identityProvider": "AAD"},
        "media": root, "graphAudience": root, "graph": root, "name": CLOUD_NAME,
        "suffixes": {
            "azureDataLakeStoreFileSystem": _SUFFIX, "acrLoginServer": _SUFFIX,
            "sqlServerHostname": _SUFFIX, "azureDataLakeAnalyticsCatalogAndJob": _SUFFIX,
            "keyVaultDns": _SUFFIX, "storage": _SUFFIX, "azureFrontDoorEndpointSuffix": _SUFFIX,
            "storageSyncEndpointSuffix": _SUFFIX, "mhsmDns": _SUFFIX,
            "mysqlServerEndpoint": _SUFFIX, "postgresqlServerEndpoint": _SUFFIX,
            "mariadbServerEndpoint": _SUFFIX, "synapseAnalytics": _SUFFIX,
            "attestationEndpoint": _SUFFIX,
        },
        "batch": root, "resourceManager": root, "vmImageAliasDoc": f"{base}/vmImageAliasDoc",
        "activeDirectoryDataLake": root, "sqlManagement": root,
        "microsoftGraphResourceId": root, "appInsightsResourceId": root,
        "appInsightsTelemetryChannelResourceId": root, "attestationResourceId": root,
        "synapseAnalyticsResourceId": root, "logAnalyticsResourceId": root,
        "ossrDbmsResourceId": root,
    }


async def metadata_endpoint(request: Request) -> Response:
    v = request.query_params.get("api-version")
    if not v:
        return response(ApiError(400, "MissingApiVersionParameter", "The api-version query "
                                 "parameter (?api-version=) is required for all requests."))
    if v not in METADATA_API_VERSIONS:
        return response(ApiError(400, "InvalidApiVersionParameter", f"The api-version '{v}' "
                                 f"is invalid. The supported versions are "
                                 f"'{','.join(METADATA_API_VERSIONS)}'.", target="api-version"))
    base = str(request.base_url).rstrip("/")
    doc = metadata(base)
    if v == "2015-01-01":
        return JSONResponse({"galleryEndpoint": base + "/", "graphEndpoint": base + "/",
                             "portalEndpoint": base + "/",
                             "authentication": {"loginEndpoint": base + "/",
                                                "audiences": list(AUDIENCES)}})
    if v in ("2019-05-01", "2020-06-01", "2018-01-01"):
        return JSONResponse([doc])
    return JSONResponse(doc)


def subscription_json(row: tuple) -> dict:
    """A subscription of the directory (``(id, name, tenant_id, created)``) as
    ``Subscriptions - Get`` returns it."""
    return {
        "id": ids.subscription_id(row[0]),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": row[0],
        "tenantId": row[2],
        "displayName": row[1],
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                 "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    }


def _directory(req: ArmRequest) -> DirectoryRepository:
    return DirectoryRepository(req.svc.repo.con)


def list_subscriptions(req: ArmRequest) -> Reply:
    """Decision: the store owner's token lists every subscription of the directory; a
    principal's token those of the tenant it was issued in (``tid``), as ``az login`` into
    that tenant shows them (what the principal may do in each is still RBAC's)."""
    rows = _directory(req).subscriptions()
    if not authorize.is_owner(req.claims):
        rows = [r for r in rows if r[2].lower() == str(req.claims.tid).lower()]
    return Reply(200, {"value": [subscription_json(r) for r in rows],
                       "count": {"type": "Total", "value": len(rows)}})


def get_subscription(req: ArmRequest) -> Reply:
    # an unknown id is refused before (SubscriptionNotFound), RBAC checked ``…/read``
    return Reply(200, subscription_json(_directory(req).subscription(req.subscription)))


def list_tenants(req: ArmRequest) -> Reply:
    rows = _directory(req).tenants()
    if not authorize.is_owner(req.claims):
        rows = [r for r in rows if r[0].lower() == str(req.claims.tid).lower()]
    return Reply(200, {"value": [{
        "id": f"/tenants/{t[0]}", "tenantId": t[0], "tenantCategory": "Home",
        "displayName": "imagestore" if t[0] == TENANT else t[1], "domains": [t[2]],
        "defaultDomain": _SUFFIX if t[0] == TENANT else t[2], "tenantType": "AAD",
    } for t in rows]})


def get_group(req: ArmRequest) -> Reply:
    out = req.svc.groups.show(req.subscription, req.path["resourceGroupName"])
    if req.method == "HEAD":
        return Reply(204)
    return Reply(200, out)


def put_group(req: ArmRequest) -> Reply:
    body = req.body if isinstance(req.body, dict) else {}
    with req.ctx.writing() as svc:
        out, created = svc.groups.create(req.subscription, req.path["resourceGroupName"],
                                         location=body.get("location"),
                                         tags=body.get("tags"))
    return Reply(201 if created else 200, out)


def delete_group(req: ArmRequest) -> Reply:
    with req.ctx.writing() as svc:
        svc.groups.delete(req.subscription, req.path["resourceGroupName"])
    return Reply(200)


def list_groups(req: ArmRequest) -> Reply:
    return page(req, req.svc.groups.list(req.subscription))


def routes(ctx: ApiContext) -> list[Route]:
    group = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    v = RESOURCES_API_VERSIONS
    return [
        Route("/metadata/endpoints", metadata_endpoint, methods=["GET"]),
        Route("//metadata/endpoints", metadata_endpoint, methods=["GET"]),
        arm_route(ctx, "/subscriptions", ["GET"], list_subscriptions, v),
        arm_route(ctx, "/subscriptions/{subscriptionId}", ["GET"], get_subscription, v),
        arm_route(ctx, "/tenants", ["GET"], list_tenants, v),
        arm_route(ctx, group, ["GET", "HEAD"], get_group, v, check_group=False),
        arm_route(ctx, group, ["PUT"], put_group, v, check_group=False),
        arm_route(ctx, group, ["DELETE"], delete_group, v, check_group=False),
        arm_route(ctx, "/subscriptions/{subscriptionId}/resourceGroups", ["GET"], list_groups,
                  v),
    ]
