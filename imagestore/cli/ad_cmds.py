"""`imagestore ad sp …`: the directory's service principals (az ad sp), which sign in to
`imagestore serve` with client credentials (`az login --service-principal`)."""

from __future__ import annotations

import click

from ..identity import principals
from .common import common_options, open_home
from .output import emit


@click.group("ad")
def ad_group() -> None:
    """The directory: tenants, users, groups, service principals (az ad)."""


@ad_group.group("sp")
def sp_group() -> None:
    """Service principals: applications that sign in with a client id and secret."""


@sp_group.command("create-for-rbac")
@click.option("-n", "--name", "display_name", required=True, metavar="NAME",
              help="Display name; an existing principal of that name gets a new secret.")
@click.option("--years", type=click.IntRange(1, 100), default=principals.SECRET_YEARS,
              show_default=True, help="Years the secret stays valid.")
@click.option("--role", default="Contributor", show_default=True, metavar="ROLE",
              help="Role a new principal gets at --scopes.")
@click.option("--scopes", "scopes", multiple=True, metavar="SCOPE",
              help="Scopes of the role (repeat, or space-separated; default the local "
                   "subscription).")
@click.option("--skip-assignment", is_flag=True, default=False,
              help="Create no role assignment.")
@common_options
@click.pass_context
def sp_create_for_rbac(ctx: click.Context, display_name: str, years: int, role: str,
                       scopes: tuple[str, ...], skip_assignment: bool) -> None:
    """Create a service principal and print its credentials as az does: {appId, displayName,
    password, tenant}. The password is shown only now (it is stored hashed). A new principal
    gets --role at --scopes (default Contributor on the local subscription, as az before
    2.37); its tokens can do what its role assignments allow (`imagestore role assignment`).

    \b
    Example:
      imagestore ad sp create-for-rbac --name ci-bot
      az login --service-principal -u APP_ID -p PASSWORD --tenant TENANT
    """
    flat = [x for s in scopes for x in s.split()]
    emit(ctx, principals.create(open_home(ctx), display_name, years=years,
                                role=None if skip_assignment else role, scopes=flat or None))


@sp_group.command("create")
@click.option("--id", "ident", required=True, metavar="APP_ID",
              help="The application (app id or display name) to create a principal of.")
@click.option("--tenant", required=True, metavar="TENANT",
              help="The tenant (id or domain) the app is consented into.")
@common_options
@click.pass_context
def sp_create(ctx: click.Context, ident: str, tenant: str) -> None:
    """Create the service principal object of an existing application in another tenant (a
    multi-tenant app consented there). It has its own object id there, signs in to that
    tenant with the app's secret (token endpoint /TENANT/oauth2/v2.0/token) and gets what
    that tenant's role assignments of the object allow.

    \b
    Example:
      imagestore ad sp create --id ci-bot --tenant fabrikam.imagestore.local --query id -o tsv
    """
    from ..identity import directory

    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        tid = directory.tenant(dr, tenant)[0]
    emit(ctx, principals.consent(home, ident, tid).to_json())


@sp_group.command("show")
@click.option("--id", "ident", required=True, metavar="APP_ID",
              help="App id, object id or display name.")
@common_options
@click.pass_context
def sp_show(ctx: click.Context, ident: str) -> None:
    """Show a service principal (never its secret).

    \b
    Example:
      imagestore ad sp show --id ci-bot
    """
    emit(ctx, principals.show(open_home(ctx, create=False), ident).to_json())


@sp_group.command("list")
@common_options
@click.pass_context
def sp_list(ctx: click.Context) -> None:
    """List the service principals.

    \b
    Example:
      imagestore ad sp list --query [].appId -o tsv
    """
    emit(ctx, [p.to_json() for p in principals.list_all(open_home(ctx, create=False))])


@sp_group.command("delete")
@click.option("--id", "ident", required=True, metavar="APP_ID",
              help="App id, object id or display name.")
@common_options
@click.pass_context
def sp_delete(ctx: click.Context, ident: str) -> None:
    """Delete a service principal: its secret stops working at once.

    \b
    Example:
      imagestore ad sp delete --id ci-bot
    """
    principals.delete(open_home(ctx), ident)
