"""`imagestore sig …`: galleries and image definitions, with az's flag names, and the options
and helpers the other `sig` modules share (image versions: `sig_version_cmds.py`; sharing:
`sig_share_cmds.py`; soft delete: `sig_soft_delete_cmds.py`).

The commands are thin: they parse flags and call :class:`imagestore.gallery.GalleryService`.
"""

from __future__ import annotations

import click

from ..errors import InvalidArgument
from ..gallery import GalleryService, soft_delete, validate
from ..gallery.ids import DEFAULT_RG
from ..worker import open_gallery
from . import acting
from .common import GroupedOption as Variadic  # az's one-or-more values: --tags a=b c=d
from .common import common_options, generic_update_options, ids_option, open_home
from .output import emit
from .progress import GalleryProgress, gallery_progress
from .targets import remember_command


def given(values: tuple | list | None) -> list | None:
    """A Variadic option's values, or None when the option was not used."""
    return list(values) if values else None


def with_encryption(regions: list | None, specs: list | None,
                    location: str | None) -> list | None:
    """``--target-regions`` with az's ``--target-region-encryption`` (one
    ``OS_DES[,LUN,DATA_DES]...`` per region, ``null`` for none) as the REST body's
    ``encryption``, so the service refuses it as it refuses the REST field."""
    flag = "--target-region-encryption"
    if not specs:
        return regions
    names = [t for r in regions or [location or "local"] for t in str(r).split()]
    tokens = [t for s in specs for t in str(s).split()]
    if len(tokens) > len(names):
        raise InvalidArgument(f"{flag}: {len(tokens)} values for {len(names)} target "
                              f"region(s); give one per region", target="target_region_encryption")
    out: list = []
    for i, name in enumerate(names):
        parts = tokens[i].split(",") if i < len(tokens) else ["null"]
        if len(parts) % 2 == 0 or not all(p.isdigit() for p in parts[1::2]):
            raise InvalidArgument(f"{flag}: '{tokens[i]}' is not OS_DES[,LUN,DATA_DES]...",
                                  target="target_region_encryption")
        enc: dict = {}
        if parts[0].lower() != "null":
            enc["osDiskImage"] = {"diskEncryptionSetId": parts[0]}
        data = [{"lun": int(lun), "diskEncryptionSetId": des}
                for lun, des in zip(parts[1::2], parts[2::2], strict=True)
                if des.lower() != "null"]
        if data:
            enc["dataDiskImages"] = data
        tr = validate.parse_target_regions([name])[0]
        out.append({**tr, "encryption": enc} if enc else name)
    return out if any(isinstance(x, dict) for x in out) else regions


def int_list(field: str, values: tuple | list | None) -> list[int]:
    out = []
    for v in values or ():
        for tok in str(v).replace(",", " ").split():
            try:
                out.append(int(tok))
            except ValueError:
                raise InvalidArgument(f"{field}: '{tok}' is not an integer") from None
    return out


def tags_opt(values: tuple | None) -> dict | None:
    return validate.tags(given(values))


def gallery_service(ctx: click.Context, *, create: bool = True) -> GalleryService:
    """The store's gallery for this command (opened once; queued work runs through the
    worker). ``create=False`` for read-only commands: a missing store is an error."""
    remember_command(ctx)  # errors name this command's flags (see .targets)
    root = ctx.find_root()
    svc = root.meta.get("imagestore.gallery")
    if svc is None:
        svc = open_gallery(open_home(ctx, create=create))
        root.meta["imagestore.gallery"] = svc
        root.call_on_close(svc.close)
    return svc


def progress_observer(ctx: click.Context) -> GalleryProgress:
    """Progress bars for the gallery's progress events (on a terminal only)."""
    return gallery_progress(ctx)


def rg_option(f):
    return click.option("-g", "--resource-group", "rg", default=DEFAULT_RG, show_default=True,
                        metavar="RG",
                        help="Resource group (optional in imagestore, unlike az).")(f)


def rg_filter_option(f):
    return click.option("-g", "--resource-group", "rg", default=None, metavar="RG",
                        help="Resource group (default: all).")(f)


