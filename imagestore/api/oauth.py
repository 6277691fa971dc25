"""The directory's sign-in endpoints, shaped as Entra ID's, for clients that get their own
tokens (az, MSAL, azure-identity, Terraform's azurerm, Pulumi):

- ``POST /{tenant}/oauth2/v2.0/token`` — OAuth2 client credentials (``client_id`` +
  ``client_secret`` in the form or as HTTP Basic, ``scope=<resource>/.default``): an access
  token from :func:`imagestore.identity.tokens.issue` for the service principal
  (:mod:`imagestore.identity.principals`), ``aud`` the resource asked for when this server
  accepts it. ``POST /{tenant}/oauth2/token`` is the v1 form (``resource=``) older clients use.
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (and the v1 form without
  ``/v2.0``): the OpenID discovery document MSAL reads to find the token endpoint;
  ``/common/discovery/instance`` (instance discovery, for clients pointed at it) and the
  ``jwks_uri`` (empty: tokens are HMAC-signed, only this server can check them).

Refusals are Entra ID's: ``{"error", "error_description": "AADSTS…: …", "error_codes",
"timestamp", "trace_id", "correlation_id", "error_uri"}`` with 400 (bad request, unknown
client or tenant, unsupported grant or scope) or 401 (wrong or expired secret). Every tenant
of the directory has its endpoints (by id or domain; ``common`` and ``organizations`` name
the local tenant, :data:`imagestore.identity.account.TENANT`): an app signing in to a tenant
gets its service principal object there (``oid``) and that ``tid``, or AADSTS700016 when it
was not consented into it (``ad sp create --id APP --tenant T``). Interactive sign-in (authorization code, device code) is
not offered: principals sign in with secrets.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..identity import TENANT, principals, tokens
from .context import ApiContext

#: largest token request body (a form of a few fields)
MAX_FORM = 64 << 10
TOKEN_LIFETIME = 3600
_ALIASES = ("common", "organizations", "consumers")
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An Entra ID style refusal."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.aadsts, self.description = status, error, aadsts, description


def _error(base: str, e: OAuthError) -> Response:
    now = datetime.now(UTC)
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    desc = (f"AADSTS{e.aadsts}: {e.description.removeprefix(f'AADSTS{e.aadsts}: ')}\r\n"
            f"Trace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {stamp}")
    return JSONResponse({"error": e.error, "error_description": desc, "error_codes": [e.aadsts],
                         "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
                         "error_uri": f"{base}/error?code={e.aadsts}"},
                        status_code=e.status, headers=_NO_STORE)


def _tenant(ctx: ApiContext, name: str) -> str:
    """The tenant id a sign-in URL names (an alias, an id or a domain of the directory)."""
    if name.lower() in _ALIASES or name.lower() == TENANT:
        return TENANT
    from ..identity import directory

    with directory.open_directory(ctx.home) as dr:
        row = dr.tenant(name)
    if row is not None:
        return row[0]
    raise OAuthError(400, "invalid_request", 90002,
                     f"Tenant '{name}' not found. Check to make sure you have the correct "
                     f"tenant ID and are signing into the correct cloud.")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def openid_configuration(base: str, tenant: str, v2: bool = True) -> dict:
    """The OpenID discovery document of ``tenant`` on this server."""
    t = f"{base}/{tenant}"
    ver = "/v2.0" if v2 else ""
    return {
        "token_endpoint": f"{t}/oauth2{ver}/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{t}/discovery{ver}/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": [tokens.ALGORITHM],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{t}/v2.0" if v2 else tokens.issuer(tenant),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{t}/oauth2{ver}/authorize",
        "device_authorization_endpoint": f"{t}/oauth2{ver}/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{t}/oauth2{ver}/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "appid",
                             "idtyp", "ver"],
        "tenant_region_scope": None,
        "cloud_instance_name": "imagestore.local",
        "cloud_graph_host_name": "imagestore.local",
        "msgraph_host": "imagestore.local",
        "rbac_url": base,
    }


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise OAuthError(400, "invalid_request", 900144,
                         "The request body must be application/x-www-form-urlencoded.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            raise OAuthError(400, "invalid_request", 90014,
                             f"The request body is larger than {MAX_FORM} bytes.")
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", 900144,
                         "The request body is not UTF-8.") from None
    out = {}
    for k, v in fields.items():
        if len(v) != 1:
            raise OAuthError(400, "invalid_request", 90015,
                             f"The parameter '{k}' is given more than once.")
        out[k] = v[0]
    return out


def _basic(request: Request) -> tuple[str, str] | None:
    h = request.headers.get("authorization")
    if not h or not h.lower().startswith("basic "):
        return None
    try:
        user, _, pw = base64.b64decode(h[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(400, "invalid_request", 900144,
                         "The Authorization header is not valid Basic credentials.") from None
    return unquote(user), unquote(pw)


def _resource(ctx: ApiContext, form: dict[str, str], v2: bool) -> str:
    if v2:
        scope = form.get("scope")
        if not scope:
            raise OAuthError(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: 'scope'.")
        wanted = [s for s in scope.split() if s not in ("openid", "profile", "offline_access",
                                                       "email")]
        if len(wanted) != 1 or not wanted[0].endswith("/.default"):
            raise OAuthError(400, "invalid_scope", 1002012,
                             f"The provided value for scope {scope} is not valid. Client "
                             f"credential flows must have a scope value with /.default "
                             f"suffixed to the resource identifier (application ID URI).")
        resource = wanted[0][: -len(".default")]
    else:
        resource = form.get("resource")
        if not resource:
            raise OAuthError(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'resource'.")
    for aud in ctx.settings.audiences:
        if resource.rstrip("/") == aud.rstrip("/"):
            return aud
    raise OAuthError(400, "invalid_resource", 500011,
                     f"The resource principal named {resource} was not found in the tenant "
                     f"named {TENANT}. This server issues tokens for: "
                     f"{', '.join(sorted(set(ctx.settings.audiences)))}.")


def _token_endpoint(ctx: ApiContext, v2: bool):  # noqa: ANN202 - a Starlette endpoint
    async def endpoint(request: Request) -> Response:
        base = _base(request)
        try:
            tenant = await run_in_threadpool(_tenant, ctx, request.path_params["tenant"])
            form = await _form(request)
            grant = form.get("grant_type")
            if not grant:
                raise OAuthError(400, "invalid_request", 900144, "The request body must "
                                 "contain the following parameter: 'grant_type'.")
            if grant != "client_credentials":
                raise OAuthError(400, "unsupported_grant_type", 70003,
                                 f"The app requested an unsupported grant type '{grant}'. "
                                 f"imagestore signs in service principals with client "
                                 f"credentials (client_id and client_secret) only.")
            if "client_assertion" in form:
                raise OAuthError(400, "invalid_request", 700027, "Client assertions "
                                 "(certificate credentials) are not supported: use the "
                                 "principal's client secret.")
            basic = _basic(request)
            client_id = form.get("client_id") or (basic[0] if basic else None)
            secret = form.get("client_secret") or (basic[1] if basic else None)
            if not client_id:
                raise OAuthError(400, "invalid_request", 900144, "The request body must "
                                 "contain the following parameter: 'client_id'.")
            if not secret:
                raise OAuthError(401, "invalid_client", 7000218, "The request body must "
                                 "contain the following parameter: 'client_assertion' or "
                                 "'client_secret'.")
            audience = _resource(ctx, form, v2)
            try:
                p = await run_in_threadpool(principals.authenticate, ctx.root, client_id,
                                            secret, tenant)
            except principals.BadCredentials as e:
                raise OAuthError(e.status, e.code, e.aadsts, e.message) from None
            now = int(datetime.now(UTC).timestamp())
            tok = tokens.issue(ctx.root, p.object_id, tenant, TOKEN_LIFETIME,
                               audience=audience, now=now,
                               extra={"appid": p.app_id, "idtyp": "app",
                                      "app_displayname": p.display_name})
        except OAuthError as e:
            return _error(base, e)
        life = TOKEN_LIFETIME - 1
        if v2:
            body: dict = {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life,
                          "access_token": tok}
        else:
            body = {"token_type": "Bearer", "expires_in": str(life),
                    "ext_expires_in": str(life), "expires_on": str(now + life),
                    "not_before": str(now), "resource": audience, "access_token": tok}
        return JSONResponse(body, headers=_NO_STORE)

    return endpoint


def _openid(ctx: ApiContext, v2: bool):  # noqa: ANN202
    async def endpoint(request: Request) -> Response:
        base = _base(request)
        try:
            tenant = await run_in_threadpool(_tenant, ctx, request.path_params["tenant"])
        except OAuthError as e:
            return _error(base, e)
        return JSONResponse(openid_configuration(base, tenant, v2))
    return endpoint


async def _instance_discovery(request: Request) -> Response:
    base = _base(request)
    host = request.url.netloc
    return JSONResponse({
        "tenant_discovery_endpoint": f"{base}/{TENANT}/v2.0/.well-known/openid-configuration",
        "api-version": request.query_params.get("api-version", "1.1"),
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    })


async def _keys(request: Request) -> Response:
    return JSONResponse({"keys": []})


async def _interactive(request: Request) -> Response:
    return _error(_base(request), OAuthError(
        400, "unsupported_response_type", 50011, "Interactive and device-code sign-in are not "
        "offered by imagestore: sign in a service principal with its client secret (az login "
        "--service-principal -u APP_ID -p SECRET --tenant TENANT)."))


def routes(ctx: ApiContext) -> list[Route]:
    return [
        Route("/{tenant}/oauth2/v2.0/token", _token_endpoint(ctx, True), methods=["POST"]),
        Route("/{tenant}/oauth2/token", _token_endpoint(ctx, False), methods=["POST"]),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", _openid(ctx, True),
              methods=["GET"]),
        Route("/{tenant}/.well-known/openid-configuration", _openid(ctx, False), methods=["GET"]),
        Route("/common/discovery/instance", _instance_discovery, methods=["GET"]),
        Route("/{tenant}/discovery/v2.0/keys", _keys, methods=["GET"]),
        Route("/{tenant}/discovery/keys", _keys, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/authorize", _interactive, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/devicecode", _interactive, methods=["POST"]),
    ]
