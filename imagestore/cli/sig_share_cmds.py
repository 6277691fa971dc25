"""Sharing on the CLI (issue 15), with az's names: ``sig share add|remove|reset|enable-community``
(the publisher), ``sig list-shared``/``show-shared`` and ``sig image-definition|image-version
list-shared|show-shared`` (consumers of a direct share), ``sig show-community`` and
``sig image-definition|image-version list-community|show-community`` (anyone).

Under ``--as P`` a consumer command sees what P would see through the REST API: the local
subscription as the request's subscription, P's home tenant as its tenant; sharing needs
``Microsoft.Compute/galleries/share/action`` on the gallery, the shared views
``…/locations/sharedGalleries…/read`` on the subscription, community views nothing.
"""

from __future__ import annotations

import click

from ..errors import InvalidArgument
from ..gallery import ids, sharing
from ..gallery.directory_repository import DirectoryRepository
from ..gallery.shared_views import COMMUNITY, SHARED, ConsumerViews, Viewer
from ..identity import TENANT, directory
from . import acting
from .common import GroupedOption as Variadic
from .common import acting_as, common_options, open_home
from .output import emit
from .sig_cmds import (
    gallery_option,
    gallery_service,
    image_definition_group,
    image_option,
    rg_option,
    sig_group,
    version_option,
)
from .sig_version_cmds import image_version_group

_C = "Microsoft.Compute"


def sharing_profile(permissions: str | None, publisher_uri: str | None,
                    publisher_email: str | None, eula: str | None,
                    prefix: str | None) -> dict | None:
    """``sig create``'s sharing flags -> the request's ``sharingProfile`` (az's checks)."""
    community = (publisher_uri, publisher_email, eula, prefix)
    if permissions is None:
        if any(community):
            raise InvalidArgument("--permissions: the community flags need --permissions "
                                  "Community", target="--permissions")
        return None
    if (permissions.lower() == "community") and not all(community):
        raise InvalidArgument(sharing.COMMUNITY_MISSING)
    out: dict = {"permissions": permissions}
    if permissions.lower() == "community":
        out["communityGalleryInfo"] = {"publisherUri": publisher_uri,
                                       "publisherContact": publisher_email, "eula": eula,
                                       "publicNamePrefix": prefix}
    elif any(community):
        raise InvalidArgument("--permissions: --publisher-uri, --publisher-email, --eula and "
                              "--public-name-prefix are for --permissions Community",
                              target="--permissions")
    return out


def _ids(values: tuple | None) -> list[str]:
    return [t for v in values or () for t in str(v).replace(",", " ").split()]


# -- the publisher: sig share ---------------------------------------------------------------


@sig_group.group("share")
def share_group() -> None:
    """Share a gallery created with --permissions Groups or Community (az sig share).

    \b
    Example:
      imagestore sig share add -r shared --subscription-ids SUB1 SUB2 --tenant-ids T1
      imagestore sig share enable-community -r community
      imagestore sig share reset -r shared
    """


def _share(ctx: click.Context, rg: str, gallery: str, op: str, subs: tuple | None = None,
           tenants: tuple | None = None) -> None:
    groups = []
    if _ids(subs):
        groups.append({"type": sharing.SUBSCRIPTIONS, "ids": _ids(subs)})
    if _ids(tenants):
        groups.append({"type": sharing.TENANTS, "ids": _ids(tenants)})
    if op in ("Add", "Remove") and not groups:
        raise InvalidArgument("At least one of subscription ids or tenant ids must be provided.")
    body: dict = {"operationType": op}
    if groups:
        body["groups"] = groups
    emit(ctx, gallery_service(ctx).galleries.share(rg, gallery, body))


def _ids_options(f):
    f = click.option("--tenant-ids", cls=Variadic, metavar="TENANT...",
                     help="Tenant ids (space-separated).")(f)
    return click.option("--subscription-ids", cls=Variadic, metavar="SUBSCRIPTION...",
                        help="Subscription ids (space-separated).")(f)


@share_group.command("add")
@rg_option
@gallery_option
@_ids_options
@common_options
@click.pass_context
def share_add(ctx, rg, gallery, subscription_ids, tenant_ids) -> None:
    """Share with subscriptions and tenants (at most 30 and 5).

    \b
    Example:
      imagestore sig share add -r shared --subscription-ids SUB1 --tenant-ids T1
    """
    _share(ctx, rg, gallery, "Add", subscription_ids, tenant_ids)


