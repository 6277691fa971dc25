"""The directory and RBAC commands (issue 15), named after az: ``ad tenant create|list``,
``ad user create|list|show``, ``ad group create|list|show``, ``ad group member
add|remove|list|check``, ``account create|list``, ``role definition
create|update|delete|list``, ``role assignment create|list|delete``."""

from __future__ import annotations

import click

from ..identity import assignments, custom_roles, directory, local_user, roles
from ..identity.account import TENANT
from .common import common_options, open_home
from .output import emit


def _dir(ctx: click.Context):  # noqa: ANN202 - a context manager
    return directory.open_directory(open_home(ctx))


# -- ad tenant / user / group -------------------------------------------------------------------


def register_ad(ad_group: click.Group) -> None:
    """Add the tenant, user and group commands to ``imagestore ad``."""
    ad_group.add_command(tenant_group)
    ad_group.add_command(user_group)
    ad_group.add_command(group_group)


@click.group("tenant")
def tenant_group() -> None:
    """Tenants (directories): each subscription and principal has one home tenant."""


@tenant_group.command("create")
@click.option("--display-name", required=True, metavar="NAME", help="The tenant's name.")
@click.option("--domain", default=None, metavar="DOMAIN",
              help="Its default domain (default NAME.imagestore.local).")
@click.option("--tenant-id", default=None, metavar="GUID", help="Its id (default: a new GUID).")
@common_options
@click.pass_context
def tenant_create(ctx: click.Context, display_name: str, domain: str | None,
                  tenant_id: str | None) -> None:
    """Create a tenant.

    \b
    Example:
      imagestore ad tenant create --display-name Contoso --query tenantId -o tsv
    """
    with _dir(ctx) as dr:
        emit(ctx, directory.create_tenant(dr, display_name, domain, tenant_id))


@tenant_group.command("list")
@common_options
@click.pass_context
def tenant_list(ctx: click.Context) -> None:
    """List the tenants (az account tenant list)."""
    with _dir(ctx) as dr:
        emit(ctx, [directory.tenant_json(t) for t in dr.tenants()])


@click.group("user")
def user_group() -> None:
    """Users: people, who get tokens from the store owner or are acted as with --as."""


@user_group.command("create")
@click.option("--user-principal-name", "upn", required=True, metavar="UPN",
              help="name@domain, unique in the store.")
@click.option("--display-name", required=True, metavar="NAME", help="The user's name.")
@click.option("--tenant", default=TENANT, show_default=True, metavar="TENANT",
              help="Home tenant (id or domain).")
@common_options
@click.pass_context
def user_create(ctx: click.Context, upn: str, display_name: str, tenant: str) -> None:
    """Create a user (no password: imagestore users sign in with tokens the store owner
    issues, `imagestore token create --assignee UPN`).

    \b
    Example:
      imagestore ad user create --user-principal-name alice@contoso.example --display-name Alice
    """
    with _dir(ctx) as dr:
        emit(ctx, directory.create_user(dr, upn, display_name, tenant))


@user_group.command("show")
@click.option("--id", "ident", required=True, metavar="UPN", help="UPN or object id.")
@common_options
@click.pass_context
def user_show(ctx: click.Context, ident: str) -> None:
    """Show a user."""
    with _dir(ctx) as dr:
        row = dr.user(ident)
        if row is None:
            from ..errors import NotFound

            raise NotFound(f"user '{ident}' not found", target="id")
        emit(ctx, directory.user_json(row))


@user_group.command("list")
@common_options
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """List the users."""
    with _dir(ctx) as dr:
        emit(ctx, [directory.user_json(u) for u in dr.users()])


@click.group("group")
def group_group() -> None:
    """Security groups: members are users, service principals and groups (transitively)."""


@group_group.command("create")
@click.option("--display-name", required=True, metavar="NAME", help="Unique group name.")
@click.option("--mail-nickname", default=None, metavar="NICK", help="Mail nickname.")
@click.option("--tenant", default=TENANT, show_default=True, metavar="TENANT",
              help="Home tenant (id or domain).")
@common_options
@click.pass_context
def group_create(ctx: click.Context, display_name: str, mail_nickname: str | None,
                 tenant: str) -> None:
    """Create a security group.

    \b
    Example:
      imagestore ad group create --display-name builders --mail-nickname builders
    """
    with _dir(ctx) as dr:
        emit(ctx, directory.create_group(dr, display_name, mail_nickname, tenant))