def gallery_option(f):
    return click.option("-r", "--gallery-name", "gallery", required=True, metavar="GALLERY",
                        help="Gallery name.")(f)


def image_option(f):
    return click.option("-i", "--gallery-image-definition", "image", required=True,
                        metavar="DEFINITION", help="Image definition name.")(f)


def version_option(f):
    return click.option("-e", "--gallery-image-version", "version", required=True,
                        metavar="MAJOR.MINOR.PATCH", help="Image version name.")(f)


def tags_option(f):
    return click.option("--tags", cls=Variadic, metavar="KEY=VALUE...",
                        help="Space-separated tags.")(f)


def three_state(name: str, help: str):
    """az's three-state flag: ``--flag`` alone means true; ``--flag true|false`` also works."""
    return click.option(name, default=None, is_flag=False, flag_value="true",
                        metavar="[true|false]", help=help)


def flag_value(field: str, value: str | None) -> bool:
    return bool(validate.boolean(field, value)) if value is not None else False


def no_wait_option(f):
    return click.option("--no-wait", is_flag=True,
                        help="Return at once (prints nothing, as az); the capture and the "
                             "replication run in the background worker. Follow with `sig "
                             "image-version wait` or `show --expand ReplicationStatus`.")(f)


# -- sig (galleries) ------------------------------------------------------------------------


@click.group("sig")
def sig_group() -> None:
    """Galleries, image definitions and image versions (az sig).

    \b
    Example:
      imagestore sig create -r myGallery
      imagestore sig list -o table
    """


@sig_group.command("create")
@rg_option
@gallery_option
@click.option("-l", "--location", default=None, metavar="REGION", help="Region (default local).")
@click.option("--description", default=None)
@click.option("--permissions", default=None, metavar="Private|Groups|Community",
              help="Sharing type, set only here (default Private).")
@click.option("--publisher-uri", default=None, help="Community: the publisher's URI.")
@click.option("--publisher-email", default=None, help="Community: the publisher's e-mail.")
@click.option("--eula", default=None, help="Community: the end-user license agreement.")
@click.option("--public-name-prefix", default=None,
              help="Community: the prefix of the gallery's public name.")
@tags_option
@three_state("--soft-delete", "Soft delete of image versions (properties.softDeletePolicy): "
             "a deleted version is kept 7 days, restorable. Enabling needs Owner or Compute "
             "Gallery Sharing Admin (galleries/share/action) under --as.")
@common_options
@click.pass_context
def sig_create(ctx, rg, gallery, location, description, permissions, publisher_uri,
               publisher_email, eula, public_name_prefix, tags, soft_delete) -> None:
    """Create a gallery (--permissions Groups: direct shared; Community: with all four
    community flags).

    \b
    Example:
      imagestore sig create -r myGallery --description "Team images"
      imagestore sig create -r shared --permissions Groups
      imagestore sig create -r myGallery --soft-delete true
    """
    from .sig_share_cmds import sharing_profile

    svc = gallery_service(ctx)
    emit(ctx, svc.create_gallery(rg, gallery, location=location, description=description,
                                 tags=tags_opt(tags), sharing_profile=sharing_profile(
                                     permissions, publisher_uri, publisher_email, eula,
                                     public_name_prefix),
                                 soft_delete_enabled=soft_delete,
                                 policy_guard=_policy_guard(ctx, rg, gallery)))


def _policy_guard(ctx: click.Context, rg: str, gallery: str):
    """Under --as: the RBAC check enabling or disabling soft delete needs."""
    return acting.guard(ctx, soft_delete.POLICY_ACTION, {"rg": rg, "gallery": gallery})


@sig_group.command("show")
@ids_option("gallery")
@rg_option
@gallery_option
@three_state("--sharing-groups", "Also show sharingProfile.groups ($select=Permissions).")
@common_options
@click.pass_context
def sig_show(ctx, rg, gallery, sharing_groups) -> None:
    """Show a gallery.

    \b
    Example:
      imagestore sig show -r myGallery
      imagestore sig show -r shared --sharing-groups
    """
    kw = {"sharing_groups": True} if flag_value("--sharing-groups", sharing_groups) else {}
    emit(ctx, gallery_service(ctx, create=False).show_gallery(rg, gallery, **kw))


