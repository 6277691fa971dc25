"""Real boots under qemu (TCG) of the fixture disks (fixtures/vm/build-boot-disks.sh): a
Gen1 VM (SeaBIOS) with data disks at their LUNs and the cloud-init seed's hostname; the
stop/generalize/capture cycle and a VM from the captured version that still boots after the
version is deleted; a Gen2 Trusted Launch VM (OVMF secure boot + swtpm TPM 2.0).

Assertions are on the guest's serial markers ("imagestore-guest: …"), never on wall time; the
waits are upper bounds for a loaded 2-core machine."""

from __future__ import annotations

import os
import time

import pytest

from imagestore.compute import qemu
from tests.compute.conftest import KEY, data_disk
from tests.conftest import Cli
from tests.helpers import fails

pytestmark = pytest.mark.one_pass

READY = "imagestore-guest: ready"
BOOT_WAIT = 240.0  # seconds; a TCG boot takes 5-15 s (Gen1) / 15-50 s (TL with SMM) here


def guest(log: str) -> list[str]:
    return [ln.split("imagestore-guest: ", 1)[1].strip() for ln in log.splitlines()
            if "imagestore-guest: " in ln]


def wait_ready(run: Cli, name: str, timeout: float = BOOT_WAIT) -> list[str]:
    rt = run.json("vm", "show", "-n", name)["properties"]["localCompute"]["runtimeDir"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = run("vm", "boot-diagnostics", "get-boot-log", "-n", name).stdout
        if READY in log:
            return guest(log)
        if qemu.running_pid(rt) is None:
            break
        time.sleep(0.5)
    log = run("vm", "boot-diagnostics", "get-boot-log", "-n", name).stdout
    pytest.fail(f"VM {name} printed no '{READY}' (serial log tail: {log[-1500:]!r})")


@pytest.fixture(scope="module")
def booted(boot_disks, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vm-boot")
    run = Cli(str(tmp / "store"))
    run.tmp = tmp
    lun1 = data_disk(tmp / "lun1.raw", "IMAGESTORE-DATA-LUN1")
    lun3 = data_disk(tmp / "lun3.raw", "IMAGESTORE-DATA-LUN3")
    lun0 = data_disk(tmp / "lun0.raw", "IMAGESTORE-DATA-TL-LUN0")
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "gen1", "-p", "P", "-f", "O",
             "-s", "gen1", "--os-type", "Linux")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "tl", "-p", "P", "-f", "O",
             "-s", "tl", "--os-type", "Linux", "--hyper-v-generation", "V2",
             "--features", "SecurityType=TrustedLaunch")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "gen1", "-e", "1.0.0",
             "--os-vhd-uri", boot_disks["gen1"], "--data-vhds-uris", lun1, lun3,
             "--data-vhds-luns", "1", "3")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "tl", "-e", "1.0.0",
             "--os-vhd-uri", boot_disks["gen2"], "--data-vhds-uris", lun0,
             "--data-vhds-luns", "0")
    # the slow Trusted Launch boot runs while the Gen1 test does its work
    run.json("vm", "create", "-n", "tl1", "--image", "g/tl", "--admin-username", "azureuser",
             "--ssh-key-values", KEY, "--security-type", "TrustedLaunch",
             "--computer-name", "tl-host")
    run.json("vm", "start", "-n", "tl1")
    try:
        yield run
    finally:
        for vm in run.json("vm", "list"):
            run("vm", "delete", "-n", vm["name"], "--delete-disks")