@group_group.command("show")
@click.option("-g", "--group", "group", required=True, metavar="GROUP", help="Name or id.")
@common_options
@click.pass_context
def group_show(ctx: click.Context, group: str) -> None:
    """Show a group."""
    with _dir(ctx) as dr:
        emit(ctx, directory.group_json(directory.group(dr, group)))


@group_group.command("list")
@common_options
@click.pass_context
def group_list(ctx: click.Context) -> None:
    """List the groups."""
    with _dir(ctx) as dr:
        emit(ctx, [directory.group_json(g) for g in dr.groups()])


@group_group.group("member")
def member_group() -> None:
    """Group members."""


def _member_opts(f):  # noqa: ANN001, ANN202
    f = click.option("--member-id", required=True, metavar="PRINCIPAL",
                     help="Object id (or UPN, app id, group name) of the member.")(f)
    return click.option("-g", "--group", "group", required=True, metavar="GROUP",
                        help="Group name or id.")(f)


@member_group.command("add")
@_member_opts
@common_options
@click.pass_context
def member_add(ctx: click.Context, group: str, member_id: str) -> None:
    """Add a member (a user, service principal or group).

    \b
    Example:
      imagestore ad group member add --group builders --member-id alice@contoso.example
    """
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        directory.add_member(dr, home, group, member_id)


@member_group.command("remove")
@_member_opts
@common_options
@click.pass_context
def member_remove(ctx: click.Context, group: str, member_id: str) -> None:
    """Remove a direct member: what it could do through the group stops at once."""
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        directory.remove_member(dr, home, group, member_id)


@member_group.command("list")
@click.option("-g", "--group", "group", required=True, metavar="GROUP", help="Name or id.")
@common_options
@click.pass_context
def member_list(ctx: click.Context, group: str) -> None:
    """List the direct members."""
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        emit(ctx, directory.members(dr, home, group))


@member_group.command("check")
@_member_opts
@common_options
@click.pass_context
def member_check(ctx: click.Context, group: str, member_id: str) -> None:
    """Is the principal a member, directly or through other groups? ({"value": bool})"""
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        emit(ctx, {"value": directory.is_member(dr, home, group, member_id)})


# -- account create / list ------------------------------------------------------------------


def register_account(account_group: click.Group) -> None:
    """Add ``account create`` and ``account list``."""
    account_group.add_command(account_create)
    account_group.add_command(account_list)


@click.command("create")
@click.option("--tenant", required=True, metavar="TENANT", help="Home tenant (id or domain).")
@click.option("--display-name", "-n", "--name", "name", required=True, metavar="NAME",
              help="Subscription name.")
@click.option("--subscription-id", default=None, metavar="GUID",
              help="Its id (default: a new GUID).")
@common_options
@click.pass_context
def account_create(ctx: click.Context, tenant: str, name: str,
                   subscription_id: str | None) -> None:
    """Create a subscription in a tenant (az account create). Its resource groups
    (`imagestore group create --subscription`) hold its resources; the store owner needs no
    role assignment in it, and principals have none until assigned.

    \b
    Example:
      imagestore account create --tenant contoso.imagestore.local --display-name dev
    """
    with _dir(ctx) as dr:
        emit(ctx, directory.create_subscription(dr, name, tenant, subscription_id,
                                                user=local_user()))


@click.command("list")
@common_options
@click.pass_context
def account_list(ctx: click.Context) -> None:
    """List the subscriptions of the directory."""
    with _dir(ctx) as dr:
        emit(ctx, [directory.subscription_json(s, local_user()) for s in dr.subscriptions()])


# -- role --------------------------------------------------------------------------------------


@click.group("role")
def role_group() -> None:
    """Role-based access control: role definitions and assignments (az role)."""


@role_group.group("definition")
def definition_group() -> None:
    """Role definitions: the built-in roles that concern galleries, and custom roles."""


_ROLE_JSON = click.option(
    "--role-definition", "role_definition", required=True, metavar="JSON|@FILE",
    help="The role as az takes it: {Name, Description, Actions, NotActions, DataActions, "
         "NotDataActions, AssignableScopes}; inline JSON, @FILE or a file path.")


