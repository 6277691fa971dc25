"""VMs and scale sets on the REST API, driven by the real azure-mgmt-compute client
(``virtual_machines``, ``virtual_machine_scale_sets``, ``virtual_machine_scale_set_vms`` and
their pollers) against a real ``imagestore serve``: Azure's rules come back as ARM error
bodies, and the API and the CLI print the same JSON."""

from __future__ import annotations

import base64

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.compute import rules
from imagestore.compute.seed import read_seed
from tests.api.conftest import SUB, start_server
from tests.compute.conftest import KEY, small_os_disk
from tests.conftest import Cli

pytestmark = pytest.mark.one_pass

RG = f"{SUB}/resourceGroups/default/providers/Microsoft.Compute"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vm-api")
    store = str(tmp / "store")
    run = Cli(store)
    osd = small_os_disk(tmp / "os.raw")
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "lin", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "tl", "-p", "P", "-f", "O",
             "-s", "S2", "--os-type", "Linux", "--hyper-v-generation", "V2", "--features",
             "SecurityType=TrustedLaunch")
    for d in ("lin", "tl"):
        run.json("sig", "image-version", "create", "-r", "g", "-i", d, "-e", "1.0.0",
                 "--os-vhd-uri", osd)
    s = start_server(store)
    s.cli = run
    yield s
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


def os_profile(host: str = "api-host") -> m.OSProfile:
    return m.OSProfile(
        computer_name=host, admin_username="azureuser",
        custom_data=base64.b64encode(b"#cloud-config\nruncmd: [true]\n").decode(),
        linux_configuration=m.LinuxConfiguration(
            disable_password_authentication=True,
            ssh=m.SshConfiguration(public_keys=[m.SshPublicKey(
                path="/home/azureuser/.ssh/authorized_keys", key_data=KEY)])))


def vm_body(image: str, osp: m.OSProfile | None, **props) -> m.VirtualMachine:
    return m.VirtualMachine(location="local", properties=m.VirtualMachineProperties(
        hardware_profile=m.HardwareProfile(vm_size="Standard_B1s"),
        storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=image)),
        os_profile=osp, **props))


def test_vm_through_the_sdk(server):
    c = ComputeManagementClient(**sdk_kwargs(server.url, server.token()))
    lin = f"{RG}/galleries/g/images/lin"
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_create_or_update("default", "vm0", vm_body(lin, None)).result()
    assert e.value.status_code == 400 and e.value.error.code == "InvalidParameter"
    assert e.value.error.message == rules.OS_PROFILE_MISSING
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_create_or_update(
            "default", "vm0", vm_body(f"{RG}/galleries/g/images/tl", os_profile())).result()
    assert e.value.error.message == rules.TL_ONLY
    vm = c.virtual_machines.begin_create_or_update("default", "vm1",
                                                   vm_body(lin, os_profile())).result()
    assert vm.id == f"{RG}/virtualMachines/vm1"
    sp = vm.properties.storage_profile
    assert sp.image_reference.id == lin and sp.image_reference.exact_version == "1.0.0"
    assert sp.os_disk.create_option == "FromImage"
    assert vm.properties.os_profile.computer_name == "api-host"
    assert vm.properties.hardware_profile.vm_size == "Standard_B1s"
    cli = server.cli.json("vm", "show", "-n", "vm1")
    assert vm.as_dict() == cli  # the same JSON on both interfaces
    label, files = read_seed(cli["properties"]["localCompute"]["seed"])
    assert label == "cidata" and b"local-hostname: api-host" in files["meta-data"]
    assert base64.b64encode(b"#cloud-config\nruncmd: [true]\n") in files["user-data"]
    got = c.virtual_machines.get("default", "vm1", expand="instanceView")
    codes = [s.code for s in got.properties.instance_view.statuses]
    assert codes == ["ProvisioningState/succeeded", "PowerState/deallocated"]
    iv = c.virtual_machines.instance_view("default", "vm1")
    assert iv.statuses[1].code == "PowerState/deallocated"
    assert [x.name for x in c.virtual_machines.list("default")] == ["vm1"]
    assert "vm1" in [x.name for x in c.virtual_machines.list_all()]
    c.virtual_machines.generalize("default", "vm1")
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_start("default", "vm1").result()
    assert e.value.status_code == 409
    assert e.value.error.message == ("Operation 'start' is not allowed on VM 'vm1' since the "
                                     "VM is generalized.")
    c.virtual_machines.begin_delete("default", "vm1").result()
    with pytest.raises(ResourceNotFoundError):
        c.virtual_machines.get("default", "vm1")


def test_scale_set_through_the_sdk(server):
    c = ComputeManagementClient(**sdk_kwargs(server.url, server.token()))
    lin = f"{RG}/galleries/g/images/lin/versions/1.0.0"
    osp = m.VirtualMachineScaleSetOSProfile(
        computer_name_prefix="api", admin_username="azureuser",
        linux_configuration=m.LinuxConfiguration(ssh=m.SshConfiguration(public_keys=[
            m.SshPublicKey(path="/home/azureuser/.ssh/authorized_keys", key_data=KEY)])))
    body = m.VirtualMachineScaleSet(
        location="local", sku=m.Sku(name="Standard_B1s", capacity=2),
        properties=m.VirtualMachineScaleSetProperties(
            upgrade_policy=m.UpgradePolicy(mode="Manual"),
            virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
                os_profile=osp, storage_profile=m.VirtualMachineScaleSetStorageProfile(
                    image_reference=m.ImageReference(id=lin)))))
    ss = c.virtual_machine_scale_sets.begin_create_or_update("default", "ss", body).result()
    assert ss.sku.capacity == 2
    inst = list(c.virtual_machine_scale_set_vms.list("default", "ss"))
    assert [i.instance_id for i in inst] == ["0", "1"]
    assert [i.properties.os_profile.computer_name for i in inst] == ["api000000", "api000001"]
    body.sku.capacity = 3
    ss = c.virtual_machine_scale_sets.begin_create_or_update("default", "ss", body).result()
    assert ss.sku.capacity == 3
    one = c.virtual_machine_scale_set_vms.get("default", "ss", "2")
    assert one.properties.storage_profile.image_reference.exact_version == "1.0.0"
    assert c.virtual_machine_scale_sets.get("default", "ss").as_dict() == server.cli.json(
        "vmss", "show", "-n", "ss")
    c.virtual_machine_scale_sets.begin_delete("default", "ss").result()
    assert list(c.virtual_machine_scale_sets.list("default")) == []
