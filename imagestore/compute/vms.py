"""Virtual machines (``Microsoft.Compute/virtualMachines``) made from gallery image versions.

``create`` checks Azure's rules (:mod:`.rules`) first and writes nothing when one fails;
then it makes the VM's managed disks through the gallery's disk service (OS disk and every
data disk of the version ``FromImage`` by LUN, plus empty data disks), the cloud-init seed for
an osProfile, and registers the VM. A VM is provisioned but not booted: ``start`` boots it
under qemu (:mod:`.qemu`). Power state is what qemu says: running while its process lives;
otherwise what the last operation left (stopped, deallocated).

A VM's runtime directory is ``<store>/compute/vms/<vmId>/``: seed.iso, the NVRAM copy
(OVMF_VARS.fd), tpm/ (swtpm state), and while it runs qemu.pid, qmp.sock, serial.log."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import uuid
from dataclasses import dataclass

from ..errors import Conflict, InvalidArgument, NotFound, OperationNotAllowed
from ..gallery import ids, shared_views, validate
from ..gallery.repo.rows import VmRow
from ..gallery.repo.states import ReplicationState
from ..gallery.resource_groups import check_ref
from ..gallery.service import GalleryService
from ..gallery.shared_views import Viewer
from . import arm_vm, qemu, rules
from .seed import SeedContent, write_seed

DEFAULT_LOCATION = "local"
OS_DISK_MODES = ("linked", "copy")
MAX_DATA_DISK_GB = 32767


@dataclass
class ImageChoice:
    """The version a create resolved ``--image`` to."""

    requested_id: str       # what imageReference.id records (definition or version id)
    version_id: str
    version_name: str
    version_pk: int
    definition: dict        # the definition's properties
    data_luns: list[int]
    #: a consumer's shared or community image (issue 15): who sees it (its disks are made
    #: through the same view), and the imageReference key it is recorded under
    viewer: Viewer | None = None
    reference_key: str = "id"


def disk_mode_supported(gallery: GalleryService) -> bool:
    """Whether the gallery's disk service makes linked clones (``linked=`` keyword)."""
    return "linked" in inspect.signature(gallery.disks.create).parameters


