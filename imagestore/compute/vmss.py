"""Virtual machine scale sets (``Microsoft.Compute/virtualMachineScaleSets``, Uniform
orchestration): a model (image reference, osProfile, security, size) and N instances, each
a VM of its own (own disks, seed, NVRAM, TPM) named ``<set>_<instanceId>`` with computer name
``<prefix><instanceId in base 36, 6 digits>`` as Azure names them.

The image reference is resolved per instance when the instance is made: a scale set on a
definition id gives new instances the definition's latest version at that time while old
ones keep theirs; a scale set pinned to a version that has since been deleted cannot scale
out (``GalleryImageNotFound``; the capacity stays) while its instances keep running."""

from __future__ import annotations

import base64
import dataclasses
import uuid

from ..errors import Conflict, ImagestoreError, InvalidArgument, NotFound
from ..gallery import validate
from ..gallery.repo.rows import VmRow, VmssRow
from ..gallery.service import GalleryService
from ..gallery.shared_views import Viewer
from . import arm_vm, rules
from .vms import DEFAULT_LOCATION, VirtualMachines

MAX_CAPACITY = 100


def base36(n: int, width: int = 6) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            break
    return out.rjust(width, "0")


def _capacity(value, field: str = "sku.capacity") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPACITY:
        raise InvalidArgument(f"{field}: '{value}' must be an integer from 0 to {MAX_CAPACITY}",
                              target=field)
    return value



def image_of(props: dict) -> str:
    """The scale set's image: ``imageReference.id``, or a consumer's
    ``sharedGalleryImageId`` / ``communityGalleryImageId`` (issue 15)."""
    ir = props["virtualMachineProfile"]["storageProfile"]["imageReference"]
    return ir.get("id") or ir.get("sharedGalleryImageId") or ir["communityGalleryImageId"]