@sig_group.command("list")
@rg_filter_option
@common_options
@click.pass_context
def sig_list(ctx, rg) -> None:
    """List galleries.

    \b
    Example:
      imagestore sig list -o table
    """
    emit(ctx, gallery_service(ctx, create=False).list_galleries(rg))


@sig_group.command("update")
@ids_option("gallery")
@rg_option
@gallery_option
@click.option("--description", default=None)
@tags_option
@three_state("--soft-delete", "Turn soft delete of image versions on or off (needs "
             "galleries/share/action under --as). Turned off, versions already soft-deleted "
             "stay restorable until their retention ends.")
@generic_update_options
@common_options
@click.pass_context
def sig_update(ctx, rg, gallery, description, tags, soft_delete, sets) -> None:
    """Update a gallery. Only the description, tags and soft delete may change.

    \b
    Example:
      imagestore sig update -r myGallery --set description="Team images" tags.team=infra
      imagestore sig update -r myGallery --soft-delete true
    """
    emit(ctx, gallery_service(ctx).update_gallery(
        rg, gallery, description=description, tags=tags_opt(tags), sets=sets or (),
        soft_delete_enabled=soft_delete, policy_guard=_policy_guard(ctx, rg, gallery)))


@sig_group.command("delete")
@ids_option("gallery")
@rg_option
@gallery_option
@common_options
@click.pass_context
def sig_delete(ctx, rg, gallery) -> None:
    """Delete an empty gallery (refused while it has image definitions).

    \b
    Example:
      imagestore sig delete -r myGallery
    """
    gallery_service(ctx).delete_gallery(rg, gallery)


# -- sig image-definition ----------------------------------------------------------------------


@sig_group.group("image-definition")
def image_definition_group() -> None:
    """Image definitions: publisher/offer/sku, OS type and state, features, recommendations.

    \b
    Example:
      imagestore sig image-definition create -r myGallery -i myImage1 \\
          -p Contoso -f Finance -s Backend --os-type Linux
    """


@image_definition_group.command("create")
@rg_option
@gallery_option
@image_option
@click.option("-p", "--publisher", required=True)
@click.option("-f", "--offer", required=True)
@click.option("-s", "--sku", required=True)
@click.option("--os-type", required=True, metavar="Linux|Windows")
@click.option("--os-state", default=None, metavar="Generalized|Specialized",
              help="Default Generalized.")
@click.option("--hyper-v-generation", default=None, metavar="V1|V2", help="Default V1.")
@click.option("--architecture", default=None, metavar="x64|Arm64", help="Default x64.")
@click.option("--features", cls=Variadic, metavar="NAME=VALUE...",
              help='e.g. "SecurityType=TrustedLaunch IsAcceleratedNetworkSupported=true"')
@click.option("--description", default=None)
@click.option("--eula", default=None)
@click.option("--privacy-statement-uri", default=None)
@click.option("--release-note-uri", default=None)
@click.option("--end-of-life-date", default=None, metavar="DATE")
@click.option("--minimum-cpu-core", type=int, default=None)
@click.option("--maximum-cpu-core", type=int, default=None)
@click.option("--minimum-memory", type=int, default=None)
@click.option("--maximum-memory", type=int, default=None)
@click.option("--disallowed-disk-types", cls=Variadic, metavar="TYPE...")
@click.option("--plan-publisher", default=None)
@click.option("--plan-name", default=None)
@click.option("--plan-product", default=None)
@click.option("-l", "--location", default=None, metavar="REGION",
              help="Region (default: the gallery's).")
