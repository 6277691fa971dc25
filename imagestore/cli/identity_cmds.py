"""`imagestore account show` and `imagestore token create`: the local account as az prints
it, and bearer tokens for the REST API (``imagestore serve``)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..errors import InvalidArgument
from ..gallery import ids
from ..identity import account_json, directory, principals, tokens
from ..identity.account import local_user
from .common import common_options, open_home
from .output import emit
from .targets import remember_command


@click.group("account")
def account_group() -> None:
    """The local account: subscription, tenant and user (az account)."""


@account_group.command("show")
@click.option("-s", "--subscription", "subscription", default=None, metavar="ID",
              help="A subscription of the directory (default: the local one).")
@common_options
@click.pass_context
def account_show(ctx: click.Context, subscription: str | None) -> None:
    """Show the subscription, tenant and user, as `az account show` does.

    \b
    Example:
      imagestore account show --query id -o tsv
      imagestore account show --subscription $S2
    """
    home = open_home(ctx, create=False)
    if subscription is None:
        emit(ctx, account_json(home.root))
        return
    with directory.open_directory(home) as dr:
        row = directory.subscription(dr, subscription)
    out = {**account_json(home.root), **directory.subscription_json(row, local_user())}
    emit(ctx, out)


@click.group("token")
def token_group() -> None:
    """Bearer tokens for the REST API."""


@token_group.command("create")
@click.option("--assignee", default=None, metavar="PRINCIPAL",
              help="Who the token is for (default: the local user).")
@click.option("--expires-in", "expires_in", type=int, default=tokens.DEFAULT_EXPIRES_IN,
              show_default=True, metavar="SECONDS", help="Lifetime in seconds.")
@click.option("--tenant", default=None, metavar="TENANT",
              help="For a service principal: the tenant to sign in to (its object there; "
                   "default its home tenant).")
@common_options
@click.pass_context
def token_create(ctx: click.Context, assignee: str | None, expires_in: int,
                 tenant: str | None) -> None:
    """Issue a signed access token (a JWT), printed as `az account get-access-token` does.

    For a user or service principal of the directory the token carries its object id and
    tenant, and role assignments decide what it may do; any other assignee (or none) gets a
    token of the store owner: full access.

    \b
    Example:
      TOKEN=$(imagestore token create --query accessToken -o tsv)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8443/subscriptions/...
    """
    remember_command(ctx)  # errors name this command's flags
    home = open_home(ctx)
    p = None
    if assignee is not None:
        with directory.open_directory(home) as dr:
            p = directory.find(dr, home, assignee)
            if tenant is not None:
                p = directory.in_tenant(dr, home, p, directory.tenant(dr, tenant)[0], assignee)
    elif tenant is not None:
        raise InvalidArgument("tenant: only with --assignee (a service principal)",
                              target="tenant")
    if p is None:  # the store owner's token (named as asked): full access
        tok = tokens.issue(home, assignee or local_user(), expires_in=expires_in)
    elif p.type == directory.GROUP:
        raise InvalidArgument(f"assignee: '{assignee}' is a group; tokens are for users and "
                              f"service principals", target="assignee")
    else:  # a directory principal's token: RBAC applies
        extra = {"xms_rbac": True, "upn": p.name} if p.type == directory.USER else {
            "xms_rbac": True, "appid": principals.show(home, p.object_id).app_id,
            "idtyp": "app"}
        tok = tokens.issue(home, p.object_id, p.tenant_id, expires_in=expires_in,
                           extra={"name": p.name, **extra})
    claims = tokens.verify(home, tok)
    expires = datetime.fromtimestamp(claims.exp, UTC)
    sub = ids.SUBSCRIPTION  # the owner's; a principal's: the first of its tenant, as az login
    if p is not None:
        with directory.open_directory(home) as dr:
            sub = next((r[0] for r in dr.subscriptions() if r[2] == p.tenant_id), sub)
    emit(ctx, {
        "accessToken": tok,
        "expiresOn": expires.strftime("%Y-%m-%d %H:%M:%S.000000"),
        "expires_on": claims.exp,
        "subscription": sub,
        "tenant": claims.tid,
        "tokenType": "Bearer",
        "assignee": claims.name,
        "objectId": claims.oid,
    })
