"""Dedup privacy end to end (issue 15): two tenants' principals, each Contributor on its own
subscription, capture the same disk through the REST API with the real azure-mgmt-compute
SDK. What tenant B is shown for its capture (storedBytes, dataBytes, allocatedBytes in the
version's JSON) is what a capture of that disk into an empty store
gives, whether tenant A (or the local tenant) stored it before or not; B's second capture
dedupes against B's own chunks only; the store verifies clean with three domains."""

from __future__ import annotations

import random
import subprocess

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.formats import open_disk
from imagestore.store.cas import BlobStore
from imagestore.store.ingest import ingest
from imagestore.store.layout import CasConfig
from tests.conftest import Cli
from tests.helpers import need

from .conftest import start_server

pytestmark = pytest.mark.one_pass

SUBS = {"A": "44444444-aaaa-4bbb-8ccc-444444444444", "B": "55555555-aaaa-4bbb-8ccc-555555555555"}
API = "2022-03-03"
MiB = 1 << 20


def random_vhd(base) -> str:
    """A VHD of 8 MiB with 3 MiB of random (incompressible) data and 1 MiB of text."""
    rnd = random.Random(11)
    raw = f"{base}.raw"
    with open(raw, "wb") as f:
        f.truncate(8 * MiB)
        f.write(rnd.randbytes(3 * MiB))
        f.seek(5 * MiB)
        f.write((b"a line of a text file\n" * 50000)[:MiB])
    out = f"{base}.vhd"
    subprocess.run([need("qemu-img"), "convert", "-f", "raw", "-O", "vpc", raw, out], check=True)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    src_dir = tmp_path_factory.mktemp("dedup-src")
    src = random_vhd(src_dir / "x")
    store = str(tmp_path_factory.mktemp("dedup-api") / "store")
    srv = start_server(store, "--retry-after", "0", "--principal-import-dir", str(src_dir))
    cli = Cli(store)
    tokens = {}
    for who, sub in SUBS.items():
        t = cli.json("ad", "tenant", "create", "--display-name", f"T{who}")["tenantId"]
        cli.json("account", "create", "--tenant", t, "--display-name", f"sub {who}",
                 "--subscription-id", sub)
        upn = f"user@{who.lower()}.example"
        cli.json("ad", "user", "create", "--user-principal-name", upn, "--display-name", who,
                 "--tenant", t)
        cli.json("role", "assignment", "create", "--assignee", upn, "--role", "Contributor",
                 "--scope", f"/subscriptions/{sub}")
        tokens[who] = cli.json("token", "create", "--assignee", upn)["accessToken"]
    yield {"server": srv, "cli": cli, "tokens": tokens, "src": src, "store": store}
    srv.stop()
    if srv.proc.poll() is None:
        srv.proc.kill()


def alone(src: str, tmp) -> dict:
    """What a capture of ``src`` into an empty store (same configuration) stores."""
    r = open_disk(src)
    try:
        s = BlobStore.create(str(tmp / "empty"), CasConfig())
        res = ingest(s, r)
        s.close()
    finally:
        r.close()
    return {"storedBytes": res.stored_bytes, "dataBytes": res.data_bytes,
            "allocatedBytes": res.allocated_bytes}


def capture(w, who: str, rg: str, version: str, regions: tuple[str, ...] = ()) -> dict:
    """Tenant ``who`` captures the source as version ``version`` in its subscription;
    returns the version's JSON as B's REST client gets it."""
    sub = SUBS[who]
    with w["server"].client() as c:
        r = c.put(f"/subscriptions/{sub}/resourceGroups/{rg}?api-version=2022-09-01",
                  json={"location": "local"})
        assert r.status_code in (200, 201), r.text
    cm = ComputeManagementClient(**sdk_kwargs(w["server"].url, w["tokens"][who],
                                              subscription_id=sub, polling_interval=0))
    cm.galleries.begin_create_or_update(rg, "g", m.Gallery(location="local")).result()
    cm.gallery_images.begin_create_or_update(rg, "g", "d", m.GalleryImage(
        location="local", os_type="Linux", os_state="Generalized",
        identifier=m.GalleryImageIdentifier(publisher="P", offer="O", sku="S"))).result()
    cm.gallery_image_versions.begin_create_or_update(rg, "g", "d", version, m.GalleryImageVersion(
        location="local",
        publishing_profile=m.GalleryImageVersionPublishingProfile(
            target_regions=[m.TargetRegion(name=r) for r in ("local", *regions)]),
        storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(
                uri="file://" + w["src"]))))).result()
    with w["server"].client(w["tokens"][who]) as c:
        r = c.get(f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
                  f"galleries/g/images/d/versions/{version}?api-version={API}"
                  f"&$expand=ReplicationStatus")
        assert r.status_code == 200, r.text
        return r.json()


def seen(v: dict) -> dict:
    d = v["properties"]["localStorage"]["osDiskImage"]
    return {k: d[k] for k in ("storedBytes", "dataBytes", "allocatedBytes")}


def test_tenant_b_sees_the_same_whether_or_not_a_stored_the_disk(world, tmp_path):
    w = world
    expected = alone(w["src"], tmp_path)
    assert expected["storedBytes"] > 3 * MiB
    a = capture(w, "A", "rg-a", "1.0.0")
    assert seen(a) == expected
    b = capture(w, "B", "rg-b", "1.0.0")  # A stored this disk first: B cannot tell
    assert seen(b) == expected
    assert (b["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
            != a["properties"]["localStorage"]["osDiskImage"]["manifestDigest"])
    # the local tenant (the owner's CLI) also stores its own copy
    own = w["cli"].json("store", "ingest", w["src"])
    assert own["storedBytes"] == expected["storedBytes"]
    # B's own second capture dedupes against B's chunks
    b2 = capture(w, "B", "rg-b", "2.0.0")
    assert seen(b2) == {**expected, "storedBytes": 0}
    rep = w["cli"].json("store", "verify")
    assert rep["clean"] is True
    assert w["cli"].json("store", "stats")["manifests"] == 3
    # replication of A's and B's copies to a second region: each sends its own chunks
    w["cli"].json("region", "create", "west", "--path", str(tmp_path / "west"))
    for who, rg in (("A", "rg-a"), ("B", "rg-b")):
        v = capture(w, who, rg, "3.0.0", ("west",))
        reps = {r["region"]: r for r in v["properties"]["localStorage"]["replication"]}
        assert reps["west"]["state"] == "Completed" and reps["west"]["bytesSent"] > 3 * MiB
    assert w["cli"].json("region", "verify", "west")["clean"] is True