@share_group.command("remove")
@rg_option
@gallery_option
@_ids_options
@common_options
@click.pass_context
def share_remove(ctx, rg, gallery, subscription_ids, tenant_ids) -> None:
    """Stop sharing with subscriptions and tenants (at once).

    \b
    Example:
      imagestore sig share remove -r shared --subscription-ids SUB1
    """
    _share(ctx, rg, gallery, "Remove", subscription_ids, tenant_ids)


@share_group.command("reset")
@rg_option
@gallery_option
@common_options
@click.pass_context
def share_reset(ctx, rg, gallery) -> None:
    """Clear the sharing profile: the gallery is Private from now on.

    \b
    Example:
      imagestore sig share reset -r shared
    """
    _share(ctx, rg, gallery, "Reset")


@share_group.command("enable-community")
@rg_option
@gallery_option
@common_options
@click.pass_context
def share_enable_community(ctx, rg, gallery) -> None:
    """Make a Community gallery public (its public name is PREFIX-GUID).

    \b
    Example:
      imagestore sig share enable-community -r community
    """
    _share(ctx, rg, gallery, "EnableCommunity")


# -- consumers ------------------------------------------------------------------------------


def viewer_of(ctx: click.Context, *, subscription: str | None = None,
              rg: str | None = None) -> Viewer:
    """Who looks: ``--subscription`` (checked to exist), else resource group ``rg``'s
    subscription (a disk or VM is made there), else the local one; and the tenant of the
    ``--as`` principal (its home tenant; the store owner's: the local tenant)."""
    from ..gallery import resource_groups

    repo = gallery_service(ctx, create=False).repo
    if subscription is not None:
        sub = resource_groups.require_subscription(repo, subscription)
    else:
        sub = repo.subscription_of(rg) if rg else ids.SUBSCRIPTION
    row = DirectoryRepository(repo.con).subscription(sub)
    home_tenant = row[2] if row else TENANT
    who = acting_as(ctx)
    if who is None:
        return Viewer(sub, TENANT, home_tenant)
    home = open_home(ctx, create=False)
    with directory.open_directory(home) as dr:
        return Viewer(sub, directory.resolve(dr, home, who).tenant_id, home_tenant)


def _views(ctx: click.Context) -> ConsumerViews:
    return ConsumerViews(gallery_service(ctx, create=False).repo)


def _subscription(f):
    return click.option("--subscription", "subscription", default=None, metavar="ID",
                        help="The subscription to look through (default: the local one).")(f)


def _location(f):
    return click.option("-l", "--location", required=True, metavar="REGION",
                        help="The region the gallery is seen in.")(f)


def _unique(f):
    return click.option("--gallery-unique-name", "name", required=True, metavar="NAME",
                        help="The shared gallery's unique name (SUBSCRIPTION-GALLERY).")(f)


def _public(f):
    return click.option("--public-gallery-name", "name", required=True, metavar="NAME",
                        help="The community gallery's public name (PREFIX-GUID).")(f)


def _shared_to(f):
    return click.option("--shared-to", default=None, metavar="tenant",
                        help="List what is shared with your tenant instead of your "
                             "subscription.")(f)


def _tenant_flag(value: str | None) -> bool:
    if value is not None and value.lower() != "tenant":
        raise InvalidArgument(f"--shared-to: '{value}' is not a valid value (tenant)",
                              target="--shared-to")
    return value is not None


@sig_group.command("list-shared")
@_location
@_shared_to
@_subscription
@common_options
@click.pass_context
def list_shared(ctx, location, shared_to, subscription) -> None:
    """List the galleries shared with your subscription (or tenant) in a region.

    \b
    Example:
      imagestore sig list-shared -l local --shared-to tenant
    """
    emit(ctx, _views(ctx).list_shared(viewer_of(ctx, subscription=subscription), location,
                                      shared_to_tenant=_tenant_flag(shared_to)))


@sig_group.command("show-shared")
@_unique
@_location
@_subscription
@common_options
@click.pass_context
def show_shared(ctx, name, location, subscription) -> None:
    """Show a gallery shared with you.

    \b
    Example:
      imagestore sig show-shared -l local --gallery-unique-name SUB-GALLERY
    """
    emit(ctx, _views(ctx).gallery(SHARED, location, name,
                                  viewer_of(ctx, subscription=subscription)))


@sig_group.command("list-community")
@_location
@_subscription
@common_options
@click.pass_context
def list_community(ctx, location, subscription) -> None:
    """List the community galleries of a region (anyone may).

    \b
    Example:
      imagestore sig list-community -l local
    """
    viewer_of(ctx, subscription=subscription)  # the subscription looked through exists
    emit(ctx, _views(ctx).list_community(location))


