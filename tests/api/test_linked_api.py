"""Linked clones on the REST API: a disk PUT with ``properties.localStorage.linked: true``
makes the same small overlay as `disk create --linked`, and the GET body put back is the same
disk."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import Cli
from tests.helpers import need

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

MiB = 1 << 20
API = "?api-version=2024-03-02"


def test_linked_disk_through_the_api(tmp_path):
    store = str(tmp_path / "store")
    src = tmp_path / "os.raw"
    with open(src, "wb") as f:
        f.truncate(8 * MiB)
        f.write(os.urandom(MiB))
    run = Cli(store)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    v = run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--os-vhd-uri", str(src))
    s = start_server(store)
    try:
        c = s.client()
        url = f"{SUB}/resourceGroups/default/providers/Microsoft.Compute/disks/l1{API}"
        body = {"location": "local", "properties": {
            "creationData": {"createOption": "FromImage",
                             "galleryImageReference": {"id": v["id"]}},
            "localStorage": {"format": "qcow2", "linked": True}}}
        r = c.put(url, json=body)
        assert r.status_code in (200, 201), r.text
        ls = r.json()["properties"]["localStorage"]
        assert ls["linked"]["parentFormat"] == "raw" and os.path.getsize(ls["path"]) < MiB
        p = subprocess.run([need("qemu-img"), "compare", "-F", "raw", ls["path"], str(src)],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        again = c.put(url, json=c.get(url).json())
        assert again.status_code == 200, again.text
        bad = dict(body, properties=dict(body["properties"],
                                         localStorage={"format": "qcow2", "linked": "yes"}))
        r = c.put(url.replace("/l1?", "/l2?"), json=bad)
        assert r.status_code == 400 and "localStorage.linked" in r.text, r.text
    finally:
        s.stop()
