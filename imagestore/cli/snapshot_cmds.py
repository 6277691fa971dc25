"""`imagestore snapshot …`: snapshots of disks (Microsoft.Compute/snapshots), az's flags."""

from __future__ import annotations

import click

from .common import common_options, ids_option
from .output import emit
from .sig_cmds import (
    gallery_service,
    progress_observer,
    rg_filter_option,
    rg_option,
    tags_opt,
    tags_option,
)


@click.group("snapshot")
def snapshot_group() -> None:
    """Snapshots: point-in-time copies of disks, kept (deduplicated) in the store.

    \b
    Example:
      imagestore snapshot create -n vm1-os-snap --source vm1-os
      imagestore snapshot create -n imported --source file:///srv/images/base.vhdx \\
          --os-type Linux --hyper-v-generation V2
    """


def name_option(f):
    return click.option("-n", "--name", required=True, metavar="NAME", help="Snapshot name.")(f)


@snapshot_group.command("create")
@rg_option
@name_option
@click.option("--source", required=True, metavar="DISK_OR_SNAPSHOT_OR_FILE_URI",
              help="The disk (or snapshot) to copy: a name in the resource group (a snapshot "
                   "first, then a disk, as az) or a full ARM id; or a disk image file to "
                   "import (file:// URI; raw, VHD, VHDX, qcow2).")
@click.option("--os-type", default=None, metavar="Linux|Windows",
              help="The OS of the disk (default: what the source disk says).")
@click.option("--hyper-v-generation", default=None, metavar="V1|V2",
              help="The Hyper-V generation (default: what the source disk says).")
@click.option("--incremental", default=None, is_flag=False, flag_value="true",
              metavar="[true|false]", help="Mark the snapshot incremental (the store keeps "
                                            "only changed chunks either way).")
@click.option("--sku", default=None, metavar="Standard_LRS|Premium_LRS|Standard_ZRS")
@click.option("-l", "--location", default=None, metavar="REGION",
              help="Region (default and only choice: the source's region).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@tags_option
@common_options
@click.pass_context
def snapshot_create(ctx, rg, name, source, os_type, hyper_v_generation, incremental, sku,
                    location, threads, tags) -> None:
    """Snapshot a disk: capture its file's bytes as they are now.

    \b
    Example:
      imagestore snapshot create -n vm1-os-snap --source vm1-os
      imagestore snapshot create -n imported --source file:///srv/images/base.vhdx \\
          --os-type Linux --hyper-v-generation V2
      imagestore snapshot create -n s2 --source /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/Microsoft.Compute/disks/vm1-os --incremental
    """
    from ..gallery import validate

    inc = bool(validate.boolean("--incremental", incremental)) if incremental else False
    emit(ctx, gallery_service(ctx).snapshots.create(
        rg, name, source, incremental=inc, location=location, sku=sku, tags=tags_opt(tags),
        os_type=os_type, hyper_v_generation=hyper_v_generation,
        observer=progress_observer(ctx), threads=threads))


@snapshot_group.command("show")
@ids_option("snapshot")
@rg_option
@name_option
@common_options
@click.pass_context
def snapshot_show(ctx, rg, name) -> None:
    """Show a snapshot.

    \b
    Example:
      imagestore snapshot show -n vm1-os-snap --query properties.diskSizeGB
    """
    emit(ctx, gallery_service(ctx, create=False).snapshots.show(rg, name))


@snapshot_group.command("list")
@rg_filter_option
@common_options
@click.pass_context
def snapshot_list(ctx, rg) -> None:
    """List snapshots.

    \b
    Example:
      imagestore snapshot list -o table
    """
    emit(ctx, gallery_service(ctx, create=False).snapshots.list(rg))


@snapshot_group.command("delete")
@ids_option("snapshot")
@rg_option
@name_option
@common_options
@click.pass_context
def snapshot_delete(ctx, rg, name) -> None:
    """Delete a snapshot (its data is freed by `store gc` unless something else uses it).

    \b
    Example:
      imagestore snapshot delete -n vm1-os-snap
    """
    gallery_service(ctx).snapshots.delete(rg, name)
