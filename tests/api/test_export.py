"""Disk export end to end against `imagestore serve`: the SDK's begin_grant_access poller ->
an accessSAS URL -> downloads by curl ranges and azure-storage-blob's parallel chunked
download -> `qemu-img compare` equal to the version's source; Range forms, HEAD, page
ranges, conditional requests; hostile ranges (416), altered SAS (403); the URL survives a
server restart, stops after endGetAccess and after its duration."""

from __future__ import annotations

import subprocess
import time
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from azure.mgmt.compute import ComputeManagementClient

from imagestore.api.client import sdk_kwargs
from tests.helpers import need

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

MiB = 1 << 20
DV = "2025-01-02"
DISK = SUB + "/resourceGroups/default/providers/Microsoft.Compute/disks/d1"


def qemu_compare(a: str, fa: str, b: str, fb: str) -> None:
    p = subprocess.run([need("qemu-img"), "compare", "-f", fa, "-F", fb, a, b],
                       capture_output=True, text=True)
    assert p.returncode == 0, (p.stdout, p.stderr)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A store with a version captured from a dynamic VHD and a VHDX disk made from it, and
    a server over it."""
    from tests.conftest import Cli

    tmp = tmp_path_factory.mktemp("export")
    src = str(tmp / "src.vhd")
    subprocess.run([need("qemu-img"), "create", "-q", "-f", "vpc", "-o", "force_size=on", src,
                    "10M"], check=True)
    for off, pat, n in ((0, 0x11, 4096), (MiB + 512, 0x22, 3 * MiB), (9 * MiB, 0x33, MiB)):
        subprocess.run([need("qemu-io"), "-f", "vpc", "-c", f"write -P {pat} {off} {n}", src],
                       check=True, capture_output=True)
    run = Cli(str(tmp / "store"))
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", src)
    disk = run.json("disk", "create", "-n", "d1", "--gallery-image-reference", "g/d/1.0.0",
                    "--format", "vhdx")
    server = start_server(run.store)
    server.src, server.tmp, server.run = src, tmp, run
    server.disk_path = disk["properties"]["localStorage"]["path"]
    yield server
    server.stop()


def grant(server, seconds: int = 600) -> str:
    client = ComputeManagementClient(**sdk_kwargs(server.url, server.token(),
                                                  polling_interval=0))
    return client.disks.begin_grant_access(
        "default", "d1", {"access": "Read", "durationInSeconds": seconds}).result().access_sas


def test_grant_is_a_long_running_operation(exported):
    c = exported.client()
    r = c.post(f"{DISK}/beginGetAccess?api-version={DV}",
               json={"access": "Read", "durationInSeconds": 300})
    assert r.status_code == 202, r.text
    status = c.get(r.headers["Azure-AsyncOperation"]).json()
    assert status["status"] == "Succeeded"
    sas_url = status["properties"]["output"]["accessSAS"]
    assert c.get(r.headers["Location"]).json() == {"accessSAS": sas_url}
    assert sas_url.startswith(exported.url + "/md-impexp/")
    disk = exported.run.json("disk", "show", "-n", "d1")
    assert disk["properties"]["diskState"] == "ActiveSAS"
    for body, code in (({"access": "Read"}, "InvalidParameter"),
                       ({"access": "Write", "durationInSeconds": 5}, "OperationNotAllowed"),
                       ({"access": "Read", "durationInSeconds": 5, "fileFormat": "VHDX"},
                        "InvalidParameter")):
        r = c.post(f"{DISK}/beginGetAccess?api-version={DV}", json=body)
        assert r.json()["error"]["code"] == code, (body, r.text)
    r = c.post(SUB + f"/resourceGroups/default/providers/Microsoft.Compute/disks/nope/"
               f"beginGetAccess?api-version={DV}", json={"access": "Read",
                                                        "durationInSeconds": 5})
    assert r.status_code == 404
    assert exported.client(token=None).post(
        f"{DISK}/beginGetAccess?api-version={DV}",
        json={"access": "Read", "durationInSeconds": 5}).status_code == 401


def test_download_by_ranges_is_the_version(exported):
    url = grant(exported)
    size = 10 * MiB + 512
    h = httpx.head(url)
    assert h.status_code == 200 and int(h.headers["content-length"]) == size
    assert h.headers["x-ms-blob-type"] == "PageBlob" and h.headers["accept-ranges"] == "bytes"
    # curl -r: pieces of odd sizes, one open-ended
    out = exported.tmp / "curl.vhd"
    edges = [0, 777_777, 3 * MiB + 1, 7 * MiB]
    with open(out, "wb") as f:
        for a, b in zip(edges, edges[1:] + [None], strict=True):
            r = f"{a}-{b - 1}" if b else f"{a}-"
            piece = subprocess.run([need("curl"), "-sSf", "-r", r, url], capture_output=True,
                                   check=True).stdout
            f.write(piece)
    assert out.stat().st_size == size
    qemu_compare(str(out), "vpc", exported.src, "vpc")
    # curl -r with a list: multipart/byteranges
    p = subprocess.run([need("curl"), "-sSf", "-D", "-", "-r", "0-9,-512", url],
                       capture_output=True, check=True)
    assert b"206" in p.stdout.split(b"\r\n")[0]
    assert b"multipart/byteranges" in p.stdout and p.stdout.count(b"Content-Range: bytes") == 2
    assert (b"Content-Range: bytes %d-%d/%d" % (size - 512, size - 1, size)) in p.stdout


def test_azure_storage_blob_parallel_download(exported):
    from azure.storage.blob import BlobClient

    url = grant(exported)
    blob = BlobClient.from_blob_url(url, max_single_get_size=MiB, max_chunk_get_size=MiB)
    props = blob.get_blob_properties()
    assert props.size == 10 * MiB + 512 and props.blob_type == "PageBlob"
    out = exported.tmp / "sdk.vhd"
    with open(out, "wb") as f:
        n = blob.download_blob(max_concurrency=4).readinto(f)
    assert n == 10 * MiB + 512
    qemu_compare(str(out), "vpc", exported.src, "vpc")
    pages = list(blob.list_page_ranges())
    assert pages[-1].end == 10 * MiB + 511  # the footer's page
    # the VHDX disk's allocated blocks (one 32 MiB block here covers all of it), in order
    assert all(p.start % 512 == 0 and (p.end + 1) % 512 == 0 for p in pages)
    part = blob.download_blob(offset=MiB + 500, length=20).readall()
    assert part == b"\0" * 12 + b"\x22" * 8


def test_hostile_requests(exported):
    url = grant(exported)
    size = 10 * MiB + 512
    for rng in (f"bytes={size}-", "bytes=9-3", "bytes=abc", "bytes=0-5,3-9",
                "bytes=" + ",".join(f"{i}-{i}" for i in range(40))):
        r = httpx.get(url, headers={"Range": rng})
        assert r.status_code == 416, rng
        assert r.headers["content-range"] == f"bytes */{size}"
        assert b"<Code>InvalidRange</Code>" in r.content
    assert httpx.get(url, headers={"x-ms-range": "bytes=99999999999-"}).status_code == 416
    u = urlparse(url)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    for change in ({"sig": q["sig"][:-4] + "AAA="}, {"se": "2099-01-01T00:00:00Z"},
                   {"sp": "rw"}, {"si": "0" * 32}):
        bad = u._replace(query=urlencode({**q, **change})).geturl()
        r = httpx.get(bad, headers={"Range": "bytes=0-9"})
        assert r.status_code == 403, change
        assert b"<Code>AuthenticationFailed</Code>" in r.content
    nosig = u._replace(query=urlencode({k: v for k, v in q.items() if k != "sig"})).geturl()
    assert httpx.get(nosig).status_code == 403
    other = u._replace(path=f"/md-impexp/{'f' * 32}/abcd").geturl()
    assert httpx.get(other).status_code == 403


def test_etag_and_a_changed_disk(exported):
    url = grant(exported)
    r = httpx.get(url, headers={"Range": "bytes=0-0"})
    etag = r.headers["etag"]
    assert httpx.get(url, headers={"Range": "bytes=0-0", "If-Match": etag}).status_code == 206
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    with open(exported.disk_path, "r+b") as f:  # the disk file changes: a new ETag
        f.seek(0, 2)
        f.write(b"")
        f.flush()
    import os
    os.utime(exported.disk_path)
    r = httpx.get(url, headers={"Range": "bytes=0-0", "If-Match": etag})
    assert r.status_code == 412 and b"ConditionNotMet" in r.content
    assert httpx.get(url, headers={"Range": "bytes=0-0"}).headers["etag"] != etag


def test_cli_grant_names_the_running_server(exported, tmp_path):
    """`imagestore disk grant-access` prints a URL on the server that runs for the store
    (serve.json); the download is the version; revoke-access ends it; bad flags named."""
    import json

    run = exported.run
    r = run("disk", "grant-access", "-n", "d1", "--duration-in-seconds", "60")
    assert r.exit_code == 0 and "WARNING" not in r.stderr, r.stderr
    url = json.loads(r.stdout)["accessSAS"]
    assert url.startswith(exported.url + "/md-impexp/")
    out = tmp_path / "cli.vhd"
    out.write_bytes(httpx.get(url).content)
    qemu_compare(str(out), "vpc", exported.src, "vpc")
    r = run("disk", "grant-access", "-n", "d1", "--duration-in-seconds", "-5")
    assert r.exit_code == 3 and r.stderr.startswith("error: --duration-in-seconds: ")
    assert run("disk", "grant-access", "-n", "nope", "--duration-in-seconds", "5").exit_code == 4
    r = run("disk", "delete", "-n", "d1")
    assert r.exit_code == 5 and "revoke it first" in r.stderr
    assert run("disk", "revoke-access", "-n", "d1").exit_code == 0
    assert httpx.get(url, headers={"Range": "bytes=0-0"}).status_code == 403

def test_a_disk_file_gone_is_blob_not_found(exported):
    import os

    d2 = exported.run.json("disk", "create", "-n", "d2", "--gallery-image-reference",
                           "g/d/1.0.0", "--format", "raw")
    url = exported.run.json("disk", "grant-access", "-n", "d2", "--duration-in-seconds",
                            "60")["accessSAS"]
    url = exported.url + url[url.index("/md-impexp/"):]  # the CLI ran without a server
    assert httpx.get(url, headers={"Range": "bytes=0-0"}).status_code == 206
    os.unlink(d2["properties"]["localStorage"]["path"])
    r = httpx.get(url, headers={"Range": "bytes=0-0"})
    assert r.status_code == 404 and b"<Code>BlobNotFound</Code>" in r.content


def test_revoke_restart_and_expiry(exported):
    url = grant(exported)
    assert httpx.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
    # the grant survives a server restart
    exported.stop()
    s2 = start_server(exported.run.store, "--port", str(exported.port))
    try:
        assert httpx.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
        client = ComputeManagementClient(**sdk_kwargs(s2.url, s2.token(), polling_interval=0))
        client.disks.begin_revoke_access("default", "d1").result()
        r = httpx.get(url, headers={"Range": "bytes=0-9"})
        assert r.status_code == 403 and b"revoked" in r.content
        assert exported.run.json("disk", "show", "-n", "d1")["properties"][
            "diskState"] == "Unattached"
        # expiry is whole seconds (now rounded down + 5 s): valid for 4-5 s, a margin for
        # the first GET on a loaded machine; then wait past the latest possible expiry
        granted = time.time()
        short = grant(s2, seconds=5)
        assert httpx.get(short, headers={"Range": "bytes=0-9"}).status_code == 206
        time.sleep(max(0.0, granted + 5.3 - time.time()))
        r = httpx.get(short, headers={"Range": "bytes=0-9"})
        assert r.status_code == 403 and b"expiry" in r.content
    finally:
        s2.stop()
        exported.proc = s2.proc  # the fixture's teardown stops this one (already stopped)

