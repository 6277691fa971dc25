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
- ``GET /subscriptions``, ``/subscriptions/{id}``, ``/tenants`` (bearer token): the one
  local subscription and tenant, as ``az login`` lists them.
- ``GET|HEAD|PUT /subscriptions/{id}/resourceGroups/{rg}``: resource groups are implicit in
  imagestore (any valid name exists, in location ``local``), so clients that look one up
  (``az … -g RG`` without ``-l``) or create one (``az group create``) get it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..gallery import ids, validate
from ..identity import TENANT
from ..identity.account import SUBSCRIPTION_NAME
from .context import ApiContext
from .errors import ApiError, response
from .routing import ArmRequest, Reply, arm_route

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


def subscription_json() -> dict:
    """The local subscription as ``Subscriptions - Get`` returns it."""
    return {
        "id": f"/subscriptions/{ids.SUBSCRIPTION}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": ids.SUBSCRIPTION,
        "tenantId": TENANT,
        "displayName": SUBSCRIPTION_NAME,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                 "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    }


def list_subscriptions(req: ArmRequest) -> Reply:
    return Reply(200, {"value": [subscription_json()], "count": {"type": "Total", "value": 1}})


def get_subscription(req: ArmRequest) -> Reply:
    return Reply(200, subscription_json())  # a foreign id is refused by arm_route


def list_tenants(req: ArmRequest) -> Reply:
    return Reply(200, {"value": [{
        "id": f"/tenants/{TENANT}", "tenantId": TENANT, "tenantCategory": "Home",
        "displayName": "imagestore", "domains": [_SUFFIX], "defaultDomain": _SUFFIX,
        "tenantType": "AAD",
    }]})


def _group(req: ArmRequest, location: str = DEFAULT_LOCATION) -> dict:
    rg = validate.resource_group(req.path["resourceGroupName"])
    return {"id": f"/subscriptions/{ids.SUBSCRIPTION}/resourceGroups/{rg}", "name": rg,
            "type": "Microsoft.Resources/resourceGroups", "location": location,
            "properties": {"provisioningState": "Succeeded"}}


def get_group(req: ArmRequest) -> Reply:
    if req.method == "HEAD":
        _group(req)
        return Reply(204)
    return Reply(200, _group(req))


def put_group(req: ArmRequest) -> Reply:
    body = req.body if isinstance(req.body, dict) else {}
    loc = body.get("location") or DEFAULT_LOCATION
    out = _group(req, loc if isinstance(loc, str) else DEFAULT_LOCATION)
    if isinstance(body.get("tags"), dict):
        out["tags"] = body["tags"]
    return Reply(200, out)


def routes(ctx: ApiContext) -> list[Route]:
    group = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    v = RESOURCES_API_VERSIONS
    return [
        Route("/metadata/endpoints", metadata_endpoint, methods=["GET"]),
        Route("//metadata/endpoints", metadata_endpoint, methods=["GET"]),
        arm_route(ctx, "/subscriptions", ["GET"], list_subscriptions, v),
        arm_route(ctx, "/subscriptions/{subscriptionId}", ["GET"], get_subscription, v),
        arm_route(ctx, "/tenants", ["GET"], list_tenants, v),
        arm_route(ctx, group, ["GET", "HEAD"], get_group, v),
        arm_route(ctx, group, ["PUT"], put_group, v),
    ]
