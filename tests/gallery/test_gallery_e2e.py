"""The spec's own example, end to end: one gallery; the three definitions of the
Publisher/Offer/SKU table (a fourth repeating one refused); versions 1.0.0, 1.1.0 and 2.0.0
captured from generated VHD/VHDX files with 2.0.0 excluded from latest; `disk create` from the
definition gives the bytes of 1.1.0; changing osType is refused; deleting the definition while
versions exist is refused."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import need, run_imagestore

MiB = 1 << 20


def make_source(tmp, name: str, fmt: str, byte: int) -> str:
    raw = tmp / f"{name}.raw"
    with open(raw, "wb") as f:
        f.truncate(6 * MiB)
        for off in (0, 3 * MiB + 12345):
            f.seek(off)
            f.write(bytes([byte]) * 200000)
    out = tmp / f"{name}.{ 'vhd' if fmt.startswith('vpc') else 'vhdx'}"
    opts = {"vpc": [], "vpc-fixed": ["-o", "subformat=fixed,force_size=on"], "vhdx": []}[fmt]
    subprocess.run([need("qemu-img"), "convert", "-f", "raw", "-O", fmt.split("-")[0], *opts,
                    str(raw), str(out)], check=True)
    return str(out)


def test_spec_example(run, tmp_path, store_dir):
    # 1. one gallery
    run.json("sig", "create", "-r", "myGallery", "--description", "spec example")
    # 2. the three definitions of the table; a fourth repeating one is refused
    table = [("myImage1", "Contoso", "Finance", "Backend"),
             ("myImage2", "Contoso", "Finance", "Frontend"),
             ("myImage3", "Testing", "Finance", "Frontend")]
    for name, pub, offer, sku in table:
        d = run.json("sig", "image-definition", "create", "-r", "myGallery", "-i", name,
                     "-p", pub, "-f", offer, "-s", sku, "--os-type", "Linux")
        assert d["properties"]["identifier"] == {"publisher": pub, "offer": offer, "sku": sku}
    r = run("sig", "image-definition", "create", "-r", "myGallery", "-i", "myImage4",
            "-p", "Contoso", "-f", "Finance", "-s", "Backend", "--os-type", "Linux")
    assert r.exit_code == 5
    assert "already used by image definition 'myImage1'" in r.stderr
    assert len(run.json("sig", "image-definition", "list", "-r", "myGallery")) == 3

    # 3. versions captured from generated VHD/VHDX files; 2.0.0 excluded from latest
    src = {
        "1.0.0": make_source(tmp_path, "v100", "vpc", 0x10),
        "1.1.0": make_source(tmp_path, "v110", "vhdx", 0x11),
        "2.0.0": make_source(tmp_path, "v200", "vpc-fixed", 0x20),
    }
    fmts = {}
    for v, path in src.items():
        extra = ["--exclude-from-latest"] if v == "2.0.0" else []
        out = run.json("sig", "image-version", "create", "-r", "myGallery", "-i", "myImage1",
                       "-e", v, "--os-vhd-uri", path, *extra)
        assert out["properties"]["provisioningState"] == "Succeeded"
        fmts[v] = out["properties"]["localStorage"]["osDiskImage"]["sourceFormat"]
    assert fmts == {"1.0.0": "vhd-dynamic", "1.1.0": "vhdx-dynamic", "2.0.0": "vhd-fixed"}
    assert run.json("sig", "image-version", "show", "-r", "myGallery", "-i", "myImage1", "-e",
                    "2.0.0")["properties"]["publishingProfile"]["excludeFromLatest"] is True

    # 4. disk create from the definition gives the bytes of 1.1.0
    disk = run.json("disk", "create", "-n", "vm1", "--gallery-image-reference",
                    "myGallery/myImage1", "--format", "vhdx")
    ref = disk["properties"]["creationData"]["galleryImageReference"]["id"]
    assert ref.endswith("/galleries/myGallery/images/myImage1/versions/1.1.0")
    path = disk["properties"]["localStorage"]["path"]
    p = subprocess.run([need("qemu-img"), "compare", "-f", "vhdx", "-F", "vhdx", src["1.1.0"], path],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr

    # 5. changing osType is refused (through the real console script too)
    r = run("sig", "image-definition", "update", "-r", "myGallery", "-i", "myImage1",
            "--set", "properties.osType=Windows")
    assert r.exit_code == 5
    assert r.stderr.strip() == "error: Changing property 'properties.osType' is not allowed"
    p = run_imagestore("--store", store_dir, "sig", "image-definition", "update", "-r",
                       "myGallery", "-i", "myImage1", "--set", "properties.osType=Windows",
                       check=False)
    assert p.returncode == 5 and p.stderr == "error: Changing property 'properties.osType' is not allowed\n"
    assert run.json("sig", "image-definition", "show", "-r", "myGallery", "-i",
                    "myImage1")["properties"]["osType"] == "Linux"

    # 6. deleting the definition while versions exist is refused
    r = run("sig", "image-definition", "delete", "-r", "myGallery", "-i", "myImage1")
    assert r.exit_code == 5
    assert "still has 3 image version(s): 1.0.0, 1.1.0, 2.0.0" in r.stderr
    names = [v["name"] for v in run.json("sig", "image-version", "list", "-r", "myGallery",
                                         "-i", "myImage1")]
    assert names == ["1.0.0", "1.1.0", "2.0.0"]
    assert json.loads(run_imagestore("--store", store_dir, "sig", "list", "--query",
                                     "[].name").stdout) == ["myGallery"]
