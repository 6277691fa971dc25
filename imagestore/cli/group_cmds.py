"""``imagestore group create|show|list|delete|exists``: resource groups, each in one
subscription (az group; :mod:`imagestore.gallery.resource_groups`).

A resource-group name is unique in the store, so ``-n NAME`` alone finds a group wherever it
lives; ``--subscription`` says where a new one goes (default: the local subscription) and,
for the other verbs, must be the group's if given.
"""

from __future__ import annotations

import click

from ..gallery import ids
from .common import GroupedOption as Variadic
from .common import common_options
from .output import emit
from .sig_cmds import gallery_service, tags_opt


def _name_option(f):  # noqa: ANN001, ANN202
    return click.option("-n", "--name", "-g", "--resource-group", "rg", required=True,
                        metavar="NAME", help="The resource group (unique in the store).")(f)


def _sub_option(help_text: str):  # noqa: ANN202
    return click.option("--subscription", "subscription", default=None, metavar="ID",
                        help=help_text)


@click.group("group")
def group_group() -> None:
    """Resource groups: each in one subscription; names are unique in the store (az group)."""


@group_group.command("create")
@_name_option
@click.option("-l", "--location", default=None, metavar="LOCATION",
              help="Its location (default 'local').")
@click.option("--tags", multiple=True, cls=Variadic, metavar="KEY=VALUE...",
              help="Space-separated tags.")
@_sub_option("The subscription to create it in (default: the local subscription).")
@common_options
@click.pass_context
def group_create(ctx: click.Context, rg: str, location: str | None, tags: tuple,
                 subscription: str | None) -> None:
    """Create a resource group, or update its tags (az group create).

    A name taken in another subscription is refused (exit 5).

    \b
    Example:
      imagestore group create -n rg-dev -l local --subscription $S2
    """
    svc = gallery_service(ctx)
    out, _created = svc.groups.create(subscription or ids.SUBSCRIPTION, rg,
                                      location=location, tags=tags_opt(tags))
    emit(ctx, out)


def _where(svc, rg: str, subscription: str | None) -> str:  # noqa: ANN001
    return subscription or svc.repo.subscription_of(rg)


@group_group.command("show")
@_name_option
@_sub_option("The group's subscription (default: wherever the name is).")
@common_options
@click.pass_context
def group_show(ctx: click.Context, rg: str, subscription: str | None) -> None:
    """Show a resource group (az group show)."""
    svc = gallery_service(ctx, create=False)
    emit(ctx, svc.groups.show(_where(svc, rg, subscription), rg))


@group_group.command("exists")
@_name_option
@_sub_option("The subscription (default: wherever the name is).")
@common_options
@click.pass_context
def group_exists(ctx: click.Context, rg: str, subscription: str | None) -> None:
    """Print true or false: does the group exist (az group exists)?"""
    svc = gallery_service(ctx, create=False)
    emit(ctx, svc.groups.exists(_where(svc, rg, subscription), rg))


@group_group.command("list")
@_sub_option("The subscription whose groups to list (default: the local subscription).")
@common_options
@click.pass_context
def group_list(ctx: click.Context, subscription: str | None) -> None:
    """List the resource groups of a subscription (az group list); the local subscription's
    list includes the implicit groups that hold resources."""
    svc = gallery_service(ctx, create=False)
    emit(ctx, svc.groups.list(subscription or ids.SUBSCRIPTION))


@group_group.command("delete")
@_name_option
@_sub_option("The group's subscription (default: wherever the name is).")
@click.option("-y", "--yes", is_flag=True, default=False, help="Do not prompt (az's flag).")
@common_options
@click.pass_context
def group_delete(ctx: click.Context, rg: str, subscription: str | None, yes: bool) -> None:
    """Delete an empty resource group (az group delete). A group that holds resources is
    refused (exit 5): imagestore does not delete them for you."""
    svc = gallery_service(ctx)
    svc.groups.delete(_where(svc, rg, subscription), rg)
