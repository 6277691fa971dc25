"""A server killed (SIGKILL) while a version PUT's operation runs — its worker killed with it,
mid-capture — loses nothing: a restarted server takes the queued work up again, a poller
re-created from the first answer (its Azure-AsyncOperation URL) reaches Succeeded, the
version's bytes are the source's, and `store verify` is clean. SIGTERM stops a server
cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.formats.base import PAUSE_ENV
from imagestore.gallery.repository import Repository
from tests.conftest import Cli
from tests.helpers import need

from .conftest import make_source, start_server

pytestmark = pytest.mark.one_pass


def wait_for(path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def version_body(path: str) -> m.GalleryImageVersion:
    return m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(uri=path))))


def test_sigkill_mid_put_resumes_after_restart(tmp_path):
    store = str(tmp_path / "store")
    src = make_source(tmp_path, "src", "vhdx", 0x5A)
    marker = str(tmp_path / "pause")
    a = start_server(store, "--retry-after", "0", env={PAUSE_ENV: marker})
    client = ComputeManagementClient(**sdk_kwargs(a.url, a.token()))
    client.galleries.begin_create_or_update("rg", "g", m.Gallery(location="local")).result()
    client.gallery_images.begin_create_or_update("rg", "g", "d", m.GalleryImage(
        location="local", os_type="Linux", os_state="Generalized",
        identifier=m.GalleryImageIdentifier(publisher="P", offer="O", sku="S"))).result()
    poller = client.gallery_image_versions.begin_create_or_update(
        "rg", "g", "d", "1.0.0", version_body(src), polling_interval=0.1)
    token = poller.continuation_token()
    assert poller.status() == "InProgress"

    wait_for(marker + ".paused")  # the worker the server started is inside the capture
    repo = Repository(os.path.join(store, "gallery.sqlite"))
    worker_pid = repo.lease().pid
    repo.close()
    os.kill(a.proc.pid, signal.SIGKILL)
    os.kill(worker_pid, signal.SIGKILL)
    a.proc.wait(10)
    with open(marker + ".go", "w"):
        pass  # (nobody waits any more)

    b = start_server(store, "--retry-after", "0", port=a.port)
    try:
        client2 = ComputeManagementClient(**sdk_kwargs(b.url, b.token()))
        resumed = client2.gallery_image_versions.begin_create_or_update(
            "rg", "g", "d", "1.0.0", version_body(src), continuation_token=token,
            polling_interval=0.1)
        out = resumed.result(timeout=60)
        assert resumed.status() == "Succeeded" and out.provisioning_state == "Succeeded"
        got = b.client().get(out.id + "?api-version=2026-03-03&$expand=ReplicationStatus").json()
        assert got["properties"]["replicationStatus"]["aggregatedState"] == "Completed"
        assert b.stop(signal.SIGTERM) == 0  # a clean stop
        assert not os.path.exists(os.path.join(store, "serve.json"))
    finally:
        if b.proc.poll() is None:
            b.proc.kill()

    cli = Cli(store)
    v = cli("store", "verify")
    assert v.exit_code == 0, v.stdout + v.stderr
    disk = cli.json("disk", "create", "-g", "rg", "-n", "d1", "--format", "vhdx",
                    "--gallery-image-reference", "g/d/1.0.0")
    p = subprocess.run([need("qemu-img"), "compare", "-f", "vhdx", "-F", "vhdx", src,
                        disk["properties"]["localStorage"]["path"]], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_sigterm_lets_the_request_in_flight_finish(tmp_path):
    """SIGTERM while a disk PUT is writing: the server stops accepting connections, the
    request finishes (200, the disk is there), then the server exits 0."""
    import threading

    import httpx

    store = str(tmp_path / "store")
    src = make_source(tmp_path, "src", "vpc", 0x42)
    cli = Cli(store)
    cli.json("sig", "create", "-r", "g")
    cli.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    cli.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", src)
    d1 = cli.json("disk", "create", "-n", "d1", "--gallery-image-reference", "g/d/1.0.0")
    marker = str(tmp_path / "pause")
    s = start_server(store, env={PAUSE_ENV: marker})
    try:
        c = s.client()
        url = d1["id"].replace("/d1", "/d2") + "?api-version=2025-01-02"
        out: dict = {}

        def put() -> None:
            out["r"] = c.put(url, json={"location": "local", "properties": {"creationData": {
                "createOption": "Copy", "sourceResourceId": d1["id"]}}})

        t = threading.Thread(target=put)
        t.start()
        wait_for(marker + ".paused")  # the server is inside the copy
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # it stops accepting new connections...
            try:
                httpx.get(s.url + "/", timeout=1)
            except httpx.TransportError:
                break
            assert time.monotonic() < deadline, "the server kept accepting after SIGTERM"
            time.sleep(0.05)
        assert s.proc.poll() is None  # ...but waits for the request in flight
        with open(marker + ".go", "w"):
            pass
        t.join(30)
        assert out["r"].status_code == 200, out["r"].text
        assert s.proc.wait(30) == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    assert cli.json("disk", "show", "-n", "d2")["properties"]["creationData"]["createOption"] == "Copy"
