"""`imagestore sig image-version list-soft-deleted|undelete|purge`: the soft-deleted versions
of a gallery with soft delete on (issue 15; the flag itself is `sig create|update
--soft-delete`). The commands call :attr:`GalleryService.soft_delete`."""

from __future__ import annotations

import click

from .common import common_options, ids_option
from .output import emit
from .sig_cmds import gallery_option, gallery_service, image_option, rg_option, version_option
from .sig_version_cmds import image_version_group


@image_version_group.command("list-soft-deleted")
@rg_option
@gallery_option
@image_option
@common_options
@click.pass_context
def image_version_list_soft_deleted(ctx, rg, gallery, image) -> None:
    """List the soft-deleted versions of an image definition (REST: softDeletedArtifactTypes/
    Images/artifacts/{definition}/versions; az has no command for it yet). Each names the
    version (properties.resourceArmId) and when it was deleted, stops being usable
    (consumptionEndTime, +7 days) and is purged (hardDeletionTargetTime, +7 more).

    \b
    Example:
      imagestore sig image-version list-soft-deleted -r myGallery -i myImage1 -o table
    """
    emit(ctx, gallery_service(ctx, create=False).soft_delete.list(rg, gallery, image))


@image_version_group.command("undelete")
@ids_option("version")
@rg_option
@gallery_option
@image_option
@version_option
@click.option("-l", "--location", default=None, metavar="REGION",
              help="The version's home region (default: it); another region is refused.")
@common_options
@click.pass_context
def image_version_undelete(ctx, rg, gallery, image, version, location) -> None:
    """Restore a soft-deleted image version (REST: PUT with properties.restore true): it is
    listed and can be latest again. Exit 5 if it is not soft-deleted, 4 if it is unknown
    or already purged.

    \b
    Example:
      imagestore sig image-version undelete -r myGallery -i myImage1 -e 1.0.1
    """
    svc = gallery_service(ctx)
    svc.soft_delete.restore(rg, gallery, image, version, location=location)
    emit(ctx, svc.show_version(rg, gallery, image, version))


@image_version_group.command("purge")
@ids_option("version")
@rg_option
@gallery_option
@image_option
@version_option
@common_options
@click.pass_context
def image_version_purge(ctx, rg, gallery, image, version) -> None:
    """Hard-delete a soft-deleted image version now (REST: DELETE on its
    softDeletedArtifactTypes path); its data becomes garbage for `store gc`. Exit 5 if it
    is not soft-deleted.

    \b
    Example:
      imagestore sig image-version purge -r myGallery -i myImage1 -e 1.0.1
    """
    gallery_service(ctx).soft_delete.purge(rg, gallery, image, version)
