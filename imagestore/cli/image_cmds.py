"""`imagestore image …`: managed images (Microsoft.Compute/images, Azure's legacy custom
images), with az's flags."""

from __future__ import annotations

import click

from .common import GroupedOption as Variadic
from .common import common_options, ids_option
from .output import emit
from .sig_cmds import (
    gallery_service,
    given,
    progress_observer,
    rg_filter_option,
    rg_option,
    tags_opt,
    tags_option,
)


@click.group("image")
def image_group() -> None:
    """Managed images: a generalized OS disk and data disks, made from disks or snapshots.

    \b
    Example:
      imagestore image create -n myImage --source vm1-os --os-type Linux
    """


def name_option(f):
    return click.option("-n", "--name", required=True, metavar="NAME", help="Image name.")(f)


@image_group.command("create")
@rg_option
@name_option
@click.option("--source", required=True, metavar="DISK_OR_SNAPSHOT",
              help="OS disk source: a disk or snapshot (name in the resource group, a snapshot "
                   "first, or full ARM id).")
@click.option("--data-disk-sources", cls=Variadic, metavar="DISK_OR_SNAPSHOT...",
              help="Data disk sources (LUN 0, 1, … in order).")
@click.option("--os-type", default=None, metavar="Linux|Windows", help="Required.")
@click.option("--hyper-v-generation", default=None, metavar="V1|V2", help="Default V1.")
@click.option("--os-disk-caching", default=None, metavar="None|ReadOnly|ReadWrite")
@click.option("--data-disk-caching", default=None, metavar="None|ReadOnly|ReadWrite")
@click.option("--storage-sku", default=None, metavar="SKU",
              help="Standard_LRS (default), Premium_LRS, StandardSSD_LRS, …")
@click.option("--zone-resilient", default=None, is_flag=False, flag_value="true",
              metavar="[true|false]")
@click.option("-l", "--location", default=None, metavar="REGION",
              help="Region (default and only choice: the sources' region).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@tags_option
@common_options
@click.pass_context
def image_create(ctx, rg, name, source, data_disk_sources, os_type, hyper_v_generation,
                 os_disk_caching, data_disk_caching, storage_sku, zone_resilient, location,
                 threads, tags) -> None:
    """Create a managed image from a disk or snapshot (and data disks).

    \b
    Example:
      imagestore image create -n myImage --source vm1-os --os-type Linux \\
          --data-disk-sources vm1-data0 --hyper-v-generation V2
    """
    from ..gallery import validate

    zr = bool(validate.boolean("--zone-resilient", zone_resilient)) if zone_resilient else False
    emit(ctx, gallery_service(ctx).managed_images.create(
        rg, name, source, os_type=os_type, data_disk_sources=given(data_disk_sources) or [],
        hyper_v_generation=hyper_v_generation, location=location,
        os_disk_caching=os_disk_caching, data_disk_caching=data_disk_caching,
        storage_sku=storage_sku, zone_resilient=zr, tags=tags_opt(tags),
        observer=progress_observer(ctx), threads=threads))


@image_group.command("show")
@ids_option("managed-image")
@rg_option
@name_option
@common_options
@click.pass_context
def image_show(ctx, rg, name) -> None:
    """Show a managed image.

    \b
    Example:
      imagestore image show -n myImage --query properties.storageProfile.osDisk
    """
    emit(ctx, gallery_service(ctx, create=False).managed_images.show(rg, name))


@image_group.command("list")
@rg_filter_option
@common_options
@click.pass_context
def image_list(ctx, rg) -> None:
    """List managed images.

    \b
    Example:
      imagestore image list -o table
    """
    emit(ctx, gallery_service(ctx, create=False).managed_images.list(rg))


@image_group.command("delete")
@ids_option("managed-image")
@rg_option
@name_option
@common_options
@click.pass_context
def image_delete(ctx, rg, name) -> None:
    """Delete a managed image (its data is freed by `store gc` unless something else uses it).

    \b
    Example:
      imagestore image delete -n myImage
    """
    gallery_service(ctx).managed_images.delete(rg, name)
