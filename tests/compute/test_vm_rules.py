"""`vm create` and friends without booting: every Azure rule with its message and exit code,
nothing created on refusal, imageReference/exactVersion, data disks FromImage by LUN, the
cloud-init seed read back with pycdlib, the qemu launch spec per generation."""

from __future__ import annotations

import json
import os

import pytest

from imagestore.compute import rules
from imagestore.compute.seed import read_seed
from imagestore.compute.service import ComputeService
from imagestore.gallery.service import GalleryService
from imagestore.home import Home
from tests.compute.conftest import KEY, data_disk, small_os_disk
from tests.helpers import fails, store_tree_snapshot

pytestmark = pytest.mark.one_pass

INVALID, NOT_FOUND, CONFLICT = 3, 4, 5


@pytest.fixture(scope="module")
def gallery_template(tmp_path_factory):
    """The gallery below, built once per module; each test gets its own copy."""
    from tests.conftest import Cli

    tmp = tmp_path_factory.mktemp("vm-rules")
    run = Cli(str(tmp / "store"))
    _build(run, tmp)
    return run


@pytest.fixture
def gal(gallery_template, tmp_path):
    import shutil

    from tests.conftest import Cli

    shutil.copytree(gallery_template.store, tmp_path / "store")
    run = Cli(str(tmp_path / "store"))
    run.tmp = tmp_path
    run.sources = gallery_template.sources
    return run


def _build(run, tmp_path):
    """Definitions: gen (V1 Generalized), spec (V1 Specialized), tl (V2 TrustedLaunch),
    tls (V2 TrustedLaunchSupported), v2 (V2, no security feature); each with version 1.0.0
    (gen: OS + data LUNs 1 and 3; plus 1.0.1, and 2.0.0 excluded from latest)."""
    run.tmp = tmp_path
    osd = small_os_disk(tmp_path / "os.raw")
    d1 = data_disk(tmp_path / "d1.raw", "IMAGESTORE-DATA-LUN1", 2 << 20)
    d3 = data_disk(tmp_path / "d3.raw", "IMAGESTORE-DATA-LUN3", 3 << 20)
    run.json("sig", "create", "-r", "g")
    defs = {"gen": [], "spec": ["--os-state", "Specialized"],
            "tl": ["--hyper-v-generation", "V2", "--features", "SecurityType=TrustedLaunch"],
            "tls": ["--hyper-v-generation", "V2", "--features",
                    "SecurityType=TrustedLaunchSupported"],
            "v2": ["--hyper-v-generation", "V2"]}
    for i, (name, extra) in enumerate(defs.items()):
        run.json("sig", "image-definition", "create", "-r", "g", "-i", name, "-p", "P", "-f",
                 "O", "-s", f"S{i}", "--os-type", "Linux", *extra)
        more = (["--data-vhds-uris", d1, d3, "--data-vhds-luns", "1", "3"]
                if name == "gen" else [])
        run.json("sig", "image-version", "create", "-r", "g", "-i", name, "-e", "1.0.0",
                 "--os-vhd-uri", osd, *more)
    run.json("sig", "image-version", "create", "-r", "g", "-i", "gen", "-e", "1.0.1",
             "--os-vhd-uri", osd, "--data-vhds-uris", d1, d3, "--data-vhds-luns", "1", "3")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "gen", "-e", "2.0.0",
             "--os-vhd-uri", osd, "--exclude-from-latest")
    run.sources = {"os": osd, 1: d1, 3: d3}


def gen_args(*extra: str) -> list[str]:
    return ["--admin-username", "azureuser", "--ssh-key-values", KEY, *extra]


def refused(run, code: int, message: str, *args: str) -> None:
    """The command fails with ``message`` and leaves the store exactly as it was."""
    before = store_tree_snapshot(run.store)
    r = run(*args)
    fails(r, code, message)
    assert store_tree_snapshot(run.store) == before
    assert run.json("vm", "list") == []


def test_generalized_needs_os_profile(gal):
    refused(gal, INVALID, "Required parameter 'osProfile' is missing (null).",
            "vm", "create", "-n", "vm1", "--image", "g/gen")
    # az's --specialized on a generalized image: no osProfile is sent, ARM asks for it
    refused(gal, INVALID, "Required parameter 'osProfile' is missing (null).",
            "vm", "create", "-n", "vm1", "--image", "g/gen", "--specialized")


