"""`imagestore sig image-version …`: capture (create), show, list, update, delete and wait,
with az's flag names. Thin: the commands parse flags and call
:class:`imagestore.gallery.GalleryService`."""

from __future__ import annotations

import click

from ..formats import SOURCE_FORMATS
from .common import GroupedOption as Variadic  # az's one-or-more values: --tags a=b c=d
from .common import common_options, generic_update_options, ids_option
from .output import emit
from .sig_cmds import (
    flag_value,
    gallery_option,
    gallery_service,
    given,
    image_option,
    int_list,
    no_wait_option,
    progress_observer,
    rg_option,
    sig_group,
    tags_opt,
    tags_option,
    three_state,
    version_option,
    with_encryption,
)

# -- sig image-version -------------------------------------------------------------------------


@sig_group.group("image-version")
def image_version_group() -> None:
    """Image versions: capture disks from VHD/VHDX/raw files, replicate, delete.

    \b
    Example:
      imagestore sig image-version create -r myGallery -i myImage1 -e 1.0.0 --os-vhd-uri os.vhdx
    """


@image_version_group.command("create")
@rg_option
@gallery_option
@image_option
@version_option
@click.option("--os-vhd-uri", default=None, metavar="PATH_OR_URI",
              help="OS disk source: a raw, VHD or VHDX file (path or file:// URI), or a page "
                   "or block blob (https://ACCOUNT.blob.core.windows.net/CONTAINER/disk.vhd; "
                   "credentials: a SAS in the URL or AZURE_STORAGE_* variables).")
@click.option("--os-vhd-storage-account", default=None, metavar="ACCOUNT",
              help="The storage account of the blob sources (name, endpoint or resource id); "
                   "checked against their URLs.")
@click.option("--data-vhds-uris", cls=Variadic, metavar="PATH_OR_URI...",
              help="Data disk sources.")
@click.option("--data-vhds-luns", cls=Variadic, metavar="LUN...",
              help="LUNs of the data disks, in the order of --data-vhds-uris (default 0, 1, …).")
@click.option("--virtual-machine", "source_vm", default=None, metavar="VM_ID_OR_NAME",
              help="Capture a stopped VM's OS and data disks (imagestore vm).")
@click.option("--image-version", "source_version", default=None, metavar="VERSION_ID",
              help="Copy an existing image version (full id or GALLERY/DEFINITION/VERSION) by "
                   "reference: no data is written.")
@click.option("--os-snapshot", default=None, metavar="SNAPSHOT",
              help="OS disk source: a snapshot (name in the resource group or ARM id); its "
                   "data is shared, not copied.")
@click.option("--data-snapshots", cls=Variadic, metavar="SNAPSHOT...",
              help="Data disk sources: snapshots (names or ids).")
@click.option("--data-snapshot-luns", cls=Variadic, metavar="LUN...",
              help="LUNs of the data disk snapshots, in order (default 0, 1, …).")
@click.option("--managed-image", default=None, metavar="IMAGE",
              help="Source: a managed image (name in the resource group or ARM id) with all "
                   "its disks; Generalized definitions only.")
@click.option("-l", "--location", default=None, metavar="REGION",
              help="Source region (default local).")
@click.option("--target-regions", cls=Variadic, metavar="REGION[=COUNT][=SKU]...",
              help="Regions to replicate to (must include the source region).")
@click.option("--target-region-encryption", cls=Variadic, metavar="OS_DES[,LUN,DATA_DES]...",
              help="az's customer-managed keys per target region (null: none): refused, "
                   "imagestore does not encrypt with customer keys, nor does Azure in a "
                   "shared gallery.")
@click.option("--replica-count", type=int, default=None, help="Default replicas per region (1).")
@click.option("--storage-account-type", default=None,
              metavar="Standard_LRS|Standard_ZRS|Premium_LRS")
@click.option("--replication-mode", default=None, metavar="Full|Shallow")
@three_state("--exclude-from-latest", "Never pick this version as 'latest'.")
@click.option("--end-of-life-date", default=None, metavar="DATE")
@three_state("--block-deletion-before-end-of-life", "Refuse deletion before the end-of-life date.")
@three_state("--allow-replicated-location-deletion",
             "safetyProfile.allowDeletionOfReplicatedLocations.")
@click.option("--allow-parent-dir", default=None, metavar="DIR",
              help="Allow differencing parents to resolve inside DIR too.")