class ScaleSets:
    """The scale set operations."""

    def __init__(self, gallery: GalleryService, vms: VirtualMachines) -> None:
        self.gallery = gallery
        self.repo = gallery.repo
        self.vms = vms

    def row(self, rg: str, name: str) -> VmssRow:
        row = self.repo.find_vmss(rg, name)
        if row is None:
            raise NotFound(f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' "
                           f"under resource group '{rg}' was not found.", target="vmScaleSetName")
        return row

    def json(self, row: VmssRow) -> dict:
        return arm_vm.vmss_json(row, len(self.repo.vmss_instances(row.id)))

    def show(self, rg: str, name: str) -> dict:
        return self.json(self.row(rg, name))

    def list(self, rg: str | None = None) -> list[dict]:
        return [self.json(r) for r in self.repo.list_vmss(rg)]

    def list_instances(self, rg: str, name: str) -> list[dict]:
        row = self.row(rg, name)
        return [self.vms.json(i) for i in self.repo.vmss_instances(row.id)]

    # -- create ----------------------------------------------------------------------------------

    def create(self, rg: str, name: str, image: str, *, instance_count: int = 2,
               location: str | None = None, specialized: bool = False,
               admin_username: str | None = None, ssh_key_values=(),
               computer_name_prefix: str | None = None, custom_data: str | None = None,
               security_type: str | None = None, enable_secure_boot: bool | None = None,
               enable_vtpm: bool | None = None, size: str | None = None,
               os_disk_mode: str | None = None, data_disk_sizes_gb=(),
               tags: dict | None = None, viewer: Viewer | None = None) -> dict:
        """Create the scale set and its ``instance_count`` instances (all or nothing).
        ``viewer``: the consumer of a shared or community image (kept: instances added
        later resolve the image through the share as it is then)."""
        validate.resource_group(rg)
        rules.vm_name(name, "vmScaleSetName")
        count = _capacity(instance_count)
        if self.repo.find_vmss(rg, name):
            raise Conflict(f"virtual machine scale set '{name}' already exists in resource "
                           f"group '{rg}'", target="vmScaleSetName")
        location = self.gallery.placement.require_region(location or DEFAULT_LOCATION)
        prefix = computer_name_prefix or name[:9]
        plan = self.vms.plan(rg, name, image, location=location, specialized=specialized,
                             admin_username=admin_username, ssh_key_values=ssh_key_values,
                             computer_name=prefix + "000000" if admin_username else None,
                             custom_data=custom_data, security_type=security_type,
                             enable_secure_boot=enable_secure_boot, enable_vtpm=enable_vtpm,
                             size=size, os_disk_mode=os_disk_mode,
                             data_disk_sizes_gb=data_disk_sizes_gb, viewer=viewer)
        choice = plan["choice"]
        prof: rules.OsProfile | None = plan["osProfile"]
        vmp: dict = {
            "storageProfile": {
                "imageReference": {choice.reference_key: choice.requested_id},
                "osDisk": {"createOption": "FromImage", "caching": "ReadWrite",
                           "osType": choice.definition.get("osType", "Linux"),
                           "managedDisk": {"storageAccountType": "Standard_LRS"}},
                "dataDisks": [{"lun": lun, "createOption": "FromImage", "caching": "None",
                               "managedDisk": {"storageAccountType": "Standard_LRS"}}
                              for lun in choice.data_luns],
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            "networkProfile": {"networkInterfaceConfigurations": []},
        }
        if prof is not None:
            osp = prof.arm()
            osp.pop("computerName")
            vmp["osProfile"] = {"computerNamePrefix": prefix, **osp}
        sec = plan["security"].arm()
        if sec is not None:
            vmp["securityProfile"] = sec
        props = {
            "sku": {"name": plan["size"], "tier": "Standard"},
            "uniqueId": str(uuid.uuid4()),
            "orchestrationMode": "Uniform",
            "upgradePolicy": {"mode": "Manual"},
            "singlePlacementGroup": True,
            "overprovision": False,
            "virtualMachineProfile": vmp,
            "provisioningState": "Succeeded",
            "timeCreated": validate.iso(validate.now_utc()),
            "localCompute": {
                "nextInstanceId": 0,
                "model": {
                    "specialized": specialized, "adminUsername": admin_username,
                    "sshKeys": list(prof.ssh_keys) if prof else [],
                    "customData": base64.b64encode(prof.custom_data).decode()
                    if prof and prof.custom_data is not None else None,
                    "securityType": security_type, "enableSecureBoot": enable_secure_boot,
                    "enableVtpm": enable_vtpm, "size": plan["size"],
                    "osDiskMode": plan["osDiskMode"], "dataDiskSizesGB": plan["emptyDisks"],
                    "viewer": dataclasses.asdict(viewer) if viewer is not None else None,
                },
            },
        }
        with self.repo.transaction():
            pk = self.repo.insert_vmss(rg, name, location, tags or {}, props)
        try:
            self._scale_out(self.row(rg, name), count)
        except BaseException:
            row = self.repo.find_vmss(rg, name)
            if row is not None and row.id == pk:
                self._delete_row(row)
            raise
        return self.show(rg, name)

    def _instance_plan(self, row: VmssRow, computer_name: str) -> dict:
        props = row.properties
        m = props["localCompute"]["model"]
        image = image_of(props)
        viewer = Viewer(**m["viewer"]) if m.get("viewer") else None
        plan = self.vms.plan(
            row.rg, row.name, image, location=row.location, specialized=m["specialized"],
            admin_username=m["adminUsername"], ssh_key_values=m["sshKeys"],
            computer_name=computer_name if m["adminUsername"] else None, custom_data=None,
            security_type=m["securityType"], enable_secure_boot=m["enableSecureBoot"],
            enable_vtpm=m["enableVtpm"], size=m["size"], os_disk_mode=m["osDiskMode"],
            data_disk_sizes_gb=m["dataDiskSizesGB"], viewer=viewer)
        if plan["osProfile"] is not None and m.get("customData") is not None:
            plan["osProfile"] = dataclasses.replace(
                plan["osProfile"], custom_data=base64.b64decode(m["customData"]))
        return plan

    def _scale_out(self, row: VmssRow, add: int) -> list[VmRow]:
        """Add ``add`` instances; on any failure remove the ones this call added."""
        made: list[VmRow] = []
        try:
            for _ in range(add):
                fresh = self.row(row.rg, row.name)
                props = fresh.properties
                iid = props["localCompute"]["nextInstanceId"]
                prefix = (props["virtualMachineProfile"].get("osProfile") or {}).get(
                    "computerNamePrefix") or row.name[:9]
                try:
                    plan = self._instance_plan(fresh, f"{prefix}{base36(iid)}")
                except NotFound as e:
                    ref = image_of(props)
                    raise NotFound(
                        f"Virtual machine scale set '{row.name}' cannot add instance {iid}: its "
                        f"image reference {ref} is not available ({e.message}). Existing "
                        f"instances are not affected; point the scale set at an available "
                        f"version or at the image definition (latest).",
                        target="properties.virtualMachineProfile.storageProfile.imageReference.id",
                        code="GalleryImageNotFound") from None
                vname = f"{row.name}_{iid}"
                vprops = self.vms.provision(plan, row.rg, vname, row.location,
                                            arm_vm.vmss_vm_id(row.subscription, row.rg, row.name, iid))
                try:
                    with self.repo.transaction():
                        self.repo.insert_vm(row.rg, vname, row.location, {}, vprops,
                                            vmss_id=row.id, instance_id=iid)
                        props["localCompute"]["nextInstanceId"] = iid + 1
                        self.repo.update_vmss(row.id, props)
                except BaseException:
                    self.vms.discard(row.rg, vprops)
                    raise
                made.append(self.repo.find_vm(row.rg, vname))
        except BaseException:
            for inst in made:
                self.vms.delete_row(inst, delete_disks=True)
            raise
        return made

    # -- scale / delete --------------------------------------------------------------------------

    def scale(self, rg: str, name: str, new_capacity: int) -> dict:
        """Grow (new instances resolve the image reference now) or shrink (highest instance
        ids go first, with their disks)."""
        row = self.row(rg, name)
        want = _capacity(new_capacity, "sku.capacity")
        have = self.repo.vmss_instances(row.id)
        if want > len(have):
            self._scale_out(row, want - len(have))
        else:
            for inst in sorted(have, key=lambda r: r.instance_id, reverse=True)[:len(have) - want]:
                self.vms.delete_row(inst, delete_disks=True)
        return self.show(rg, name)

    def _delete_row(self, row: VmssRow) -> None:
        errors: list[ImagestoreError] = []
        for inst in self.repo.vmss_instances(row.id):
            try:
                self.vms.delete_row(inst, delete_disks=True)
            except ImagestoreError as e:
                errors.append(e)
        if errors:
            raise errors[0]
        with self.repo.transaction():
            self.repo.delete_vmss(row.id)

    def delete(self, rg: str, name: str) -> None:
        self._delete_row(self.row(rg, name))

    def instances(self, rg: str, name: str, instance_ids: list[str] | None) -> list[VmRow]:
        row = self.row(rg, name)
        all_ = self.repo.vmss_instances(row.id)
        if not instance_ids or instance_ids == ["*"]:
            return all_
        by_id = {str(i.instance_id): i for i in all_}
        out = []
        for iid in instance_ids:
            if iid not in by_id:
                raise NotFound(f"instance '{iid}' of virtual machine scale set '{name}' not found",
                               target="instanceIds")
            out.append(by_id[iid])
        return out

    def start(self, rg: str, name: str, instance_ids: list[str] | None = None) -> list[dict]:
        for inst in self.instances(rg, name, instance_ids):
            self.vms.start_row(inst)
        return self.list_instances(rg, name)

    def stop(self, rg: str, name: str, instance_ids: list[str] | None = None, *,
             deallocate: bool = False, timeout: float = 60.0) -> list[dict]:
        for inst in self.instances(rg, name, instance_ids):
            self.vms.stop_row(inst, timeout=timeout, deallocate=deallocate)
        return self.list_instances(rg, name)
