"""Scale sets: distinct instances; a pinned version deleted -> scale-out fails with a named
error and the capacity stays (existing instances still boot); on a definition id new
instances take the new latest while old ones keep theirs; scale-in; the osProfile rules."""

from __future__ import annotations

import time

import pytest

from imagestore.compute import qemu, rules
from tests.compute.conftest import KEY
from tests.conftest import Cli
from tests.helpers import fails

pytestmark = pytest.mark.one_pass


@pytest.fixture
def ss_gallery(boot_disks, tmp_path):
    run = Cli(str(tmp_path / "store"))
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "spec", "-p", "P", "-f",
             "O", "-s", "S2", "--os-type", "Linux", "--os-state", "Specialized")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", boot_disks["gen1"])
    run.boot_disks = boot_disks
    try:
        yield run
    finally:
        for ss in run.json("vmss", "list"):
            run("vmss", "delete", "-n", ss["name"])


def creds() -> list[str]:
    return ["--admin-username", "azureuser", "--ssh-key-values", KEY]


def exact_versions(run, name) -> dict[str, str]:
    return {i["instanceId"]: i["properties"]["storageProfile"]["imageReference"]["exactVersion"]
            for i in run.json("vmss", "list-instances", "-n", name)}


def test_instances_distinct_and_latest_only_for_new_ones(ss_gallery):
    run = ss_gallery
    ss = run.json("vmss", "create", "-n", "web", "--image", "g/d", "--instance-count", "2",
                  *creds())
    assert ss["type"] == "Microsoft.Compute/virtualMachineScaleSets"
    assert ss["sku"]["capacity"] == 2
    vmp = ss["properties"]["virtualMachineProfile"]
    assert vmp["osProfile"]["computerNamePrefix"] == "web"
    assert vmp["storageProfile"]["imageReference"]["id"].endswith("/galleries/g/images/d")
    inst = run.json("vmss", "list-instances", "-n", "web")
    assert [i["name"] for i in inst] == ["web_0", "web_1"]
    names = [i["properties"]["osProfile"]["computerName"] for i in inst]
    assert names == ["web000000", "web000001"]
    lc = [i["properties"]["localCompute"] for i in inst]
    assert len({x["cloudInitInstanceId"] for x in lc}) == 2
    assert len({x["runtimeDir"] for x in lc}) == 2
    assert len({x["disks"][0]["path"] for x in lc}) == 2
    assert exact_versions(run, "web") == {"0": "1.0.0", "1": "1.0.0"}
    # a new latest: only new instances take it
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.1.0",
             "--os-vhd-uri", run.boot_disks["gen1"])
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "9.0.0",
             "--os-vhd-uri", run.boot_disks["gen1"], "--exclude-from-latest")
    assert run.json("vmss", "scale", "-n", "web", "--new-capacity", "3")["sku"]["capacity"] == 3
    assert exact_versions(run, "web") == {"0": "1.0.0", "1": "1.0.0", "2": "1.1.0"}
    # scale-in removes the highest instance ids with their disks
    gone = run.json("vmss", "list-instances", "-n", "web")[1:]
    assert run.json("vmss", "scale", "-n", "web", "--new-capacity", "1")["sku"]["capacity"] == 1
    assert list(exact_versions(run, "web")) == ["0"]
    left = {d["name"] for d in run.json("disk", "list")}
    assert not left & {d["name"] for i in gone for d in i["properties"]["localCompute"]["disks"]}
    # the next instance id is never reused
    run.json("vmss", "scale", "-n", "web", "--new-capacity", "2")
    assert list(exact_versions(run, "web")) == ["0", "3"]


def test_pinned_deleted_version_cannot_scale_out_but_instances_boot(ss_gallery):
    run = ss_gallery
    run.json("vmss", "create", "-n", "pin", "--image", "g/d/1.0.0", "--instance-count", "2",
             *creds())
    disks_before = {d["name"] for d in run.json("disk", "list")}
    r = run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert r.exit_code == 0, r.stderr
    fails(run("vmss", "scale", "-n", "pin", "--new-capacity", "3"), 4,
          "Virtual machine scale set 'pin' cannot add instance 2: its image reference",
          "/images/d/versions/1.0.0 is not available")
    assert run.json("vmss", "show", "-n", "pin")["sku"]["capacity"] == 2
    assert {d["name"] for d in run.json("disk", "list")} == disks_before
    # existing instances are not affected: boot one
    run.json("vmss", "start", "-n", "pin", "--instance-ids", "1")
    inst = run.json("vmss", "list-instances", "-n", "pin")
    assert [i["properties"]["localCompute"]["powerState"] for i in inst] == [
        "PowerState/deallocated", "PowerState/running"]
    rt = inst[1]["properties"]["localCompute"]["runtimeDir"]
    deadline = time.monotonic() + 240
    while "imagestore-guest: ready" not in qemu.serial_log(rt) and time.monotonic() < deadline:
        if qemu.running_pid(rt) is None:
            break
        time.sleep(0.5)
    log = qemu.serial_log(rt)
    assert "imagestore-guest: marker=IMAGESTORE-BOOT-OK" in log, log[-1500:]
    assert "hostname=pin000001" in log
    out = run.json("vmss", "stop", "-n", "pin", "--instance-ids", "1")
    assert out[1]["properties"]["localCompute"]["powerState"] == "PowerState/stopped"


def test_scale_set_rules(ss_gallery):
    run = ss_gallery
    fails(run("vmss", "create", "-n", "s1", "--image", "g/d"), 3,
          "Required parameter 'osProfile' is missing (null).")
    fails(run("vmss", "create", "-n", "s1", "--image", "g/d", "--security-type",
              "TrustedLaunch", *creds()), 3, rules.TL_NOT_SUPPORTED)
    fails(run("vmss", "create", "-n", "s1", "--image", "g/d", "--instance-count", "101",
              *creds()), 3, "sku.capacity")
    fails(run("vmss", "scale", "-n", "ghost", "--new-capacity", "1"), 4,
          "virtualMachineScaleSets/ghost")
    assert run.json("vmss", "list") == []
    assert run.json("disk", "list") == []
    run.json("sig", "image-version", "create", "-r", "g", "-i", "spec", "-e", "1.0.0",
             "--os-vhd-uri", run.boot_disks["gen1"])
    fails(run("vmss", "create", "-n", "s2", "--image", "g/spec", *creds()), 3,
          "Parameter 'osProfile' is not allowed.")
    ss = run.json("vmss", "create", "-n", "s2", "--image", "g/spec", "--specialized",
                  "--instance-count", "1")
    assert "osProfile" not in ss["properties"]["virtualMachineProfile"]
    inst = run.json("vmss", "list-instances", "-n", "s2")
    assert "osProfile" not in inst[0]["properties"]
    assert inst[0]["type"] == "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
    assert inst[0]["id"].endswith("/virtualMachineScaleSets/s2/virtualMachines/0")
    r = run("vmss", "delete", "-n", "s2")
    assert r.exit_code == 0, r.stderr
    assert run.json("disk", "list") == []
