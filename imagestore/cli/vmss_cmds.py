"""`imagestore vmss …`: virtual machine scale sets (Uniform) from gallery image versions."""

from __future__ import annotations

import click

from ..gallery import shared_views
from .common import common_options
from .output import emit
from .sig_cmds import Variadic, given, int_list, rg_filter_option, rg_option, tags_opt
from .vm_cmds import compute_service, image_options, timeout_option, tri


def name_option(f):
    return click.option("-n", "--name", required=True, metavar="NAME",
                        help="Scale set name.")(f)


def instance_ids_option(f):
    return click.option("--instance-ids", cls=Variadic, metavar="ID...",
                        help="Instance ids (default: all).")(f)


@click.group("vmss")
def vmss_group() -> None:
    """Virtual machine scale sets from image versions.

    \b
    Example:
      imagestore vmss create -n ss --image myGallery/myImage1 --instance-count 2 \\
          --admin-username azureuser --ssh-key-values ~/.ssh/id_ed25519.pub
      imagestore vmss scale -n ss --new-capacity 3
    """


@vmss_group.command("create")
@rg_option
@name_option
@image_options
@click.option("--instance-count", default=2, show_default=True, type=int)
@click.option("--computer-name-prefix", default=None, metavar="PREFIX",
              help="Instance computer names: PREFIX + 6 base-36 digits (default: 9 first "
                   "letters of the name).")
@common_options
@click.pass_context
def vmss_create(ctx, rg, name, image, location, specialized, admin_username, ssh_key_values,
                custom_data, security_type, enable_secure_boot, enable_vtpm, size, os_disk_mode,
                data_disk_sizes_gb, tags, instance_count, computer_name_prefix) -> None:
    """Create a scale set and its instances (all or nothing)."""
    viewer = None
    if shared_views.is_shared_reference(image):  # a consumer's (issue 15)
        from .sig_share_cmds import viewer_of

        viewer = viewer_of(ctx, rg=rg)
    emit(ctx, compute_service(ctx).vmss.create(
        rg, name, image, instance_count=instance_count, location=location,
        specialized=specialized, admin_username=admin_username,
        ssh_key_values=given(ssh_key_values) or [], computer_name_prefix=computer_name_prefix,
        custom_data=custom_data, security_type=security_type,
        enable_secure_boot=tri("properties.virtualMachineProfile.securityProfile.uefiSettings"
                               ".secureBootEnabled", enable_secure_boot),
        enable_vtpm=tri("properties.virtualMachineProfile.securityProfile.uefiSettings"
                        ".vTpmEnabled", enable_vtpm),
        size=size, os_disk_mode=os_disk_mode,
        data_disk_sizes_gb=int_list("--data-disk-sizes-gb", data_disk_sizes_gb),
        tags=tags_opt(tags), viewer=viewer))


@vmss_group.command("show")
@rg_option
@name_option
@common_options
@click.pass_context
def vmss_show(ctx, rg, name) -> None:
    """Show a scale set (sku.capacity = its instance count)."""
    emit(ctx, compute_service(ctx, create=False).vmss.show(rg, name))


@vmss_group.command("list")
@rg_filter_option
@common_options
@click.pass_context
def vmss_list(ctx, rg) -> None:
    """List scale sets."""
    emit(ctx, compute_service(ctx, create=False).vmss.list(rg))


@vmss_group.command("list-instances")
@rg_option
@name_option
@common_options
@click.pass_context
def vmss_list_instances(ctx, rg, name) -> None:
    """List a scale set's instances (each with its imageReference.exactVersion)."""
    emit(ctx, compute_service(ctx, create=False).vmss.list_instances(rg, name))


@vmss_group.command("scale")
@rg_option
@name_option
@click.option("--new-capacity", required=True, type=int, metavar="N")
@common_options
@click.pass_context
def vmss_scale(ctx, rg, name, new_capacity) -> None:
    """Change the instance count: new instances resolve the image reference now; scale-in
    removes the highest instance ids with their disks."""
    emit(ctx, compute_service(ctx).vmss.scale(rg, name, new_capacity))


@vmss_group.command("start")
@rg_option
@name_option
@instance_ids_option
@common_options
@click.pass_context
def vmss_start(ctx, rg, name, instance_ids) -> None:
    """Boot instances under qemu."""
    emit(ctx, compute_service(ctx).vmss.start(rg, name, given(instance_ids)))


@vmss_group.command("stop")
@rg_option
@name_option
@instance_ids_option
@timeout_option
@common_options
@click.pass_context
def vmss_stop(ctx, rg, name, instance_ids, timeout) -> None:
    """Power instances off (ACPI, then killed after --timeout)."""
    emit(ctx, compute_service(ctx).vmss.stop(rg, name, given(instance_ids), timeout=timeout))


@vmss_group.command("deallocate")
@rg_option
@name_option
@instance_ids_option
@timeout_option
@common_options
@click.pass_context
def vmss_deallocate(ctx, rg, name, instance_ids, timeout) -> None:
    """Power instances off and free their runtime state."""
    emit(ctx, compute_service(ctx).vmss.stop(rg, name, given(instance_ids), deallocate=True,
                                             timeout=timeout))


@vmss_group.command("delete")
@rg_option
@name_option
@common_options
@click.pass_context
def vmss_delete(ctx, rg, name) -> None:
    """Delete a scale set with its instances and their disks."""
    compute_service(ctx).vmss.delete(rg, name)