def test_specialized_forbids_os_profile(gal):
    refused(gal, INVALID, "Parameter 'osProfile' is not allowed.",
            "vm", "create", "-n", "vm1", "--image", "g/spec", *gen_args())
    refused(gal, INVALID, "Parameter 'osProfile' is not allowed.",
            "vm", "create", "-n", "vm1", "--image", "g/spec", "--specialized",
            "--computer-name", "h1")
    vm = gal.json("vm", "create", "-n", "vm1", "--image", "g/spec", "--specialized")
    assert "osProfile" not in vm["properties"]
    assert vm["properties"]["localCompute"]["seed"] is None
    assert not os.path.exists(os.path.join(vm["properties"]["localCompute"]["runtimeDir"],
                                           "seed.iso"))


def test_trusted_launch_rules(gal):
    for st in ([], ["--security-type", "Standard"]):
        refused(gal, INVALID, rules.TL_ONLY, "vm", "create", "-n", "vm1", "--image", "g/tl",
                *gen_args(*st))
    for d in ("gen", "v2"):
        refused(gal, INVALID, rules.TL_NOT_SUPPORTED, "vm", "create", "-n", "vm1", "--image",
                f"g/{d}", *gen_args("--security-type", "TrustedLaunch"))
    refused(gal, INVALID, rules.UEFI_NEEDS_TL, "vm", "create", "-n", "vm1", "--image", "g/tls",
            *gen_args("--enable-secure-boot", "true"))
    refused(gal, INVALID, "'securityProfile.securityType' is not allowed", "vm", "create", "-n",
            "vm1", "--image", "g/tls", *gen_args("--security-type", "Confidential"))
    vm = gal.json("vm", "create", "-n", "tl1", "--image", "g/tl",
                  *gen_args("--security-type", "TrustedLaunch"))
    assert vm["properties"]["securityProfile"] == {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
    vm = gal.json("vm", "create", "-n", "tl2", "--image", "g/tls",
                  *gen_args("--security-type", "trustedlaunch", "--enable-secure-boot", "false"))
    assert vm["properties"]["securityProfile"]["uefiSettings"] == {
        "secureBootEnabled": False, "vTpmEnabled": True}
    std = gal.json("vm", "create", "-n", "std", "--image", "g/tls", *gen_args())
    assert "securityProfile" not in std["properties"]


def test_definition_id_means_latest_recorded_in_exact_version(gal):
    vm = gal.json("vm", "create", "-n", "vm1", "--image", "g/gen", *gen_args())
    ref = vm["properties"]["storageProfile"]["imageReference"]
    assert ref["id"].endswith("/galleries/g/images/gen")
    assert ref["exactVersion"] == "1.0.1"  # 2.0.0 is excluded from latest
    pinned = gal.json("vm", "create", "-n", "vm2", "--image", "g/gen/2.0.0", *gen_args())
    ref = pinned["properties"]["storageProfile"]["imageReference"]
    assert ref["id"].endswith("/images/gen/versions/2.0.0") and ref["exactVersion"] == "2.0.0"
    assert pinned["properties"]["storageProfile"]["dataDisks"] == []


def test_soft_deleted_version_is_not_latest_but_usable_by_version(gal, monkeypatch):
    """Soft delete (issue 15): a soft-deleted version is never latest for a VM, works when
    named until its consumption end, then is refused (exit 5) with nothing created."""
    from datetime import UTC, datetime, timedelta

    gal.json("sig", "update", "-r", "g", "--soft-delete", "true")
    assert gal("sig", "image-version", "delete", "-r", "g", "-i", "gen", "-e",
               "1.0.1").exit_code == 0
    monkeypatch.setenv("IMAGESTORE_NOW", (datetime.now(UTC) + timedelta(days=8)).isoformat())
    refused(gal, CONFLICT, "image version 'g/gen/1.0.1' was soft-deleted at", "vm", "create",
            "-n", "late", "--image", "g/gen/1.0.1", *gen_args())
    monkeypatch.delenv("IMAGESTORE_NOW")
    vm = gal.json("vm", "create", "-n", "vm1", "--image", "g/gen", *gen_args())
    assert vm["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "1.0.0"
    vm = gal.json("vm", "create", "-n", "vm2", "--image", "g/gen/1.0.1", *gen_args())
    assert vm["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "1.0.1"


def test_gallery_image_not_found_in_vm_region(gal):
    gal.json("region", "create", "west", "--path", str(gal.tmp / "west"))
    vid = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/"
           "providers/Microsoft.Compute/galleries/g/images/gen/versions/1.0.0")
    msg = (f"The gallery image {vid} is not available in west region. Please contact image "
           f"owner to replicate to this region, or change your requested region.")
    refused(gal, NOT_FOUND, msg, "vm", "create", "-n", "vm1", "--image", "g/gen/1.0.0",
            "-l", "west", *gen_args())
    refused(gal, NOT_FOUND, "/galleries/g/images/gen is not available in west region",
            "vm", "create", "-n", "vm1", "--image", "g/gen", "-l", "west", *gen_args())


def test_data_disks_from_image_by_lun(gal):
    vm = gal.json("vm", "create", "-n", "vm1", "--image", "g/gen/1.0.0", *gen_args(
        "--data-disk-sizes-gb", "1", "--os-disk-mode", "copy"))
    sp = vm["properties"]["storageProfile"]
    assert sp["osDisk"]["createOption"] == "FromImage"
    assert [(d["lun"], d["createOption"]) for d in sp["dataDisks"]] == [
        (1, "FromImage"), (3, "FromImage"), (4, "Empty")]
    local = vm["properties"]["localCompute"]["disks"]
    assert [d["lun"] for d in local] == [None, 1, 3, 4]
    for d in local[:3]:
        src = gal.sources["os" if d["lun"] is None else d["lun"]]
        with open(src, "rb") as a, open(d["path"], "rb") as b:
            assert a.read() == b.read()[:os.path.getsize(src)]
    assert os.path.getsize(local[3]["path"]) == 1 << 30
    # they are managed disks of the gallery's disk service
    names = {d["name"] for d in gal.json("disk", "list")}
    assert {d["name"] for d in local} <= names
    assert {d["managedDisk"]["id"].rsplit("/", 1)[1] for d in sp["dataDisks"]} <= names


def test_seed_read_back(gal, tmp_path):
    cd = tmp_path / "custom.sh"
    cd.write_bytes(b"#!/bin/sh\necho custom-data-ran\n")
    keyfile = tmp_path / "k.pub"
    keyfile.write_text(KEY + "\n")
    a = gal.json("vm", "create", "-n", "vm1", "--image", "g/gen", "--admin-username", "ops",
                 "--ssh-key-values", str(keyfile), "--computer-name", "web-01",
                 "--custom-data", str(cd))
    b = gal.json("vm", "create", "-n", "vm2", "--image", "g/gen", *gen_args())
    osp = a["properties"]["osProfile"]
    assert osp["computerName"] == "web-01" and osp["adminUsername"] == "ops"
    assert osp["linuxConfiguration"]["ssh"]["publicKeys"] == [
        {"path": "/home/ops/.ssh/authorized_keys", "keyData": KEY}]
    label, files = read_seed(a["properties"]["localCompute"]["seed"])
    assert label == "cidata"
    assert set(files) == {"meta-data", "user-data"}
    meta = dict(line.split(": ", 1) for line in files["meta-data"].decode().splitlines())
    assert meta["local-hostname"] == "web-01"
    assert meta["instance-id"] == a["properties"]["localCompute"]["cloudInitInstanceId"]
    ud = files["user-data"].decode()
    assert "#cloud-config" in ud and "- name: ops" in ud and json.dumps(KEY) in ud
    assert "multipart/mixed" in ud and "customData" in ud  # customData as its own part
    import base64
    import email

    parts = [p for p in email.message_from_string(ud).walk() if not p.is_multipart()]
    assert parts[1].get_payload(decode=True) == cd.read_bytes()
    _, files_b = read_seed(b["properties"]["localCompute"]["seed"])
    meta_b = dict(line.split(": ", 1) for line in files_b["meta-data"].decode().splitlines())
    assert meta_b["local-hostname"] == "vm2"
    assert meta_b["instance-id"] != meta["instance-id"]
    assert files_b["user-data"].startswith(b"#cloud-config\n")
    assert base64  # (imported for symmetry with the REST tests)


@pytest.mark.parametrize("args,code,needle", [
    (["--ssh-key-values", "not-a-key"], INVALID, "is not an SSH public key"),
    (["--ssh-key-values", "/nonexistent/id.pub"], NOT_FOUND, "no such file"),
    (["--ssh-key-values", KEY, "--computer-name", "bad_name!"], INVALID,
     "Linux host name cannot exceed 64 characters"),
    (["--ssh-key-values", KEY, "--size", "Standard_Huge"], INVALID,
     "The value Standard_Huge provided for the VM size is not valid"),
    (["--ssh-key-values", KEY, "--custom-data", "/nonexistent/cd"], NOT_FOUND, "no such file"),
    (["--ssh-key-values", KEY, "--os-disk-mode", "thin"], INVALID, "osDiskMode"),
    (["--ssh-key-values", KEY, "--data-disk-sizes-gb", "0"], INVALID, "diskSizeGB"),
    ([], INVALID, rules.LINUX_AUTH),
])
def test_hostile_create_inputs(gal, args, code, needle):
    refused(gal, code, needle, "vm", "create", "-n", "vm1", "--image", "g/gen",
            "--admin-username", "azureuser", *args)


def test_bad_names_and_images(gal):
    refused(gal, INVALID, "The Admin Username specified is not allowed: 'root'.",
            "vm", "create", "-n", "vm1", "--image", "g/gen", "--admin-username", "root",
            "--ssh-key-values", KEY)
    refused(gal, NOT_FOUND, "nope", "vm", "create", "-n", "vm1", "--image", "g/nope",
            *gen_args())
    refused(gal, NOT_FOUND, "9.9.9", "vm", "create", "-n", "vm1", "--image", "g/gen/9.9.9",
            *gen_args())
    refused(gal, INVALID, "not a valid virtual machine name", "vm", "create", "-n", "-x",
            "--image", "g/gen", *gen_args())
    gal.json("vm", "create", "-n", "vm1", "--image", "g/gen", *gen_args())
    fails(gal("vm", "create", "-n", "vm1", "--image", "g/gen", *gen_args()), CONFLICT,
          "already exists")
    fails(gal("vm", "show", "-n", "ghost"), NOT_FOUND,
          "The Resource 'Microsoft.Compute/virtualMachines/ghost' under resource group "
          "'default' was not found.")


def test_power_generalize_and_capture_rules_without_boot(gal):
    vm = gal.json("vm", "create", "-n", "vm1", "--image", "g/gen", *gen_args())
    assert vm["properties"]["localCompute"]["powerState"] == "PowerState/deallocated"
    iv = gal.json("vm", "get-instance-view", "-n", "vm1")
    assert [s["code"] for s in iv["properties"]["instanceView"]["statuses"]] == [
        "ProvisioningState/succeeded", "PowerState/deallocated"]
    # a specialized capture of a not-generalized VM into a Generalized definition: refused
    vmid = vm["id"]
    fails(gal("sig", "image-version", "create", "-r", "g", "-i", "gen", "-e", "3.0.0",
              "--virtual-machine", "vm1"), INVALID,
          f"Cannot create Gallery Image Version from: {vmid} since the OS State in the parent "
          f"gallery image ('Generalized') is not 'Specialized'.")
    fails(gal("sig", "image-version", "create", "-r", "g", "-i", "tls", "-e", "3.0.0",
              "--virtual-machine", vmid), CONFLICT,
          f"The resource with id '{vmid}' has a different Hypervisor generation ['V1'] than "
          f"the parent gallery image Hypervisor generation ['V2'].")
    fails(gal("sig", "image-version", "create", "-r", "g", "-i", "spec", "-e", "3.0.0",
              "--virtual-machine", "vm1", "--os-vhd-uri", gal.sources["os"]), INVALID,
          "cannot be combined")
    fails(gal("vm", "restart", "-n", "vm1"), CONFLICT,
          "Operation 'restart' is not allowed on VM 'vm1' since the VM is deallocated.")
    st = gal.json("vm", "stop", "-n", "vm1")  # stopping a VM that does not run: a no-op
    assert st["properties"]["localCompute"]["powerState"] == "PowerState/deallocated"
    g = gal.json("vm", "generalize", "-n", "vm1")
    assert g["properties"]["localCompute"]["osState"] == "Generalized"
    iv = gal.json("vm", "get-instance-view", "-n", "vm1")
    assert "OSState/generalized" in [s["code"] for s in iv["properties"]["instanceView"]["statuses"]]
    fails(gal("vm", "start", "-n", "vm1"), CONFLICT,
          "Operation 'start' is not allowed on VM 'vm1' since the VM is generalized.")
    fails(gal("sig", "image-version", "create", "-r", "g", "-i", "spec", "-e", "3.0.0",
              "--virtual-machine", "vm1"), INVALID,
          f"Cannot create Gallery Image Version from: {vmid} since the OS State in the parent "
          f"gallery image ('Specialized') is not 'Generalized'.")
    v = gal.json("sig", "image-version", "create", "-r", "g", "-i", "gen", "-e", "3.0.0",
                 "--virtual-machine", "vm1")
    assert [d["lun"] for d in v["properties"]["storageProfile"]["dataDiskImages"]] == [1, 3]
    # the version names the VM it came from, as Azure's storageProfile.source does
    assert v["properties"]["storageProfile"]["source"] == {"id": vmid, "virtualMachineId": vmid}


def test_delete_with_and_without_disks(gal):
    a = gal.json("vm", "create", "-n", "vm1", "--image", "g/gen", *gen_args())
    b = gal.json("vm", "create", "-n", "vm2", "--image", "g/gen", *gen_args())
    gal.json("vm", "list")
    os1 = a["properties"]["storageProfile"]["osDisk"]["name"]
    assert gal.json("disk", "show", "-n", os1)["properties"]["diskState"] == "Attached"
    fails(gal("disk", "delete", "-n", os1), CONFLICT,
          f"Disk {os1} is attached to VM {a['id']}.")
    r = gal("vm", "delete", "-n", "vm1", "--yes")
    assert r.exit_code == 0, r.stderr
    kept = [d["path"] for d in a["properties"]["localCompute"]["disks"]]
    assert all(os.path.exists(p) for p in kept)
    assert gal.json("disk", "show", "-n", os1)["properties"]["diskState"] == "Unattached"
    assert not os.path.exists(a["properties"]["localCompute"]["runtimeDir"])
    r = gal("vm", "delete", "-n", "vm2", "--delete-disks")
    assert r.exit_code == 0, r.stderr
    gone = b["properties"]["localCompute"]["disks"]
    assert not any(os.path.exists(d["path"]) for d in gone)
    names = {d["name"] for d in gal.json("disk", "list")}
    assert not names & {d["name"] for d in gone}
    assert {d["name"] for d in a["properties"]["localCompute"]["disks"]} <= names
    assert [v["name"] for v in gal.json("vm", "list")] == []


def test_launch_spec_per_generation(gal):
    gal.json("vm", "create", "-n", "g1", "--image", "g/gen", *gen_args())
    gal.json("vm", "create", "-n", "g2", "--image", "g/tls", *gen_args())
    gal.json("vm", "create", "-n", "tl", "--image", "g/tl",
             *gen_args("--security-type", "TrustedLaunch"))
    gal.json("vm", "create", "-n", "tlnosb", "--image", "g/tl",
             *gen_args("--security-type", "TrustedLaunch", "--enable-secure-boot", "false",
                       "--enable-vtpm", "false"))
    svc = ComputeService(GalleryService(Home.open(gal.store)))
    try:
        def spec(name):
            return svc.vms.launch_spec(svc.vms.row("default", name))

        s1 = spec("g1")
        a1 = " ".join(s1.argv())
        assert "pflash" not in a1 and "-machine pc" in a1 and "tpm" not in a1
        disks = [x for x in s1.argv() if x.startswith("virtio-blk-pci")]
        assert [d.split("serial=")[1].split(",")[0] for d in disks] == [
            "os", "lun1", "lun3", "cidata"]
        assert "bootindex=0" in disks[0]
        a2 = " ".join(spec("g2").argv())
        assert "OVMF_CODE_4M.fd" in a2 and "readonly=on" in a2 and "file=OVMF_VARS.fd" in a2
        assert "smm=on" not in a2 and "tpm-crb" not in a2
        s3 = spec("tl")
        a3 = " ".join(s3.argv())
        assert "OVMF_CODE_4M.secboot.fd" in a3 and "q35,smm=on" in a3 and "tpm-crb" in a3
        assert s3.firmware()[1].endswith("OVMF_VARS_4M.ms.fd")
        s4 = spec("tlnosb")
        assert s4.firmware()[1].endswith("/OVMF_VARS_4M.fd") and "tpm" not in " ".join(s4.argv())
        assert all(f"format={fmt}" in a1 for fmt in ("raw",))
    finally:
        svc.gallery.close()


def test_generalize_deprovision_cleans_ext4_offline(gal, tmp_path):
    """--deprovision (best effort): SSH host keys, machine-id, cloud-init's instance link and
    /var/log files go from the raw OS disk's ext4 partition; the filesystem stays clean."""
    import shutil
    import subprocess

    for tool in ("mkfs.ext4", "debugfs", "e2fsck", "sfdisk"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/setup.sh installs it)")
    root = tmp_path / "root"
    for d in ("etc/ssh", "var/log", "var/lib/cloud/instances/iid-1", "home/u"):
        (root / d).mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("secret\n")
    (root / "etc/ssh/ssh_host_rsa_key.pub").write_text("pub\n")
    (root / "etc/ssh/sshd_config").write_text("keep\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/log/syslog").write_text("log\n")
    (root / "home/u/notes").write_text("keep\n")
    img = tmp_path / "ext4.raw"
    with open(img, "wb") as fh:
        fh.truncate(40 << 20)
    subprocess.run(["sfdisk", "-q", str(img)], input="label: dos\nstart=2048, type=83\n",
                   text=True, check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), "-E", "offset=1048576", str(img),
                    "38M"], check=True)
    part = f"{img}?offset=1048576"
    subprocess.run(["debugfs", "-w", "-R", "symlink /var/lib/cloud/instance "
                    "/var/lib/cloud/instances/iid-1", part], check=True, capture_output=True)
    gal.json("sig", "image-definition", "create", "-r", "g", "-i", "ext", "-p", "P", "-f", "O",
             "-s", "EXT", "--os-type", "Linux")
    gal.json("sig", "image-version", "create", "-r", "g", "-i", "ext", "-e", "1.0.0",
             "--os-vhd-uri", str(img))
    vm = gal.json("vm", "create", "-n", "dep", "--image", "g/ext", *gen_args(
        "--os-disk-mode", "copy"))
    out = gal.json("vm", "generalize", "-n", "dep", "--deprovision")
    done = out["properties"]["localCompute"]["deprovisioned"]
    assert "1048576:/etc/ssh/ssh_host_ed25519_key" in done
    disk = vm["properties"]["localCompute"]["disks"][0]["path"]
    dpart = f"{disk}?offset=1048576"

    def ls(d: str) -> str:
        return subprocess.run(["debugfs", "-R", f"ls {d}", dpart], capture_output=True,
                              text=True).stdout

    assert "ssh_host_" not in ls("/etc/ssh") and "sshd_config" in ls("/etc/ssh")
    assert "syslog" not in ls("/var/log")
    assert " instance " not in ls("/var/lib/cloud") + " " and "instances" in ls("/var/lib/cloud")
    assert "notes" in ls("/home/u")
    st = subprocess.run(["debugfs", "-R", "stat /etc/machine-id", dpart], capture_output=True,
                        text=True).stdout
    assert "Size: 0" in st
    # the filesystem is consistent afterwards
    fsck = subprocess.run(["e2fsck", "-fn", dpart], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # a linked (qcow2) OS disk is refused, not half-cleaned
    gal.json("vm", "create", "-n", "dep2", "--image", "g/ext", *gen_args())
    fails(gal("vm", "generalize", "-n", "dep2", "--deprovision"), INVALID, "raw OS disks only")
