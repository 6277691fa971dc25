"""VMs, scale sets and scale set instances as the CLI prints them, read by the real
azure-mgmt-compute models (typespec 39.x installed, msrest 37.x beside it) with the checker
of tests/gallery/sdk_shape.py: every key known to the model (outside
``properties.localCompute``), every value read back equal, every enum value one the SDK
defines."""

from __future__ import annotations

import pytest

from tests.compute.conftest import KEY, small_os_disk
from tests.conftest import Cli
from tests.gallery.sdk_shape import Report, ShapeError, msrest_style, typespec_style

pytestmark = pytest.mark.one_pass


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vm-shape")
    run = Cli(str(tmp / "store"))
    osd = small_os_disk(tmp / "os.raw")
    data = small_os_disk(tmp / "data.raw", 2 << 20)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "tl", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux", "--hyper-v-generation", "V2", "--features",
             "SecurityType=TrustedLaunchSupported")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "sp", "-p", "P", "-f", "O",
             "-s", "S2", "--os-type", "Linux", "--os-state", "Specialized")
    for d in ("tl", "sp"):
        run.json("sig", "image-version", "create", "-r", "g", "-i", d, "-e", "1.0.0",
                 "--os-vhd-uri", osd, "--data-vhds-uris", data, "--data-vhds-luns", "2")
    creds = ["--admin-username", "azureuser", "--ssh-key-values", KEY]
    out: list[tuple[str, str, dict]] = []
    out.append(("vm create TL", "VirtualMachine", run.json(
        "vm", "create", "-n", "vm1", "--image", "g/tl", *creds, "--security-type",
        "TrustedLaunch", "--data-disk-sizes-gb", "1", "--tags", "a=b")))
    out.append(("vm create specialized", "VirtualMachine", run.json(
        "vm", "create", "-n", "vm2", "--image", "g/sp/1.0.0", "--specialized",
        "--os-disk-mode", "copy")))
    out.append(("vm generalize", "VirtualMachine", run.json("vm", "generalize", "-n", "vm2")))
    out.append(("vm get-instance-view", "VirtualMachine",
                run.json("vm", "get-instance-view", "-n", "vm2")))
    out += [("vm list", "VirtualMachine", d) for d in run.json("vm", "list")]
    out.append(("vmss create", "VirtualMachineScaleSet", run.json(
        "vmss", "create", "-n", "ss", "--image", "g/tl", "--instance-count", "2", *creds,
        "--security-type", "TrustedLaunch", "--enable-secure-boot", "false")))
    out.append(("vmss scale", "VirtualMachineScaleSet",
                run.json("vmss", "scale", "-n", "ss", "--new-capacity", "1")))
    out += [("vmss list", "VirtualMachineScaleSet", d) for d in run.json("vmss", "list")]
    out += [("vmss list-instances", "VirtualMachineScaleSetVM", d)
            for d in run.json("vmss", "list-instances", "-n", "ss")]
    return out


@pytest.fixture(scope="module", params=["typespec", "msrest"])
def style(request):
    return typespec_style() if request.param == "typespec" else msrest_style()


def test_vm_and_vmss_documents_read_back(docs, style):
    rep = Report()
    errors = []
    for label, model, doc in docs:
        try:
            style.check(model, doc, rep)
        except ShapeError as e:
            errors.append(f"{label} ({model}): {e}")
    assert not errors, "\n".join(errors)
    must = {
        "$.properties.hardwareProfile.vmSize",
        "$.properties.storageProfile.osDisk.createOption",
        "$.properties.storageProfile.dataDisks[].createOption",
        "$.properties.storageProfile.osDisk.osType",
        "$.properties.securityProfile.securityType",
        "$.properties.virtualMachineProfile.storageProfile.osDisk.createOption",
        "$.properties.upgradePolicy.mode",
        "$.properties.instanceView.statuses[].level",
        "$.properties.instanceView.hyperVGeneration",
    }
    assert must <= set(rep.enum_fields), sorted(must - set(rep.enum_fields))
    assert rep.keys >= 200, rep.keys