@click.option("--source-format", default="auto", show_default=True,
              type=click.Choice(SOURCE_FORMATS, case_sensitive=False),
              help="auto: detect raw/VHD/VHDX and refuse anything else; raw: the source "
                   "files' bytes are the disks.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@no_wait_option
@tags_option
@common_options
@click.pass_context
def image_version_create(ctx, rg, gallery, image, version, os_vhd_uri, os_vhd_storage_account,
                         data_vhds_uris,
                         data_vhds_luns, source_vm, source_version, os_snapshot, data_snapshots,
                         data_snapshot_luns, managed_image, location, target_regions,
                         target_region_encryption, replica_count, storage_account_type, replication_mode, exclude_from_latest,
                         end_of_life_date, block_deletion_before_end_of_life,
                         allow_replicated_location_deletion, allow_parent_dir, source_format,
                         threads, no_wait, tags) -> None:
    """Create an image version from disk files, snapshots, a managed image or a version.

    \b
    Example:
      imagestore sig image-version create -r myGallery -i myImage1 -e 1.0.0 \\
          --os-vhd-uri os.vhdx --data-vhds-uris data.vhd --data-vhds-luns 1
      imagestore sig image-version create -r otherGallery -i myImage1 -e 1.0.0 \\
          --image-version myGallery/myImage1/1.0.0
      imagestore sig image-version create -r myGallery -i myImage1 -e 1.2.0 \\
          --os-snapshot vm1-os-snap --data-snapshots vm1-data-snap --data-snapshot-luns 1
      imagestore sig image-version create -r myGallery -i myImage1 -e 1.3.0 \\
          --managed-image myImage
      imagestore sig image-version create -r myGallery -i myImage1 -e 1.1.0 \\
          --os-vhd-uri os.vhdx --target-regions local westeurope=2=Standard_ZRS --no-wait
      imagestore sig image-version create -r myGallery -i myImage1 -e 0.9.0 \\
          --os-vhd-uri huge.vhdx --replication-mode Shallow

    \b
    Replication: each target region gets REGION[=COUNT][=SKU] copies (COUNT defaults to
    --replica-count); only missing chunks are sent. Standard_ZRS puts each copy in its own
    zone, Premium_LRS stores it uncompressed. Shallow references the source file instead of
    copying it (source region only; limited concurrent disk creation).
    """
    target_regions = with_encryption(given(target_regions), given(target_region_encryption),
                                     location)
    if os_vhd_storage_account is not None:
        from ..azblob import check_account_of

        for u in [os_vhd_uri, *(given(data_vhds_uris) or [])]:
            check_account_of(u, os_vhd_storage_account, "--os-vhd-storage-account")
    if source_vm is not None:  # capture from a VM (compute layer, issue 14)
        from .vm_cmds import capture_from_vm

        src = capture_from_vm(ctx, source_vm, rg, gallery, image,
                              os_vhd_uri or os_snapshot or managed_image or source_version,
                              data_vhds_uris or data_snapshots)
        out = gallery_service(ctx).create_version(
            rg, gallery, image, version, **src, location=location,
            target_regions=given(target_regions), replica_count=replica_count,
            storage_account_type=storage_account_type,
            exclude_from_latest=flag_value("--exclude-from-latest", exclude_from_latest),
            end_of_life_date=end_of_life_date, tags=tags_opt(tags),
            observer=progress_observer(ctx), threads=threads, no_wait=no_wait)
        if not no_wait:
            emit(ctx, out)
        return
    out = gallery_service(ctx).create_version(
        rg, gallery, image, version, os_vhd_uri=os_vhd_uri,
        data_vhds_uris=given(data_vhds_uris) or [],
        data_vhds_luns=int_list("--data-vhds-luns", data_vhds_luns),
        image_version=source_version, location=location, target_regions=given(target_regions),
        replica_count=replica_count, storage_account_type=storage_account_type,
        replication_mode=replication_mode,
        exclude_from_latest=flag_value("--exclude-from-latest", exclude_from_latest),
        end_of_life_date=end_of_life_date,
        block_deletion_before_end_of_life=flag_value(
            "--block-deletion-before-end-of-life", block_deletion_before_end_of_life),
        allow_deletion_of_replicated_locations=flag_value(
            "--allow-replicated-location-deletion", allow_replicated_location_deletion),
        tags=tags_opt(tags), observer=progress_observer(ctx), threads=threads,
        allow_parent_dir=allow_parent_dir, no_wait=no_wait,
        source_format=source_format.lower(), os_snapshot=os_snapshot,
        data_snapshots=given(data_snapshots) or [],
        data_snapshot_luns=int_list("--data-snapshot-luns", data_snapshot_luns),
        managed_image=managed_image,
    )
    if not no_wait:  # az prints nothing with --no-wait; `wait --created` follows the operation
        emit(ctx, out)


@image_version_group.command("show")
@ids_option("version")
@rg_option
@gallery_option
@image_option
@version_option
@click.option("--expand", default=None, metavar="ReplicationStatus",
              help="Include properties.replicationStatus.")
@common_options
@click.pass_context
def image_version_show(ctx, rg, gallery, image, version, expand) -> None:
    """Show an image version.

    \b
    Example:
      imagestore sig image-version show -r myGallery -i myImage1 -e 1.0.0 \\
          --expand ReplicationStatus --query properties.replicationStatus
    """
    emit(ctx, gallery_service(ctx, create=False).show_version(rg, gallery, image, version, expand=expand))


@image_version_group.command("list")
@rg_option
@gallery_option
@image_option
@common_options
@click.pass_context
def image_version_list(ctx, rg, gallery, image) -> None:
    """List the versions of an image definition.

    \b
    Example:
      imagestore sig image-version list -r myGallery -i myImage1 -o table
    """
    emit(ctx, gallery_service(ctx, create=False).list_versions(rg, gallery, image))


@image_version_group.command("update")
@ids_option("version")
@rg_option
@gallery_option
@image_option
@version_option
@click.option("--target-regions", cls=Variadic, metavar="REGION[=COUNT][=SKU]...")
@click.option("--replica-count", type=int, default=None)
@three_state("--exclude-from-latest", "Never pick this version as 'latest'.")
@click.option("--end-of-life-date", default=None, metavar="DATE")
@three_state("--block-deletion-before-end-of-life", "Refuse deletion before the end-of-life date.")
@three_state("--allow-replicated-location-deletion",
             "Allow removing regions from the target regions.")
@no_wait_option
@tags_option
@generic_update_options
@common_options
@click.pass_context
def image_version_update(ctx, rg, gallery, image, version, target_regions, replica_count,
                         exclude_from_latest, end_of_life_date, block_deletion_before_end_of_life,
                         allow_replicated_location_deletion, no_wait, tags, sets) -> None:
    """Update an image version. Only target regions, replica counts, exclude-from-latest,
    the end-of-life date, the safety profile's two flags (and tags) may change.

    \b
    Example:
      imagestore sig image-version update -r myGallery -i myImage1 -e 2.0.0 \\
          --exclude-from-latest false
      imagestore sig image-version update -r myGallery -i myImage1 -e 2.0.0 \\
          --set publishingProfile.targetRegions[0].excludeFromLatest=true
      imagestore sig image-version update -r myGallery -i myImage1 -e 2.0.0 \\
          --add publishingProfile.targetRegions name=west regionalReplicaCount=2
      imagestore sig image-version update -r myGallery -i myImage1 -e 2.0.0 \\
          --block-deletion-before-end-of-life false
    """
    out = gallery_service(ctx).update_version(
        rg, gallery, image, version, target_regions=given(target_regions),
        replica_count=replica_count, exclude_from_latest=exclude_from_latest,
        end_of_life_date=end_of_life_date,
        block_deletion_before_end_of_life=block_deletion_before_end_of_life,
        allow_deletion_of_replicated_locations=allow_replicated_location_deletion,
        tags=tags_opt(tags), sets=sets or (), no_wait=no_wait, observer=progress_observer(ctx),
    )
    if not no_wait:
        emit(ctx, out)


@image_version_group.command("delete")
@ids_option("version")
@rg_option
@gallery_option
@image_option
@version_option
@no_wait_option
@common_options
@click.pass_context
def image_version_delete(ctx, rg, gallery, image, version, no_wait) -> None:
    """Delete an image version; its data becomes garbage for `store gc` unless another
    version shares it. Disks created from it keep working.

    \b
    Example:
      imagestore sig image-version delete -r myGallery -i myImage1 -e 1.0.0
    """
    gallery_service(ctx).delete_version(rg, gallery, image, version)


@image_version_group.command("wait")
@ids_option("version")
@rg_option
@gallery_option
@image_option
@version_option
@click.option("--created", "condition", flag_value="created", help="Wait until provisioned.")
@click.option("--updated", "condition", flag_value="updated", help="Wait until provisioned.")
@click.option("--deleted", "condition", flag_value="deleted", help="Wait until deleted.")
@click.option("--exists", "condition", flag_value="exists", help="Wait until it exists.")
@click.option("--timeout", default=3600, show_default=True, type=int, help="Seconds.")
@click.option("--interval", default=1, show_default=True, type=int, help="Polling interval, seconds.")
@common_options
@click.pass_context
def image_version_wait(ctx, rg, gallery, image, version, condition, timeout, interval) -> None:
    """Wait for an image version operation to finish (for --no-wait), starting a background
    worker if none is running. A terminal shows a progress bar per region (bytes and rate);
    scripts poll `show --expand ReplicationStatus` instead. Exit 5 if provisioning failed,
    12 when --timeout runs out.

    \b
    Example:
      imagestore sig image-version wait -r myGallery -i myImage1 -e 1.0.0 --created
    """
    gallery_service(ctx, create=False).wait_version(rg, gallery, image, version,
                                      condition=condition or "created",
                                      timeout=float(timeout), interval=float(interval),
                                      observer=progress_observer(ctx))