@definition_group.command("create")
@_ROLE_JSON
@common_options
@click.pass_context
def definition_create(ctx: click.Context, role_definition: str) -> None:
    """Create a custom role, assignable at or under its AssignableScopes.

    \b
    Example:
      imagestore role definition create --role-definition '{"Name": "Version Reader",
        "Actions": ["Microsoft.Compute/galleries/images/versions/read"],
        "AssignableScopes": ["/subscriptions/00000000-0000-0000-0000-000000000000"]}'
    """
    with _dir(ctx) as dr:
        emit(ctx, custom_roles.create(dr, role_definition))


@definition_group.command("update")
@_ROLE_JSON
@common_options
@click.pass_context
def definition_update(ctx: click.Context, role_definition: str) -> None:
    """Replace a custom role (found by its Id, or by Name: its name or GUID). Access its
    assignments give changes with the next request."""
    with _dir(ctx) as dr:
        emit(ctx, custom_roles.update(dr, role_definition))


@definition_group.command("delete")
@click.option("-n", "--name", required=True, metavar="ROLE", help="Role name or id.")
@common_options
@click.pass_context
def definition_delete(ctx: click.Context, name: str) -> None:
    """Delete a custom role (refused while an assignment uses it)."""
    with _dir(ctx) as dr:
        custom_roles.delete(dr, name)


@definition_group.command("list")
@click.option("-n", "--name", default=None, metavar="ROLE", help="Only this role (name or id).")
@click.option("--custom-role-only", is_flag=True, default=False, help="Only custom roles.")
@common_options
@click.pass_context
def definition_list(ctx: click.Context, name: str | None, custom_role_only: bool) -> None:
    """List role definitions, as az prints them.

    \b
    Example:
      imagestore role definition list --query [].roleName -o tsv
    """
    from ..gallery import ids

    with _dir(ctx) as dr:
        emit(ctx, [r.to_json(r.assignable_scopes[0].split("/")[2] if r.custom
                             else ids.SUBSCRIPTION)
                   for r in roles.list_all(name, dr, custom_only=custom_role_only)])


@role_group.group("assignment")
def assignment_group() -> None:
    """Role assignments: a role for a principal at a scope and everything below it."""


@assignment_group.command("create")
@click.option("--assignee", required=True, metavar="PRINCIPAL",
              help="User (UPN or object id), group or service principal.")
@click.option("--role", required=True, metavar="ROLE", help="Role name or id.")
@click.option("--scope", required=True, metavar="SCOPE",
              help="/subscriptions/S[/resourceGroups/RG[/providers/…/galleries/G[/images/I"
                   "[/versions/V]]]]")
@common_options
@click.pass_context
def assignment_create(ctx: click.Context, assignee: str, role: str, scope: str) -> None:
    """Assign a role.

    \b
    Example:
      imagestore role assignment create --assignee alice@contoso.example --role Reader \\
        --scope $(imagestore sig show -r g1 --query id -o tsv)
    """
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        emit(ctx, assignments.create(dr, home, assignee, role, scope))


@assignment_group.command("list")
@click.option("--assignee", default=None, metavar="PRINCIPAL", help="Only this principal's.")
@click.option("--role", default=None, metavar="ROLE", help="Only this role's.")
@click.option("--scope", default=None, metavar="SCOPE", help="Only at this scope.")
@click.option("--include-inherited", is_flag=True, default=False,
              help="With --scope: also assignments at enclosing scopes.")
@common_options
@click.pass_context
def assignment_list(ctx: click.Context, assignee: str | None, role: str | None,
                    scope: str | None, include_inherited: bool) -> None:
    """List role assignments."""
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        emit(ctx, assignments.list_(dr, home, assignee=assignee, role=role, scope=scope,
                                    include_inherited=include_inherited))


@assignment_group.command("delete")
@click.option("--ids", "ids_", multiple=True, metavar="ID", help="Assignment id(s).")
@click.option("--assignee", default=None, metavar="PRINCIPAL", help="The principal's.")
@click.option("--role", default=None, metavar="ROLE", help="Of this role.")
@click.option("--scope", default=None, metavar="SCOPE", help="At this scope.")
@common_options
@click.pass_context
def assignment_delete(ctx: click.Context, ids_: tuple[str, ...], assignee: str | None,
                      role: str | None, scope: str | None) -> None:
    """Delete role assignments; the access they gave ends with the next request."""
    home = open_home(ctx)
    with directory.open_directory(home) as dr:
        assignments.delete(dr, home, ids=list(ids_), assignee=assignee, role=role, scope=scope)
