"""`imagestore vm …`: virtual machines from gallery image versions, booted under qemu
(Microsoft.Compute/virtualMachines; names and flags as `az vm`)."""

from __future__ import annotations

import click

from ..compute.service import ComputeService
from ..errors import InvalidArgument
from ..gallery import shared_views, validate
from .common import common_options
from .output import emit
from .sig_cmds import (
    Variadic,
    gallery_service,
    given,
    int_list,
    rg_filter_option,
    rg_option,
    tags_opt,
    tags_option,
    three_state,
)


def compute_service(ctx: click.Context, *, create: bool = True) -> ComputeService:
    """The store's compute layer for this command (opened once)."""
    root = ctx.find_root()
    svc = root.meta.get("imagestore.compute")
    if svc is None:
        svc = ComputeService(gallery_service(ctx, create=create))
        root.meta["imagestore.compute"] = svc
    return svc


def tri(field: str, value: str | None) -> bool | None:
    return None if value is None else bool(validate.boolean(field, value))


def name_option(f):
    return click.option("-n", "--name", required=True, metavar="NAME",
                        help="Virtual machine name.")(f)


def timeout_option(f):
    return click.option("--timeout", default=60.0, show_default=True, type=float,
                        metavar="SECONDS",
                        help="How long the guest may take to power off after the ACPI power "
                             "button before it is killed (imagestore's own flag).")(f)


def image_options(f):
    """The flags `vm create` and `vmss create` share."""
    for deco in reversed([
        click.option("--image", required=True, metavar="VERSION_OR_DEFINITION_ID",
                     help="Image version id (pinned) or image definition id (= its latest "
                          "version now); full ARM id or GALLERY/DEFINITION[/VERSION]."),
        click.option("-l", "--location", default=None, metavar="REGION",
                     help="Region (default local); the version must be replicated there."),
        click.option("--specialized", is_flag=True,
                     help="The image is specialized: no osProfile is passed."),
        click.option("--admin-username", default=None, metavar="USER",
                     help="Admin user (required for generalized images)."),
        click.option("--ssh-key-values", cls=Variadic, metavar="KEY_OR_FILE...",
                     help="SSH public keys, inline or as files."),
        click.option("--custom-data", default=None, metavar="FILE",
                     help="customData: a file handed to cloud-init as user data."),
        click.option("--security-type", default=None, metavar="Standard|TrustedLaunch"),
        three_state("--enable-secure-boot", "Secure boot (Trusted Launch; default true)."),
        three_state("--enable-vtpm", "vTPM (Trusted Launch; default true)."),
        click.option("--size", default=None, metavar="NAME",
                     help="VM size (default Standard_DS1_v2: 1 vCPU, 3.5 GiB)."),
        click.option("--os-disk-mode", default=None, metavar="linked|copy",
                     help="OS and data disks as linked clones of the version (default when "
                          "the store supports them) or independent copies."),
        click.option("--data-disk-sizes-gb", cls=Variadic, metavar="GB...",
                     help="Empty data disks to add after the image's LUNs."),
        tags_option,
    ]):
        f = deco(f)
    return f


@click.group("vm")
def vm_group() -> None:
    """Virtual machines from image versions, booted under qemu on this machine.

    \b
    Example:
      imagestore vm create -n vm1 --image myGallery/myImage1 --admin-username azureuser \\
          --ssh-key-values ~/.ssh/id_ed25519.pub
      imagestore vm start -n vm1
      imagestore vm boot-diagnostics get-boot-log -n vm1
    """


@vm_group.command("create")
@rg_option
@name_option
@image_options
@click.option("--computer-name", default=None, metavar="HOSTNAME",
              help="Guest host name (default: the VM name).")
@click.option("--start", "start_now", is_flag=True,
              help="Boot the VM right away (imagestore provisions without booting by default).")
@common_options
@click.pass_context
def vm_create(ctx, rg, name, image, location, specialized, admin_username, ssh_key_values,
              custom_data, security_type, enable_secure_boot, enable_vtpm, size, os_disk_mode,
              data_disk_sizes_gb, tags, computer_name, start_now) -> None:
    """Create a VM from an image version: its managed disks (OS and data disks FromImage by
    LUN), the cloud-init seed for a generalized image; nothing is made when a rule refuses.

    \b
    Example:
      imagestore vm create -n vm1 --image myGallery/myImage1/1.0.0 --admin-username azureuser \\
          --ssh-key-values "ssh-ed25519 AAAA… me@host" --security-type TrustedLaunch
      imagestore vm create -n vm2 --image myGallery/mySpecializedImage --specialized
    """
    svc = compute_service(ctx)
    viewer = None
    if shared_views.is_shared_reference(image):  # a consumer's (issue 15)
        from .sig_share_cmds import viewer_of

        viewer = viewer_of(ctx, rg=rg)  # the disk's subscription looks
    out = svc.vms.create(
        rg, name, image, location=location, specialized=specialized,
        admin_username=admin_username, ssh_key_values=given(ssh_key_values) or [],
        computer_name=computer_name, custom_data=custom_data, security_type=security_type,
        enable_secure_boot=tri("properties.securityProfile.uefiSettings.secureBootEnabled",
                               enable_secure_boot),
        enable_vtpm=tri("properties.securityProfile.uefiSettings.vTpmEnabled", enable_vtpm),
        size=size, os_disk_mode=os_disk_mode,
        data_disk_sizes_gb=int_list("--data-disk-sizes-gb", data_disk_sizes_gb),
        tags=tags_opt(tags), viewer=viewer)
    if start_now:
        out = svc.vms.start(rg, name)
    emit(ctx, out)