class VirtualMachines:
    """The VM operations over the gallery's repository and services."""

    def __init__(self, gallery: GalleryService) -> None:
        self.gallery = gallery
        self.repo = gallery.repo
        self.home = gallery.home

    # -- lookups ---------------------------------------------------------------------------------

    def row(self, rg: str, name: str) -> VmRow:
        row = self.repo.find_vm(rg, name)
        if row is None or row.vmss_id is not None:
            raise NotFound(f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under "
                           f"resource group '{rg}' was not found.", target="vmName",
                           code="ResourceNotFound")
        return row

    def power(self, row: VmRow) -> str:
        lc = row.properties.get("localCompute", {})
        if qemu.running_pid(lc.get("runtimeDir", "")):
            return "running"
        want = lc.get("power", "deallocated")
        return "stopped" if want == "running" else want

    def json(self, row: VmRow) -> dict:
        return arm_vm.vm_json(row, self.power(row))

    def show(self, rg: str, name: str) -> dict:
        return self.json(self.row(rg, name))

    def list(self, rg: str | None = None) -> list[dict]:
        return [self.json(r) for r in self.repo.list_vms(rg)]

    def instance_view(self, rg: str, name: str) -> dict:
        row = self.row(rg, name)
        out = self.json(row)
        out["properties"]["instanceView"] = arm_vm.instance_view(row.properties, self.power(row))
        return out

    def boot_log(self, rg: str, name: str) -> str:
        row = self.row(rg, name)
        return qemu.serial_log(row.properties["localCompute"]["runtimeDir"])

    # -- create ----------------------------------------------------------------------------------

    def resolve_image(self, image: str, rg: str, location: str,
                      viewer: Viewer | None = None) -> ImageChoice:
        """``--image`` (version id or definition id = latest in ``location``) -> the version;
        GalleryImageNotFound when it is not available in the VM's region. A consumer's
        ``/SharedGalleries/…`` or ``/CommunityGalleries/…`` version is resolved as
        ``viewer`` sees it (the share authorizes it; nothing names the private gallery)."""
        field = "properties.storageProfile.imageReference.id"
        if shared_views.is_shared_reference(image):
            return self._resolve_shared(image, location, viewer)
        ref = ids.parse_image_ref(image, rg, field=field)
        check_ref(self.repo, ref.subscription, ref.rg, field)
        def_id = ids.image_id(self.repo.subscription_of(ref.rg), ref.rg, ref.gallery, ref.image)
        versions = self.gallery.versions
        if ref.is_latest:
            self.repo.definition(ref.rg, ref.gallery, ref.image)  # NotFound for a bad name
            try:
                vrow = versions.latest_row(ref.rg, ref.gallery, ref.image, location)
            except NotFound:
                raise rules.gallery_image_not_found(def_id, location) from None
            requested = def_id
        else:
            vrow = versions.row(ref.rg, ref.gallery, ref.image, ref.version, field, for_use=True)
            requested = ids.version_id(vrow.subscription, vrow.rg, vrow.gallery, vrow.image, vrow.name)
        vid = ids.version_id(vrow.subscription, vrow.rg, vrow.gallery, vrow.image, vrow.name)
        reg = self.repo.region_of(vrow.id, location)
        if reg is None or reg.state != ReplicationState.COMPLETED:
            raise rules.gallery_image_not_found(vid, location)
        luns = sorted(d.lun for d in self.repo.disks_of(vrow.id) if d.lun >= 0)
        return ImageChoice(requested, vid, vrow.name, vrow.id, vrow.definition_properties, luns)

    def _resolve_shared(self, image: str, location: str, viewer: Viewer | None) -> ImageChoice:
        shared = image.strip().lower().startswith("/sharedgalleries/")
        key = "sharedGalleryImageId" if shared else "communityGalleryImageId"
        field = f"properties.storageProfile.imageReference.{key}"
        if viewer is None:
            raise InvalidArgument(f"{field}: a shared or community image needs the consumer's "
                                  f"subscription and tenant", target=field)
        vrow, vid = shared_views.ConsumerViews(self.repo).resolve(image, viewer, location,
                                                                  field=field)
        luns = sorted(d.lun for d in self.repo.disks_of(vrow.id) if d.lun >= 0)
        return ImageChoice(image.strip(), vid, vrow.name, vrow.id, vrow.definition_properties,
                           luns, viewer, key)

    def create(
        self, rg: str, name: str, image: str, *, location: str | None = None,
        specialized: bool = False, admin_username: str | None = None,
        ssh_key_values: list[str] | tuple[str, ...] = (), computer_name: str | None = None,
        custom_data: str | None = None, security_type: str | None = None,
        enable_secure_boot: bool | None = None, enable_vtpm: bool | None = None,
        size: str | None = None, os_disk_mode: str | None = None,
        data_disk_sizes_gb: list[int] | tuple[int, ...] = (), tags: dict | None = None,
        custom_data_bytes: bytes | None = None, viewer: Viewer | None = None,
    ) -> dict:
        """Create a VM from an image version (see the module doc; ``viewer``: the consumer
        of a shared or community image). Returns its JSON."""
        validate.resource_group(rg)
        rules.vm_name(name)
        if self.repo.find_vm(rg, name):
            raise Conflict(f"virtual machine '{name}' already exists in resource group '{rg}'",
                           target="vmName")
        location = self.gallery.placement.require_region(location or DEFAULT_LOCATION)
        plan = self.plan(rg, name, image, location=location, specialized=specialized,
                         admin_username=admin_username, ssh_key_values=ssh_key_values,
                         computer_name=computer_name, custom_data=custom_data,
                         security_type=security_type, enable_secure_boot=enable_secure_boot,
                         enable_vtpm=enable_vtpm, size=size, os_disk_mode=os_disk_mode,
                         data_disk_sizes_gb=data_disk_sizes_gb,
                         custom_data_bytes=custom_data_bytes, viewer=viewer)
        props = self.provision(plan, rg, name, location)
        try:
            with self.repo.transaction():
                if self.repo.find_vm(rg, name):
                    raise Conflict(f"virtual machine '{name}' already exists in resource group "
                                   f"'{rg}'", target="vmName")
                self.repo.insert_vm(rg, name, location, tags or {}, props)
        except BaseException:
            self.discard(rg, props)
            raise
        return self.show(rg, name)

    def plan(self, rg: str, name: str, image: str, *, location: str, specialized: bool,
             admin_username: str | None, ssh_key_values, computer_name: str | None,
             custom_data: str | None, security_type: str | None,
             enable_secure_boot: bool | None, enable_vtpm: bool | None, size: str | None,
             os_disk_mode: str | None, data_disk_sizes_gb,
             custom_data_bytes: bytes | None = None, viewer: Viewer | None = None) -> dict:
        """Every check of a create, nothing written: the resolved request."""
        mode = (os_disk_mode or ("linked" if disk_mode_supported(self.gallery) else "copy"))
        mode = validate.enum("properties.localCompute.osDiskMode", mode.lower(), OS_DISK_MODES)
        if mode == "linked" and not disk_mode_supported(self.gallery):
            raise InvalidArgument("properties.localCompute.osDiskMode: linked clones need disk "
                                  "create --linked, which this build has not got; use copy",
                                  target="properties.localCompute.osDiskMode")
        sizes = []
        for gb in data_disk_sizes_gb or ():
            if isinstance(gb, bool) or not isinstance(gb, int) or not 1 <= gb <= MAX_DATA_DISK_GB:
                raise InvalidArgument(f"properties.storageProfile.dataDisks.diskSizeGB: '{gb}' "
                                      f"must be an integer from 1 to {MAX_DATA_DISK_GB}",
                                      target="properties.storageProfile.dataDisks")
            sizes.append(gb)
        choice = self.resolve_image(image, rg, location, viewer)
        defn = choice.definition
        sec = rules.security(defn, security_type, enable_secure_boot, enable_vtpm)
        prof = rules.os_profile(defn, vm_name=name, specialized=specialized,
                                admin_username=admin_username, ssh_keys=list(ssh_key_values),
                                computer_name=computer_name, custom_data=custom_data,
                                custom_data_bytes=custom_data_bytes)
        size_name, vcpus, mem = rules.size(size)
        return {"choice": choice, "security": sec, "osProfile": prof, "size": size_name,
                "vcpus": vcpus, "memoryMiB": mem, "osDiskMode": mode, "emptyDisks": sizes}

    def provision(self, plan: dict, rg: str, name: str, location: str,
                  owner_id: str | None = None) -> dict:
        """Make the VM's disks (marked attached to ``owner_id``, the VM's ARM id) and seed;
        returns its properties (nothing registered as a VM yet). A failure removes what it
        made."""
        owner_id = owner_id or arm_vm.vm_id(self.repo.subscription_of(rg), rg, name)
        choice: ImageChoice = plan["choice"]
        vm_uuid = str(uuid.uuid4())
        rt = os.path.join(self.home.root, "compute", "vms", vm_uuid)
        made: list[dict] = []
        props: dict = {"localCompute": {"runtimeDir": rt, "disks": made}}
        try:
            os.makedirs(rt)
            linked = plan["osDiskMode"] == "linked"
            tag = vm_uuid.replace("-", "")[:12]
            made.append(self._disk_from_image(rg, f"{name}_OsDisk_1_{tag}", choice, None,
                                              location, linked))
            for lun in choice.data_luns:
                made.append(self._disk_from_image(rg, f"{name}_lun_{lun}_{tag}", choice, lun,
                                                  location, linked))
            nxt = (max(choice.data_luns) + 1) if choice.data_luns else 0
            for i, gb in enumerate(plan["emptyDisks"]):
                made.append(self._empty_disk(rg, f"{name}_lun_{nxt + i}_{tag}", nxt + i, gb,
                                             location))
            for d in made:
                self._attach(d, owner_id)
            prof: rules.OsProfile | None = plan["osProfile"]
            seed_path = None
            iid = None
            if prof is not None:
                content = SeedContent(prof.computer_name, prof.admin_username,
                                      list(prof.ssh_keys), prof.custom_data)
                iid = content.instance_id
                seed_path = write_seed(os.path.join(rt, "seed.iso"), content)
        except BaseException:
            self.discard(rg, props)
            raise
        return self._properties(plan, vm_uuid, rt, made, seed_path, iid)

    def _properties(self, plan: dict, vm_uuid: str, rt: str, made: list[dict],
                    seed_path: str | None, iid: str | None) -> dict:
        choice: ImageChoice = plan["choice"]
        defn = choice.definition
        os_disk = made[0]
        sub_of = self.repo.subscription_of
        props: dict = {
            "vmId": vm_uuid,
            "hardwareProfile": {"vmSize": plan["size"]},
            "storageProfile": {
                "imageReference": {choice.reference_key: choice.requested_id,
                                   "exactVersion": choice.version_name},
                "osDisk": {"osType": defn.get("osType", "Linux"), "name": os_disk["name"],
                           "createOption": "FromImage", "caching": "ReadWrite",
                           "deleteOption": "Detach", "diskSizeGB": os_disk["sizeGB"],
                           "managedDisk": {"id": ids.disk_id(sub_of(os_disk["rg"]), os_disk["rg"], os_disk["name"]),
                                           "storageAccountType": "Standard_LRS"}},
                "dataDisks": [
                    {"lun": d["lun"], "name": d["name"], "createOption": d["createOption"],
                     "caching": "None", "deleteOption": "Detach", "diskSizeGB": d["sizeGB"],
                     "managedDisk": {"id": ids.disk_id(sub_of(d["rg"]), d["rg"], d["name"]),
                                     "storageAccountType": "Standard_LRS"}}
                    for d in made[1:]],
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            "networkProfile": {"networkInterfaces": []},
            "provisioningState": "Succeeded",
            "timeCreated": validate.iso(validate.now_utc()),
        }
        if plan["osProfile"] is not None:
            props["osProfile"] = plan["osProfile"].arm()
        sec = plan["security"].arm()
        if sec is not None:
            props["securityProfile"] = sec
        props["localCompute"] = {
            "runtimeDir": rt,
            "imageVersionId": choice.version_id,
            "hyperVGeneration": defn.get("hyperVGeneration") or "V1",
            "osState": "Specialized",
            "sourceOsState": defn.get("osState") or "Generalized",
            "computerName": plan["osProfile"].computer_name if plan["osProfile"] else None,
            "power": "deallocated",
            "vcpus": plan["vcpus"],
            "memoryMiB": plan["memoryMiB"],
            "osDiskMode": plan["osDiskMode"],
            "seed": seed_path,
            "cloudInitInstanceId": iid,
            "serialLog": os.path.join(rt, qemu.SERIAL_LOG),
            "disks": [{k: d[k] for k in ("lun", "name", "rg", "path", "format")} for d in made],
        }
        return props

    def _disk_from_image(self, rg: str, dname: str, choice: ImageChoice, lun: int | None,
                         location: str, linked: bool) -> dict:
        kw = {"linked": True, "fmt": "qcow2"} if linked else {"fmt": "raw"}
        if choice.viewer is not None:
            kw["viewer"] = choice.viewer
        d = self.gallery.disks.create(rg, dname, choice.version_id, lun=lun,
                                      location=location, **kw)
        ls = d["properties"]["localStorage"]
        return {"lun": lun, "name": dname, "rg": rg, "path": ls["path"], "format": ls["format"],
                "sizeGB": d["properties"]["diskSizeGB"], "createOption": "FromImage"}

    def _empty_disk(self, rg: str, dname: str, lun: int, gb: int, location: str) -> dict:
        validate.disk_name(dname)
        with self.gallery.disks.creating():  # a file with no row yet: not reclaimable
            return self._empty_disk_file(rg, dname, lun, gb, location)

    def _empty_disk_file(self, rg: str, dname: str, lun: int, gb: int, location: str) -> dict:
        path = os.path.join(self.home.root, "disks", f"{dname}.raw")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.ftruncate(fd, gb << 30)
            os.fsync(fd)
        finally:
            os.close(fd)
        props = {"creationData": {"createOption": "Empty"}, "diskSizeGB": gb,
                 "diskSizeBytes": gb << 30, "timeCreated": validate.iso(validate.now_utc()),
                 "provisioningState": "Succeeded", "diskState": "Unattached",
                 "uniqueId": str(uuid.uuid4()), "osType": None,
                 "localStorage": {"path": path, "format": "raw", "virtualSize": gb << 30,
                                  "writtenBytes": 0}}
        props.pop("osType")
        try:
            with self.repo.transaction():
                self.repo.insert_disk(rg, dname, location, {}, props, path, "raw")
        except BaseException:
            os.unlink(path)
            raise
        return {"lun": lun, "name": dname, "rg": rg, "path": path, "format": "raw",
                "sizeGB": gb, "createOption": "Empty"}

    def _attach(self, d: dict, owner_id: str | None) -> None:
        """Mark a managed disk attached to a VM (``diskState`` Attached, the VM's id in
        ``localStorage.attachedTo``: the disk service then refuses to delete it) or, with
        None, unattached again."""
        with self.repo.transaction():
            row = self.repo.find_disk(d["rg"], d["name"])
            if row is None:
                return
            props = json.loads(row.props)
            local = props.setdefault("localStorage", {})
            if owner_id:
                props["diskState"] = "Attached"
                local["attachedTo"] = owner_id
            else:
                props["diskState"] = "Unattached"
                local.pop("attachedTo", None)
            self.repo.update_disk_props(row.id, props)

    def discard(self, rg: str, props: dict, *, disks: bool = True) -> None:
        """Remove what :meth:`provision` made (a failed create, or a delete); with
        ``disks=False`` the disks stay, detached."""
        lc = props.get("localCompute", {})
        for d in lc.get("disks", []):
            d = {"rg": rg, **d}
            self._attach(d, None)
            if disks:
                try:
                    self.gallery.disks.delete(d["rg"], d["name"], delete_file=True)
                except NotFound:
                    pass
        rt = lc.get("runtimeDir")
        if rt and os.path.isdir(rt):
            shutil.rmtree(rt, ignore_errors=True)

    # -- power -----------------------------------------------------------------------------------

    def _set_power(self, row: VmRow, power: str, **extra) -> None:
        with self.repo.transaction():
            fresh = self.repo.find_vm(row.rg, row.name)
            if fresh is None:
                return
            props = fresh.properties
            props["localCompute"]["power"] = power
            props["localCompute"].update(extra)
            self.repo.update_vm(fresh.id, props)

    def launch_spec(self, row: VmRow) -> qemu.LaunchSpec:
        props = row.properties
        lc = props["localCompute"]
        sec = (props.get("securityProfile") or {})
        uefi = sec.get("uefiSettings") or {}
        tl = sec.get("securityType") == "TrustedLaunch"
        disks = []
        for d in lc["disks"]:
            if not os.path.exists(d["path"]):
                raise NotFound(f"disk '{d['name']}' of VM '{row.name}': file {d['path']} is "
                               f"gone", target="properties.storageProfile")
            disks.append(qemu.DiskSpec(d["path"], "vpc" if d["format"].startswith("vhd-")
                                       or d["format"] == "vhd" else
                                       ("vhdx" if d["format"].startswith("vhdx") else d["format"]),
                                       "os" if d["lun"] is None else f"lun{d['lun']}"))
        if lc.get("seed"):
            disks.append(qemu.DiskSpec(lc["seed"], "raw", "cidata", readonly=True))
        return qemu.LaunchSpec(
            name=row.name, runtime_dir=lc["runtimeDir"], generation=lc["hyperVGeneration"],
            trusted_launch=tl, secure_boot=bool(uefi.get("secureBootEnabled")),
            vtpm=tl and bool(uefi.get("vTpmEnabled")), vcpus=lc["vcpus"],
            memory_mib=lc["memoryMiB"], disks=disks, accel=qemu.choose_accel())

    def start_row(self, row: VmRow) -> None:
        lc = row.properties["localCompute"]
        if lc.get("osState") == "Generalized":
            raise OperationNotAllowed(f"Operation 'start' is not allowed on VM '{row.name}' "
                                      f"since the VM is generalized.", target="vmName")
        if qemu.running_pid(lc["runtimeDir"]):
            return
        spec = self.launch_spec(row)
        qemu.start(spec)
        self._set_power(row, "running", accel=spec.accel)

    def start(self, rg: str, name: str) -> dict:
        self.start_row(self.row(rg, name))
        return self.show(rg, name)

    def stop_row(self, row: VmRow, *, timeout: float = 60.0, deallocate: bool = False,
                 force: bool = False) -> str:
        lc = row.properties["localCompute"]
        how = qemu.stop(lc["runtimeDir"], row.name, timeout=timeout, force=force)
        if deallocate:
            try:
                os.unlink(os.path.join(lc["runtimeDir"], qemu.SERIAL_LOG))
            except FileNotFoundError:
                pass
            self._set_power(row, "deallocated")
        elif lc.get("power") != "deallocated" or how != "not-running":
            self._set_power(row, "stopped")
        return how

    def stop(self, rg: str, name: str, *, timeout: float = 60.0) -> dict:
        self.stop_row(self.row(rg, name), timeout=timeout)
        return self.show(rg, name)

    def deallocate(self, rg: str, name: str, *, timeout: float = 60.0) -> dict:
        self.stop_row(self.row(rg, name), timeout=timeout, deallocate=True)
        return self.show(rg, name)

    def restart(self, rg: str, name: str, *, timeout: float = 60.0) -> dict:
        row = self.row(rg, name)
        if self.power(row) != "running":
            raise OperationNotAllowed(f"Operation 'restart' is not allowed on VM '{name}' since "
                                      f"the VM is {self.power(row)}.", target="vmName")
        self.stop_row(row, timeout=timeout)
        self.start_row(self.row(rg, name))
        return self.show(rg, name)

    def generalize(self, rg: str, name: str, *, deprovision: bool = False) -> dict:
        row = self.row(rg, name)
        if self.power(row) == "running":
            raise OperationNotAllowed(f"Operation 'generalize' is not allowed on VM '{name}' "
                                      f"since the VM is running.", target="vmName")
        done: list[str] = []
        if deprovision:
            from .deprovision import deprovision_disk

            os_disk = row.properties["localCompute"]["disks"][0]
            done = deprovision_disk(os_disk["path"], os_disk["format"])
        self._set_power(row, self.power(row), osState="Generalized",
                        **({"deprovisioned": done} if deprovision else {}))
        return self.show(rg, name)

    # -- delete ----------------------------------------------------------------------------------

    def delete_row(self, row: VmRow, *, delete_disks: bool) -> None:
        lc = row.properties["localCompute"]
        qemu.stop(lc["runtimeDir"], row.name, force=True)
        with self.repo.transaction():
            self.repo.delete_vm(row.id)
        self.discard(row.rg, row.properties, disks=delete_disks)

    def delete(self, rg: str, name: str, *, delete_disks: bool = False) -> None:
        self.delete_row(self.row(rg, name), delete_disks=delete_disks)

    # -- capture ---------------------------------------------------------------------------------

    def capture_sources(self, vm_ref: str, rg: str, definition: dict) -> dict:
        """What ``sig image-version create --virtual-machine`` captures: the VM's OS disk and
        data disks by LUN, after Azure's checks (stopped, OS state and generation match the
        definition). Linked (qcow2) disks are read through their parent in the store's
        ``linked-parents/`` (``allowParentDir``)."""
        vrg, vname = parse_vm_ref(vm_ref, rg)
        row = self.row(vrg, vname)
        vid = arm_vm.vm_id(row.subscription, vrg, vname)
        lc = row.properties["localCompute"]
        if self.power(row) == "running":
            raise OperationNotAllowed(
                f"Cannot create Gallery Image Version from: {vid} since the VM is running. "
                f"Stop or deallocate the VM first.", target="properties.storageProfile.source.id")
        gen, dgen = lc.get("hyperVGeneration", "V1"), definition.get("hyperVGeneration") or "V1"
        if gen != dgen:
            raise Conflict(
                f"The resource with id '{vid}' has a different Hypervisor generation ['{gen}'] "
                f"than the parent gallery image Hypervisor generation ['{dgen}'].",
                target="properties.storageProfile.source.id")
        state = lc.get("osState", "Specialized")
        want = definition.get("osState") or "Generalized"
        if state != want:
            raise InvalidArgument(
                f"Cannot create Gallery Image Version from: {vid} since the OS State in the "
                f"parent gallery image ('{want}') is not '{state}'.",
                target="properties.storageProfile.source.id", code="InvalidParameter")
        paths: list[tuple[int | None, str]] = []
        linked = False
        for d in lc["disks"]:
            if not os.path.exists(d["path"]):
                raise NotFound(f"disk '{d['name']}' of VM '{vname}': file {d['path']} is gone")
            linked = linked or d["format"] == "qcow2"
            paths.append((d["lun"], d["path"]))
        # a linked disk is a qcow2 overlay whose read-only parent the store keeps in
        # linked-parents/: the capture reads the overlay through its backing file there
        parents = os.path.join(self.home.root, "linked-parents") if linked else None
        return {"vmId": vid, "os": paths[0][1], "data": paths[1:], "allowParentDir": parents}


def parse_vm_ref(text: str, rg: str) -> tuple[str, str]:
    """A VM's full ARM id or its name (in ``rg``) -> (rg, name)."""
    raw = (text or "").strip()
    if raw.startswith("/"):
        parts = raw.strip("/").split("/")
        keys = [p.lower() for p in parts[0::2]]
        if len(parts) != 8 or keys != ["subscriptions", "resourcegroups", "providers",
                                       "virtualmachines"] or parts[5].lower() != "microsoft.compute":
            raise InvalidArgument(f"properties.storageProfile.source.id: '{text}' is not a "
                                  f"virtual machine id", target="properties.storageProfile.source.id")
        return parts[3], parts[7]
    return rg, rules.vm_name(raw, "properties.storageProfile.source.id")

