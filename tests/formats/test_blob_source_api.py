"""The REST API takes a blob URL as ``source.uri``: a version PUT whose OS disk is a sparse
page blob on Azurite is captured (the capture service reads blobs), its JSON names the blob
(without a SAS), and the disk created from it equals the source."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.formats.test_blob_source import make_raw, upload_sparse_page_blob
from tests.helpers import need

pytestmark = pytest.mark.one_pass


def test_version_put_with_a_page_blob_source(tmp_path, azurite, blob_proxy):
    pytest.importorskip("httpx")
    from tests.api.conftest import GV, SUB, start_server

    raw = make_raw(str(tmp_path / "d.raw"), 4)
    vhd = str(tmp_path / "d.vhd")
    subprocess.run([need("qemu-img"), "convert", "-O", "vpc", "-o",
                    "subformat=fixed,force_size=on", raw, vhd], check=True)
    c = azurite.make_container("apisrc")
    upload_sparse_page_blob(c, "d.vhd", vhd)
    url = f"{azurite.endpoint()}/apisrc/d.vhd"
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    from tests.azurite import ACCOUNT, KEY

    sas = generate_blob_sas(ACCOUNT, "apisrc", "d.vhd", account_key=KEY,
                            permission=BlobSasPermissions(read=True),
                            expiry=datetime.now(UTC) + timedelta(hours=1))
    env = {"IMAGESTORE_AUTOSTART_WORKER": "1", "AZURE_STORAGE_CONNECTION_STRING": "",
           "AZURE_STORAGE_KEY": ""}  # the SAS in the URL is the only credential
    s = start_server(str(tmp_path / "store"), "--retry-after", "0", env=env)
    try:
        h = s.client()
        G = f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries"  # noqa: N806
        assert h.put(f"{G}/g?api-version={GV}", json={"location": "local"}).status_code == 201
        assert h.put(f"{G}/g/images/d?api-version={GV}", json={
            "location": "local", "properties": {
                "osType": "Linux", "osState": "Generalized",
                "identifier": {"publisher": "P", "offer": "O", "sku": "S"}}}).status_code == 201
        r = h.put(f"{G}/g/images/d/versions/1.0.0?api-version={GV}", json={
            "location": "local", "properties": {"storageProfile": {"osDiskImage": {
                "source": {"uri": f"{url}?{sas}"}}}}})
        assert r.status_code in (200, 201), r.text
        deadline = time.monotonic() + 60
        while True:
            v = h.get(f"{G}/g/images/d/versions/1.0.0?api-version={GV}").json()
            if v["properties"]["provisioningState"] in ("Succeeded", "Failed"):
                break
            assert time.monotonic() < deadline, v
            time.sleep(0.2)
        assert v["properties"]["provisioningState"] == "Succeeded", v
        src = v["properties"]["storageProfile"]["osDiskImage"]["source"]["uri"]
        assert src == url and "sig=" not in r.text + str(v)
        # a forged SAS is refused: 403 with the storage service's verdict, the URL without it
        bad = h.put(f"{G}/g/images/d/versions/1.0.1?api-version={GV}", json={
            "location": "local", "properties": {"storageProfile": {"osDiskImage": {
                "source": {"uri": f"{url}?sv=2024-01-01&sig=forged"}}}}})
        assert bad.status_code == 403 and "forged" not in bad.text, bad.text
        assert bad.json()["error"]["code"] == "AuthorizationFailed"
    finally:
        s.stop()
        if s.proc.poll() is None:
            s.proc.kill()
    # the disk from it equals the source (through the CLI on the same store)
    from tests.conftest import Cli

    run = Cli(str(tmp_path / "store"))
    out = str(tmp_path / "out.raw")
    run.json("disk", "create", "-n", "x", "--gallery-image-reference", "g/d/1.0.0",
             "-g", "rg", "--path", out)
    with open(out, "rb") as a, open(raw, "rb") as b:
        assert a.read() == b.read()
