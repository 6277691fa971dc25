"""Managed images (``imagestore image …``, Microsoft.Compute/images): made from disks (their
files as they are now, captured deduplicated) and snapshots (shared), always Generalized; the
JSON Azure returns; deletion and what it frees; refusals that change nothing."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import fails, need, store_tree_snapshot

MiB = 1 << 20
RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/Microsoft.Compute"


@pytest.fixture
def disks(run, tmp_path):
    """Disks os1 (12 MiB) and data1 (6 MiB) from version lin/1.0.0 of distinct random data."""
    files = {}
    for name, size, offs in (("os", 12 * MiB, (0, 7 * MiB)), ("data", 6 * MiB, (2 * MiB,))):
        p = tmp_path / f"{name}.raw"
        with open(p, "wb") as f:
            f.truncate(size)
            for o in offs:
                f.seek(o)
                f.write(os.urandom(MiB))
        files[name] = str(p)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "lin", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--os-vhd-uri", files["os"], "--data-vhds-uris", files["data"])
    for n, lun in (("os1", []), ("data1", ["--gallery-image-reference-lun", "0"])):
        d = run.json("disk", "create", "-n", n, "--gallery-image-reference", "g/lin/1.0.0", *lun)
        files[n] = d["properties"]["localStorage"]["path"]
    return files


def test_image_from_a_disk_and_a_snapshot(run, disks):
    snap = run.json("snapshot", "create", "-n", "sd", "--source", "data1")
    before = run.json("store", "stats")
    img = run.json("image", "create", "-n", "im", "--source", "os1", "--data-disk-sources",
                   "sd", "data1", "--os-type", "Linux", "--tags", "k=v")
    after = run.json("store", "stats")
    assert (after["chunks"], after["packBytes"]) == (before["chunks"], before["packBytes"])
    assert img["type"] == "Microsoft.Compute/images" and img["id"] == f"{RG}/images/im"
    assert img["tags"] == {"k": "v"} and img["location"] == "local"
    p = img["properties"]
    assert (p["provisioningState"], p["hyperVGeneration"]) == ("Succeeded", "V1")
    sp = p["storageProfile"]
    assert sp["osDisk"] == {"osType": "Linux", "osState": "Generalized",
                            "managedDisk": {"id": f"{RG}/disks/os1"}, "caching": "ReadWrite",
                            "storageAccountType": "Standard_LRS", "diskSizeGB": 1}
    assert sp["dataDisks"] == [
        {"lun": 0, "snapshot": {"id": snap["id"]}, "caching": "None",
         "storageAccountType": "Standard_LRS", "diskSizeGB": 1},
        {"lun": 1, "managedDisk": {"id": f"{RG}/disks/data1"}, "caching": "None",
         "storageAccountType": "Standard_LRS", "diskSizeGB": 1}]
    assert sp["zoneResilient"] is False
    local = p["localStorage"]
    assert local["dataDisks"][0]["manifestDigest"] == local["dataDisks"][1]["manifestDigest"]
    assert run.json("image", "show", "-n", "im") == img
    assert run.json("image", "show", "--ids", img["id"]) == img
    assert run.json("image", "list", "--query", "[].name") == ["im"]


def test_an_image_captures_the_disk_as_it_is_now(run, disks):
    subprocess.run([need("qemu-io"), "-f", "raw", "-c", "write -P 0x5a 0 64k", disks["os1"]],
                   check=True, capture_output=True)
    img = run.json("image", "create", "-n", "im", "--source", f"{RG}/disks/os1", "--os-type",
                   "Windows", "--hyper-v-generation", "V2", "--os-disk-caching", "ReadOnly",
                   "--storage-sku", "Premium_LRS")
    p = img["properties"]
    assert p["localStorage"]["osDisk"]["storedBytes"] > 0  # the changed chunk
    assert (p["hyperVGeneration"], p["storageProfile"]["osDisk"]["osType"]) == ("V2", "Windows")
    assert p["storageProfile"]["osDisk"]["caching"] == "ReadOnly"
    assert p["storageProfile"]["osDisk"]["storageAccountType"] == "Premium_LRS"
    assert p["storageProfile"]["dataDisks"] == []
    # the image's bytes come back through a version made from it
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "w2", "-p", "P", "-f", "O",
             "-s", "W2", "--os-type", "Windows", "--hyper-v-generation", "V2")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "w2", "-e", "1.0.0",
             "--managed-image", "im")
    d = run.json("disk", "create", "-n", "back", "--gallery-image-reference", "g/w2/1.0.0")
    assert subprocess.run(["cmp", disks["os1"], d["properties"]["localStorage"]["path"]]).returncode == 0
    assert d["properties"]["osType"] == "Windows"


def test_deleting_an_image_frees_what_only_it_used(run, disks):
    for pattern, off in (("0x66", "11M"), ("0x67", "11520k")):  # two new 256 KiB chunks
        subprocess.run([need("qemu-io"), "-f", "raw", "-c", f"write -P {pattern} {off} 256k",
                        disks["os1"]], check=True, capture_output=True)
    base = run.json("store", "stats")
    run.json("image", "create", "-n", "im", "--source", "os1", "--os-type", "Linux")
    assert run.json("store", "stats")["chunks"] == base["chunks"] + 2
    r = run("image", "delete", "-n", "im")
    assert r.exit_code == 0, r.stderr
    assert run.json("store", "gc")["removedChunks"] == 2
    after = run.json("store", "stats")
    assert (after["chunks"], after["manifests"]) == (base["chunks"], base["manifests"])
    fails(run("image", "show", "-n", "im"), 4, "image 'im' not found in resource group 'default'")


def test_hostile_image_requests_change_nothing(run, disks, tmp_path):
    run.json("image", "create", "-n", "im", "--source", "os1", "--os-type", "Linux")
    run.json("region", "create", "west", "--path", str(tmp_path / "west"))
    run.json("sig", "image-version", "update", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--target-regions", "local", "west")
    run.json("disk", "create", "-n", "dw", "--gallery-image-reference", "g/lin/1.0.0",
             "-l", "west")
    before = store_tree_snapshot(run.store)
    cases = [
        (["-n", "x", "--source", "os1"], 3, "--os-type: required to create the image"),
        (["-n", "x", "--source", "os1", "--os-type", "BeOS"], 3, "--os-type: "),
        (["-n", "x", "--source", "os1", "--os-type", "Linux", "--hyper-v-generation", "V3"], 3,
         "--hyper-v-generation: "),
        (["-n", "x", "--source", "nosuch", "--os-type", "Linux"], 4,
         "--source: snapshot or disk 'nosuch' not found"),
        (["-n", "x", "--source", f"{RG}/images/im", "--os-type", "Linux"], 3,
         "is a Microsoft.Compute/images id, not a snapshot or disk id"),
        (["-n", "x", "--source", "os1", "--data-disk-sources", "nosuch", "--os-type", "Linux"], 4,
         "--data-disk-sources[0]: snapshot or disk 'nosuch' not found"),
        (["-n", "x", "--source", "os1", "--data-disk-sources", "dw", "--os-type", "Linux"], 3,
         "--data-disk-sources[0]: disk 'dw' is in region 'west'; every source of an image must be "
         "in one region ('local')"),
        (["-n", "x", "--source", "os1", "--os-type", "Linux", "-l", "west"], 3,
         "--location: the image's sources are in region 'local', not 'west'"),
        (["-n", "im", "--source", "os1", "--os-type", "Linux"], 5,
         "image 'im' already exists in resource group 'default'"),
        (["-n", "x", "--source", "os1", "--os-type", "Linux", "--storage-sku", "Fast"], 3,
         "storageAccountType"),
    ]
    for args, code, needle in cases:
        fails(run("image", "create", *args), code, needle)
        assert store_tree_snapshot(run.store) == before, args
    # Azure makes no disk from a managed image (a version made from it does)
    fails(run("disk", "create", "-n", "x", "--source", f"{RG}/images/im"), 3,
          "--source: '" + RG + "/images/im' is a Microsoft.Compute/images id, not a snapshot or "
          "disk id")
    assert store_tree_snapshot(run.store) == before
    os.unlink(disks["data1"])
    fails(run("image", "create", "-n", "x", "--source", "os1", "--data-disk-sources", "data1",
              "--os-type", "Linux"), 4, "disk 'data1': its file")
    fails(run("image", "delete", "-n", "nope"), 4, "image 'nope' not found")


def test_snapshot_and_image_commands_have_help_with_examples(run):
    for c in [(g, v) for g in ("snapshot", "image") for v in ("create", "show", "list", "delete")]:
        r = run(*c, "--help")
        assert r.exit_code == 0, c
        assert "Example:" in r.stdout and "imagestore " + " ".join(c) in r.stdout, c
        assert "--query" in r.stdout and "--output" in r.stdout, c
    r = run("sig", "image-version", "create", "--help")
    for flag in ("--os-snapshot", "--data-snapshots", "--data-snapshot-luns", "--managed-image"):
        assert flag in r.stdout, flag
    assert "--source" in run("disk", "create", "--help").stdout


def test_image_from_an_image_file(run, disks, tmp_path):
    vhdx = str(tmp_path / "os.vhdx")
    subprocess.run([need("qemu-img"), "convert", "-O", "vhdx", disks["os"], vhdx], check=True)
    before = run.json("store", "stats")
    img = run.json("image", "create", "-n", "fromfile", "--source", f"file://{vhdx}",
                   "--data-disk-sources", "data1", "--os-type", "Linux")
    assert run.json("store", "stats")["chunks"] == before["chunks"]  # deduplicated
    osd = img["properties"]["storageProfile"]["osDisk"]
    assert osd["blobUri"] == f"file://{vhdx}" and "managedDisk" not in osd
    run.json("sig", "image-version", "create", "-r", "g", "-i", "lin", "-e", "2.0.0",
             "--managed-image", "fromfile")
    d = run.json("disk", "create", "-n", "back", "--gallery-image-reference", "g/lin/2.0.0")
    assert subprocess.run(["cmp", disks["os"], d["properties"]["localStorage"]["path"]]).returncode == 0
    fails(run("image", "create", "-n", "x", "--source", "https://a.blob.core.windows.net/c/x.vhd",
              "--os-type", "Linux"), 3, "--source: 'https://a.blob.core.windows.net/c/x.vhd': "
          "only file:// URIs")