def test_gen1_boot_stop_capture_and_boot_after_version_delete(booted):
    run = booted
    vm = run.json("vm", "create", "-n", "vm1", "--image", "g/gen1", "--admin-username",
                  "azureuser", "--ssh-key-values", KEY, "--computer-name", "host-one")
    assert vm["properties"]["localCompute"]["hyperVGeneration"] == "V1"
    started = run.json("vm", "start", "-n", "vm1")
    assert started["properties"]["localCompute"]["powerState"] == "PowerState/running"
    g = wait_ready(run, "vm1")
    assert "marker=IMAGESTORE-BOOT-OK fixture=gen1" in g
    assert "firmware=bios" in g and "tpm=none" in g
    assert "previous-boot=none" in g
    seed = next(x for x in g if x.startswith("cidata="))
    assert "hostname=host-one" in seed and "user=azureuser" in seed
    assert vm["properties"]["localCompute"]["cloudInitInstanceId"] in seed
    disks = [x for x in g if x.startswith("disk=")]
    assert disks[0].startswith("disk=vda serial=os ")
    assert disks[1].startswith("disk=vdb serial=lun1 ") and "head=IMAGESTORE-DATA-LUN1" in disks[1]
    assert disks[2].startswith("disk=vdc serial=lun3 ") and "head=IMAGESTORE-DATA-LUN3" in disks[2]
    assert disks[3].startswith("disk=vdd serial=cidata ")
    iv = run.json("vm", "get-instance-view", "-n", "vm1")
    assert iv["properties"]["instanceView"]["statuses"][1]["code"] == "PowerState/running"
    # while it runs: no capture, no generalize
    fails(run("sig", "image-version", "create", "-r", "g", "-i", "gen1", "-e", "2.0.0",
              "--virtual-machine", "vm1"), 5, "since the VM is running")
    fails(run("vm", "generalize", "-n", "vm1"), 5,
          "Operation 'generalize' is not allowed on VM 'vm1' since the VM is running.")
    stopped = run.json("vm", "stop", "-n", "vm1")
    assert stopped["properties"]["localCompute"]["powerState"] == "PowerState/stopped"
    log = run("vm", "boot-diagnostics", "get-boot-log", "-n", "vm1").stdout
    assert "acpi power button pressed, shutting down" in log  # ACPI, not a kill
    run.json("vm", "generalize", "-n", "vm1")
    fails(run("vm", "start", "-n", "vm1"), 5,
          "Operation 'start' is not allowed on VM 'vm1' since the VM is generalized.")
    v = run.json("sig", "image-version", "create", "-r", "g", "-i", "gen1", "-e", "2.0.0",
                 "--virtual-machine", "vm1")
    assert [d["lun"] for d in v["properties"]["storageProfile"]["dataDiskImages"]] == [1, 3]
    vm2 = run.json("vm", "create", "-n", "vm2", "--image", "g/gen1", "--admin-username",
                   "azureuser", "--ssh-key-values", KEY, "--computer-name", "host-two")
    assert vm2["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "2.0.0"
    lc2 = vm2["properties"]["localCompute"]
    assert lc2["osDiskMode"] == "linked"  # qcow2 overlays over the version's shared parent
    assert {d["format"] for d in lc2["disks"]} == {"qcow2"}
    # the version goes; the VM made from it (linked or copied disks) still boots
    r = run("sig", "image-version", "delete", "-r", "g", "-i", "gen1", "-e", "2.0.0")
    assert r.exit_code == 0, r.stderr
    run.json("vm", "start", "-n", "vm2")
    g2 = wait_ready(run, "vm2")
    assert "marker=IMAGESTORE-BOOT-OK fixture=gen1" in g2
    # the captured OS disk carries vm1's last-boot stamp: the capture took the VM's disk
    assert "previous-boot=IMAGESTORE-LASTBOOT:host=host-one:fixture=gen1" in g2
    assert any("hostname=host-two" in x for x in g2)
    assert any(x.startswith("disk=vdc serial=lun3 ") and "IMAGESTORE-DATA-LUN3" in x for x in g2)
    run.json("vm", "deallocate", "-n", "vm2")
    assert run("vm", "boot-diagnostics", "get-boot-log", "-n", "vm2").stdout == ""


def test_trusted_launch_boot(booted):
    run = booted
    g = wait_ready(run, "tl1")
    assert "marker=IMAGESTORE-BOOT-OK fixture=gen2" in g
    assert "firmware=uefi" in g
    assert "secureboot=1" in g  # OVMF secure boot with MS keys: shim -> grub -> signed kernel
    assert "tpm=tpm0 version=2" in g
    assert any("hostname=tl-host" in x for x in g)
    assert any(x.startswith("disk=vdb serial=lun0 ") and "IMAGESTORE-DATA-TL-LUN0" in x
               for x in g)
    rt = run.json("vm", "show", "-n", "tl1")["properties"]["localCompute"]["runtimeDir"]
    nvram = os.path.join(rt, qemu.NVRAM)
    assert os.path.getsize(nvram) == os.path.getsize("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
    assert os.path.exists(os.path.join(rt, "tpm", "tpm2-00.permall"))
    out = run.json("vm", "stop", "-n", "tl1")
    assert out["properties"]["localCompute"]["powerState"] == "PowerState/stopped"
    out = run.json("vm", "deallocate", "-n", "tl1")
    assert out["properties"]["localCompute"]["powerState"] == "PowerState/deallocated"
    assert os.path.exists(nvram)  # guest state (NVRAM, vTPM) survives deallocation
