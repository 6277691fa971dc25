"""`imagestore disk …`: disks created from image versions (Microsoft.Compute/disks)."""

from __future__ import annotations

import click

from ..formats import WRITE_FORMATS
from ..gallery import shared_views
from .common import common_options, ids_option, only_show_errors
from .output import emit
from .sig_cmds import (
    gallery_service,
    progress_observer,
    rg_filter_option,
    rg_option,
    tags_opt,
    tags_option,
)


@click.group("disk")
def disk_group() -> None:
    """Disks created from image versions, snapshots or other disks.

    \b
    Example:
      imagestore disk create -n vm1-os --gallery-image-reference myGallery/myImage1
    """


def name_option(f):
    return click.option("-n", "--name", required=True, metavar="NAME", help="Disk name.")(f)


@disk_group.command("create")
@rg_option
@name_option
@click.option("--gallery-image-reference", "reference", default=None, metavar="ID",
              help="Image version id, or image definition id (= its latest version); full ARM "
                   "id or GALLERY/DEFINITION[/VERSION]; or a shared or community version, "
                   "/SharedGalleries/NAME/Images/I/Versions/V|latest, /CommunityGalleries/….")
@click.option("--source", default=None, metavar="SNAPSHOT_OR_DISK",
              help="Copy a snapshot or another disk (name in the resource group, a snapshot "
                   "first, or full ARM id), as az disk create --source.")
@click.option("--gallery-image-reference-lun", "lun", type=int, default=None, metavar="N",
              help="Data disk LUN (default: the OS disk).")
@click.option("--format", "fmt", default="raw", show_default=True,
              metavar="|".join(WRITE_FORMATS), help="Disk file format.")
@click.option("--path", default=None, metavar="FILE",
              help="Disk file to create (default <store>/disks/NAME.<ext>).")
@click.option("-l", "--location", default=None, metavar="REGION", help="Region (default local).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--linked", is_flag=True,
              help="Create in O(1): a small overlay (qcow2 over a raw parent, or a vhdx "
                   "differencing child) over the version's shared read-only parent kept by "
                   "the store. `disk flatten` makes it independent.")
@tags_option
@common_options
@click.pass_context
def disk_create(ctx, rg, name, reference, source, lun, fmt, path, location, threads,
                linked, tags) -> None:
    """Create a new, independent disk file from an image version, a snapshot or a disk.

    \b
    Example:
      imagestore disk create -n vm1-os --gallery-image-reference myGallery/myImage1 \\
          --format vhdx --path /var/lib/vms/vm1-os.vhdx
      imagestore disk create -n vm1-restore --source vm1-os-snap
      imagestore disk create -n vm2-os --gallery-image-reference myGallery/myImage1 \\
          --format qcow2 --linked
    """
    if (reference is None) == (source is None):
        raise click.UsageError("give --gallery-image-reference or --source (one of them)", ctx)
    viewer = None
    if shared_views.is_shared_reference(reference):  # a consumer's (issue 15)
        from .sig_share_cmds import viewer_of

        viewer = viewer_of(ctx, rg=rg)  # the disk's subscription looks
    emit(ctx, gallery_service(ctx).disks.create(
        rg, name, reference, source=source, lun=lun, fmt=fmt, path=path, location=location,
        tags=tags_opt(tags), observer=progress_observer(ctx), threads=threads, linked=linked,
        viewer=viewer,
    ))


@disk_group.command("flatten")
@ids_option("disk")
@rg_option
@name_option
@common_options
@click.pass_context
def disk_flatten(ctx, rg, name) -> None:
    """Make a linked disk independent of its parent (rewrites its file; stop VMs using it).

    \b
    Example:
      imagestore disk flatten -n vm2-os
    """
    emit(ctx, gallery_service(ctx).disks.flatten(rg, name))


@disk_group.command("show")
@ids_option("disk")
@rg_option
@name_option
@common_options
@click.pass_context
def disk_show(ctx, rg, name) -> None:
    """Show a disk.

    \b
    Example:
      imagestore disk show -n vm1-os --query properties.localStorage.path
    """
    emit(ctx, gallery_service(ctx, create=False).disks.show(rg, name))


@disk_group.command("list")
@rg_filter_option
@common_options
@click.pass_context
def disk_list(ctx, rg) -> None:
    """List disks.

    \b
    Example:
      imagestore disk list -o table
    """
    emit(ctx, gallery_service(ctx, create=False).disks.list(rg))


@disk_group.command("delete")
@ids_option("disk")
@rg_option
@name_option
@click.option("--delete-file", is_flag=True, help="Also remove the disk file.")
@common_options
@click.pass_context
def disk_delete(ctx, rg, name, delete_file) -> None:
    """Delete a disk resource; the file stays unless --delete-file is given.

    \b
    Example:
      imagestore disk delete -n vm1-os --delete-file
    """
    gallery_service(ctx).disks.delete(rg, name, delete_file=delete_file)


# -- export (issue 12): az disk grant-access / revoke-access ---------------------------------


@disk_group.command("grant-access")
@ids_option("disk")
@rg_option
@name_option
@click.option("--duration-in-seconds", "duration", required=True, type=int, metavar="N",
              help="Seconds until the access URL stops working.")
@click.option("--access-level", "access", default="Read", show_default=True,
              type=click.Choice(["Read", "Write"], case_sensitive=False),
              help="Access level (imagestore exports; Write is for uploads, which it lacks).")
@common_options
@click.pass_context
def disk_grant_access(ctx, rg, name, duration, access) -> None:
    """Give a URL (an `accessSAS`) from which the disk can be downloaded as a fixed VHD, with
    no other credential, until --duration-in-seconds pass or `revoke-access`. The URL is
    served by `imagestore serve` for this store (the running server's address; without one,
    http://127.0.0.1:8443, its default). Supports HTTP ranges: curl -r, azure-storage-blob's
    parallel download.

    \b
    Example:
      imagestore disk grant-access -n vm1-os --duration-in-seconds 3600 --query accessSAS -o tsv
    """
    from ..api import endpoint
    from ..identity import sas

    svc = gallery_service(ctx)
    grant = svc.disk_access.grant(rg, name, sas.new_grant_id(), access=access,
                                  duration_in_seconds=duration)
    base = endpoint.current(svc.home.root)
    if base is None:
        base = endpoint.DEFAULT_URL
        if not only_show_errors(ctx):
            click.echo(f"WARNING: no `imagestore serve` runs for this store; the URL works "
                       f"once one serves it at {base}", err=True)
    url = sas.make_url(svc.home.root, base, grant_id=grant.id, disk_id=grant.disk_id,
                       access=grant.access, expires=grant.expires)
    emit(ctx, {"accessSAS": url})


@disk_group.command("revoke-access")
@ids_option("disk")
@rg_option
@name_option
@common_options
@click.pass_context
def disk_revoke_access(ctx, rg, name) -> None:
    """Revoke the disk's access URL at once (`grant-access`); the disk is deletable again.

    \b
    Example:
      imagestore disk revoke-access -n vm1-os
    """
    gallery_service(ctx).disk_access.revoke(rg, name)