@vm_group.command("show")
@rg_option
@name_option
@common_options
@click.pass_context
def vm_show(ctx, rg, name) -> None:
    """Show a VM (properties.localCompute.powerState: what qemu says now)."""
    emit(ctx, compute_service(ctx, create=False).vms.show(rg, name))


@vm_group.command("list")
@rg_filter_option
@common_options
@click.pass_context
def vm_list(ctx, rg) -> None:
    """List VMs."""
    emit(ctx, compute_service(ctx, create=False).vms.list(rg))


@vm_group.command("get-instance-view")
@rg_option
@name_option
@common_options
@click.pass_context
def vm_instance_view(ctx, rg, name) -> None:
    """The VM with properties.instanceView (statuses: PowerState/…, OSState/generalized).

    \b
    Example:
      imagestore vm get-instance-view -n vm1 --query "properties.instanceView.statuses[1].code"
    """
    emit(ctx, compute_service(ctx, create=False).vms.instance_view(rg, name))


@vm_group.command("delete")
@rg_option
@name_option
@click.option("--delete-disks", is_flag=True,
              help="Also delete the VM's managed disks and their files.")
@click.option("-y", "--yes", is_flag=True, help="No prompt (accepted for az compatibility).")
@common_options
@click.pass_context
def vm_delete(ctx, rg, name, delete_disks, yes) -> None:
    """Delete a VM (powering it off first); its disks stay unless --delete-disks."""
    compute_service(ctx).vms.delete(rg, name, delete_disks=delete_disks)


@vm_group.command("start")
@rg_option
@name_option
@common_options
@click.pass_context
def vm_start(ctx, rg, name) -> None:
    """Boot the VM under qemu (daemonized; serial console to the boot log)."""
    emit(ctx, compute_service(ctx).vms.start(rg, name))


@vm_group.command("stop")
@rg_option
@name_option
@timeout_option
@common_options
@click.pass_context
def vm_stop(ctx, rg, name, timeout) -> None:
    """Power the VM off: ACPI power button, killed after --timeout; state stays allocated."""
    emit(ctx, compute_service(ctx).vms.stop(rg, name, timeout=timeout))


@vm_group.command("deallocate")
@rg_option
@name_option
@timeout_option
@common_options
@click.pass_context
def vm_deallocate(ctx, rg, name, timeout) -> None:
    """Power off and free the runtime state (process files, boot log); NVRAM, vTPM state and
    disks stay, as Azure keeps a deallocated VM's disks and guest state."""
    emit(ctx, compute_service(ctx).vms.deallocate(rg, name, timeout=timeout))


@vm_group.command("restart")
@rg_option
@name_option
@timeout_option
@common_options
@click.pass_context
def vm_restart(ctx, rg, name, timeout) -> None:
    """Power off (ACPI) and boot again."""
    emit(ctx, compute_service(ctx).vms.restart(rg, name, timeout=timeout))


@vm_group.command("generalize")
@rg_option
@name_option
@click.option("--deprovision", is_flag=True,
              help="Best effort, offline: remove SSH host keys, machine-id, cloud-init state "
                   "and logs from the OS disk's ext4 filesystems (imagestore's own flag).")
@common_options
@click.pass_context
def vm_generalize(ctx, rg, name, deprovision) -> None:
    """Mark a stopped VM generalized (irreversible: it can no longer start)."""
    emit(ctx, compute_service(ctx).vms.generalize(rg, name, deprovision=deprovision))


@vm_group.group("boot-diagnostics")
def boot_diagnostics_group() -> None:
    """Boot diagnostics: the serial console log."""


@boot_diagnostics_group.command("get-boot-log")
@rg_option
@name_option
@common_options
@click.pass_context
def vm_boot_log(ctx, rg, name) -> None:
    """Print the serial console output of the VM's current or last boot."""
    click.echo(compute_service(ctx, create=False).vms.boot_log(rg, name), nl=False)


def capture_from_vm(ctx: click.Context, vm: str, rg: str, gallery: str, image: str,
                    other_os_source: str | None, other_data_sources) -> dict:
    """``sig image-version create --virtual-machine``: the VM's disks as capture sources,
    after the compute layer's checks (stopped, OS state, generation)."""
    if other_os_source or other_data_sources:
        raise InvalidArgument("--virtual-machine takes the VM's OS and data disks; it cannot be "
                              "combined with another source (--os-vhd-uri, --data-vhds-uris, "
                              "--os-snapshot, --data-snapshots, --managed-image, --image-version)")
    svc = compute_service(ctx)
    definition = svc.gallery.definitions.show(rg, gallery, image)["properties"]
    src = svc.vms.capture_sources(vm, rg, definition)
    return {"os_vhd_uri": src["os"], "data_vhds_uris": [p for _lun, p in src["data"]],
            "data_vhds_luns": [lun for lun, _p in src["data"]],
            "allow_parent_dir": src["allowParentDir"], "source_resource_id": src["vmId"]}