@sig_group.command("show-community")
@_public
@_location
@_subscription
@common_options
@click.pass_context
def show_community(ctx, name, location, subscription) -> None:
    """Show a community gallery.

    \b
    Example:
      imagestore sig show-community -l local --public-gallery-name PREFIX-GUID
    """
    viewer_of(ctx, subscription=subscription)  # the subscription looked through exists
    emit(ctx, _views(ctx).gallery(COMMUNITY, location, name))


def _consumer_commands(group: click.Group, level: str) -> None:
    for kind, suffix, name_opt in ((SHARED, "shared", _unique), (COMMUNITY, "community", _public)):
        def make(kind=kind):  # noqa: ANN202 - binds the loop's values
            def who(ctx):  # noqa: ANN001, ANN202
                v = viewer_of(ctx, subscription=ctx.params.get("subscription"))  # it exists
                return v if kind == SHARED else None

            if level == "image":
                def _list(ctx, name, location, **_):  # noqa: ANN001, ANN202
                    emit(ctx, _views(ctx).images(kind, location, name, who(ctx)))

                def _show(ctx, name, location, image, **_):  # noqa: ANN001, ANN202
                    emit(ctx, _views(ctx).image(kind, location, name, image, who(ctx)))
            else:
                def _list(ctx, name, location, image, **_):  # noqa: ANN001, ANN202
                    emit(ctx, _views(ctx).versions(kind, location, name, image, who(ctx)))

                def _show(ctx, name, location, image, version, **_):  # noqa: ANN001, ANN202
                    emit(ctx, _views(ctx).version(kind, location, name, image, version,
                                                  who(ctx)))
            return _list, _show

        lister, shower = make()
        what = "image definitions" if level == "image" else "image versions"
        lst = click.pass_context(lister)
        shw = click.pass_context(shower)
        if level == "version":
            lst = image_option(lst)
            shw = version_option(image_option(shw))
        else:
            shw = image_option(shw)
        lst = common_options(_subscription(_location(name_opt(lst))))
        shw = common_options(_subscription(_location(name_opt(shw))))
        flag = "--gallery-unique-name SUB-GALLERY" if kind == SHARED else \
            "--public-gallery-name PREFIX-GUID"
        base = f"imagestore sig {'image-definition' if level == 'image' else 'image-version'}"
        more = " -i IMAGE" if level == "version" else ""
        group.command(f"list-{suffix}", help=(
            f"List the {what} of a {suffix} gallery.\n\n\b\nExample:\n  {base} "
            f"list-{suffix} -l local {flag}{more}"))(lst)
        more = " -i IMAGE" + (" -e 1.0.0" if level == "version" else "")
        group.command(f"show-{suffix}", help=(
            f"Show one of the {what} of a {suffix} gallery.\n\n\b\nExample:\n  {base} "
            f"show-{suffix} -l local {flag}{more}"))(shw)


_consumer_commands(image_definition_group, "image")
_consumer_commands(image_version_group, "version")


# -- what --as checks -----------------------------------------------------------------------


def _g(p: dict) -> str:
    # ``_subscription``: the resource group's, looked up by acting._check
    return ids.gallery_id(p["_subscription"], p.get("rg") or ids.DEFAULT_RG, p["gallery"])


def _sub(p: dict) -> str:
    return ids.subscription_id(p["_subscription"])


_SHARE = f"{_C}/galleries/share/action"
_READ = f"{_C}/locations/sharedGalleries"
acting.ACTIONS.update({
    "sig share add": (_SHARE, _g),
    "sig share remove": (_SHARE, _g),
    "sig share reset": (_SHARE, _g),
    "sig share enable-community": (_SHARE, _g),
    "sig list-shared": (f"{_READ}/read", _sub),
    "sig show-shared": (f"{_READ}/read", _sub),
    "sig image-definition list-shared": (f"{_READ}/images/read", _sub),
    "sig image-definition show-shared": (f"{_READ}/images/read", _sub),
    "sig image-version list-shared": (f"{_READ}/images/versions/read", _sub),
    "sig image-version show-shared": (f"{_READ}/images/versions/read", _sub),
})
# community views: every signed-in principal (no RBAC action)
for _cmd in ("sig list-community", "sig show-community", "sig image-definition list-community",
             "sig image-definition show-community", "sig image-version list-community",
             "sig image-version show-community"):
    acting.ACTIONS[_cmd] = (None, _sub)