@tags_option
@common_options
@click.pass_context
def image_definition_create(ctx, rg, gallery, image, publisher, offer, sku, os_type, os_state,
                            hyper_v_generation, architecture, features, description, eula,
                            privacy_statement_uri, release_note_uri, end_of_life_date,
                            minimum_cpu_core, maximum_cpu_core, minimum_memory, maximum_memory,
                            disallowed_disk_types, plan_publisher, plan_name, plan_product,
                            location, tags) -> None:
    """Create an image definition.

    \b
    Example:
      imagestore sig image-definition create -r myGallery -i myImage1 \\
          -p Contoso -f Finance -s Backend --os-type Linux --hyper-v-generation V2 \\
          --features "SecurityType=TrustedLaunch IsAcceleratedNetworkSupported=true"
    """
    emit(ctx, gallery_service(ctx).create_image(
        rg, gallery, image, publisher=publisher, offer=offer, sku=sku, os_type=os_type,
        os_state=os_state, hyper_v_generation=hyper_v_generation, architecture=architecture,
        features=given(features), description=description, eula=eula,
        privacy_statement_uri=privacy_statement_uri, release_note_uri=release_note_uri,
        end_of_life_date=end_of_life_date, minimum_cpu_core=minimum_cpu_core,
        maximum_cpu_core=maximum_cpu_core, minimum_memory=minimum_memory,
        maximum_memory=maximum_memory, disallowed_disk_types=given(disallowed_disk_types),
        plan_publisher=plan_publisher, plan_name=plan_name, plan_product=plan_product,
        location=location, tags=tags_opt(tags),
    ))


@image_definition_group.command("show")
@ids_option("image")
@rg_option
@gallery_option
@image_option
@common_options
@click.pass_context
def image_definition_show(ctx, rg, gallery, image) -> None:
    """Show an image definition.

    \b
    Example:
      imagestore sig image-definition show -r myGallery -i myImage1
    """
    emit(ctx, gallery_service(ctx, create=False).show_image(rg, gallery, image))


@image_definition_group.command("list")
@rg_option
@gallery_option
@common_options
@click.pass_context
def image_definition_list(ctx, rg, gallery) -> None:
    """List the image definitions of a gallery.

    \b
    Example:
      imagestore sig image-definition list -r myGallery -o table
    """
    emit(ctx, gallery_service(ctx, create=False).list_images(rg, gallery))


@image_definition_group.command("update")
@ids_option("image")
@rg_option
@gallery_option
@image_option
@click.option("--description", default=None)
@click.option("--end-of-life-date", default=None, metavar="DATE")
@click.option("--release-note-uri", default=None)
@click.option("--minimum-cpu-core", type=int, default=None)
@click.option("--maximum-cpu-core", type=int, default=None)
@click.option("--minimum-memory", type=int, default=None)
@click.option("--maximum-memory", type=int, default=None)
@tags_option
@generic_update_options
@common_options
@click.pass_context
def image_definition_update(ctx, rg, gallery, image, description, end_of_life_date,
                            release_note_uri, minimum_cpu_core, maximum_cpu_core, minimum_memory,
                            maximum_memory, tags, sets) -> None:
    """Update an image definition. Only recommended vCPU/memory, description, end-of-life
    date and release notes (and tags) may change.

    \b
    Example:
      imagestore sig image-definition update -r myGallery -i myImage1 \\
          --set recommended.vCPUs.max=16 --end-of-life-date 2030-12-31
    """
    emit(ctx, gallery_service(ctx).update_image(
        rg, gallery, image, description=description, end_of_life_date=end_of_life_date,
        release_note_uri=release_note_uri, minimum_cpu_core=minimum_cpu_core,
        maximum_cpu_core=maximum_cpu_core, minimum_memory=minimum_memory,
        maximum_memory=maximum_memory, tags=tags_opt(tags), sets=sets or (),
    ))


@image_definition_group.command("delete")
@ids_option("image")
@rg_option
@gallery_option
@image_option
@common_options
@click.pass_context
def image_definition_delete(ctx, rg, gallery, image) -> None:
    """Delete an image definition (refused while it has versions).

    \b
    Example:
      imagestore sig image-definition delete -r myGallery -i myImage1
    """
    gallery_service(ctx).delete_image(rg, gallery, image)
