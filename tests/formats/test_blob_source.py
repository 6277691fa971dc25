"""VHDs from and to Azure Blob Storage (Azurite): fixed and dynamic VHDs uploaded as sparse page
blobs (only their written pages) capture to the same digest as the local files while reading
only the written ranges (bytes counted on the wire and by the source); a block blob reads
whole; a disk written into a page blob (only non-zero pages, footer last) reads back equal
and qemu-img accepts it after download; hostile blob URLs fail on one line."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from tests.azurite import KEY
from tests.helpers import fails, need, store_tree_snapshot

pytestmark = pytest.mark.one_pass
MiB = 1 << 20
PIECE = 64 << 10


def make_raw(path: str, seed: int) -> str:
    """64 MiB, 3 MiB of data in three places (one not MiB-aligned)."""
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
        for i, at in enumerate((1 * MiB, 7 * MiB + 4096, 30 * MiB)):
            f.seek(at)
            f.write(random.Random(seed + i).randbytes(MiB))
    return path


def upload_sparse_page_blob(container, name: str, path: str) -> int:
    """Upload ``path`` as a page blob, writing only its non-zero 64 KiB pieces. Returns the
    bytes written."""
    size = os.path.getsize(path)
    b = container.get_blob_client(name)
    b.create_page_blob(size=-(-size // 512) * 512)
    sent = 0
    with open(path, "rb") as f:
        for off in range(0, size, PIECE):
            piece = f.read(PIECE)
            if piece.strip(b"\0"):
                piece = piece.ljust(-(-len(piece) // 512) * 512, b"\0")
                b.upload_page(piece, offset=off, length=len(piece))
                sent += len(piece)
    return sent


@pytest.fixture
def blobs(run, tmp_path, monkeypatch, azurite, blob_proxy):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       azurite.connection_string(blob_proxy.port))
    name = f"v{random.Random(str(tmp_path)).randbytes(6).hex()}"
    run.container = azurite.make_container(name)
    run.base = f"{azurite.endpoint(blob_proxy.port)}/{name}"
    run.tmp = tmp_path
    return run


@pytest.mark.parametrize("subformat", ["fixed", "dynamic"])
def test_vhd_page_blob_captures_like_the_file_reading_only_written_ranges(
        blobs, blob_proxy, subformat):
    qemu = need("qemu-img")
    run, tmp = blobs, blobs.tmp
    raw = make_raw(str(tmp / "d.raw"), 1)
    vhd = str(tmp / "d.vhd")
    subprocess.run([qemu, "convert", "-O", "vpc", "-o", f"subformat={subformat}", raw, vhd],
                   check=True)
    written = upload_sparse_page_blob(run.container, "d.vhd", vhd)
    assert written < 4 * MiB  # sparse: a 64 MiB disk, 3 MiB of data (+ VHD metadata)
    local = run.json("store", "ingest", vhd)
    blob_proxy.reset()
    remote = run.json("store", "ingest", f"{run.base}/d.vhd")
    assert remote["digest"] == local["digest"]
    assert remote["sourceFormat"] == local["sourceFormat"] == f"vhd-{subformat}"
    # only the written ranges were read: on the wire, and as the source counted them
    assert written <= blob_proxy.down < written + 256 * 1024, (written, blob_proxy.down)

    from imagestore.formats import open_disk

    r = open_disk(f"{run.base}/d.vhd")
    try:
        for off, n in r.extents():
            r.read(off, n)
        st = r.source.stats
        assert st.bytes_read <= written + 64 * 1024, (st, written)
        if subformat == "fixed":  # the page ranges are the extents
            assert st.page_range_calls == 1
            assert sum(n for _o, n in r.extents()) == written - 512 or \
                sum(n for _o, n in r.extents()) <= written
    finally:
        r.close()


def test_block_blob_and_gallery_capture_from_url(blobs, blob_proxy):
    run, tmp = blobs, blobs.tmp
    raw = make_raw(str(tmp / "d.raw"), 2)
    with open(raw, "rb") as f:
        run.container.get_blob_client("d.raw").upload_blob(f, max_concurrency=4)
    local = run.json("store", "ingest", raw, "--source-format", "raw")
    blob_proxy.reset()
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    v = run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--os-vhd-uri", f"{run.base}/d.raw", "--os-vhd-storage-account",
                 "devstoreaccount1", "--source-format", "raw")
    prof = v["properties"]["storageProfile"]["osDiskImage"]
    assert prof["source"]["uri"] == f"{run.base}/d.raw"
    ver = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert json.dumps(ver).count(local["digest"]) or ver  # the same content as the file
    assert blob_proxy.down >= 64 * MiB  # a block blob has no page map: read whole
    fails(run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.1",
              "--os-vhd-uri", f"{run.base}/d.raw", "--os-vhd-storage-account", "otheracct"),
          3, "--os-vhd-storage-account", "otheracct")


def test_disk_to_page_blob_only_nonzero_pages_qemu_accepts(blobs, azurite, blob_proxy):
    qemu = need("qemu-img")
    run, tmp = blobs, blobs.tmp
    raw = make_raw(str(tmp / "d.raw"), 3)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", raw)
    blob_proxy.reset()
    url = f"{run.base}/new.vhd"
    out = run.json("disk", "create", "-n", "d1", "--gallery-image-reference", "g/d/1.0.0",
                   "--format", "vhd-fixed", "--path", url, "--threads", "4")
    assert out["properties"]["localStorage"]["path"] == url
    # only the non-zero pages (3 MiB) and the footer went up
    assert 3 * MiB <= blob_proxy.up < 3 * MiB + 200_000, blob_proxy.up
    b = run.container.get_blob_client("new.vhd")
    ranges = [(r.start, r.end + 1 - r.start) for r in b.list_page_ranges()]
    assert sum(n for _o, n in ranges) == 3 * MiB + 512
    props = b.get_blob_properties()
    assert props.size == 64 * MiB + 512
    got = str(tmp / "got.vhd")
    with open(got, "wb") as f:
        b.download_blob(max_concurrency=4).readinto(f)
    # qemu probes a fixed VHD as raw (no header at its start): name the format
    info = json.loads(subprocess.run([qemu, "info", "-f", "vpc", "--output=json", got],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["format"] == "vpc" and info["virtual-size"] >= 64 * MiB
    conv = str(tmp / "conv.raw")
    subprocess.run([qemu, "convert", "-f", "vpc", "-O", "raw", got, conv], check=True)
    with open(conv, "rb") as fa, open(raw, "rb") as fb:
        assert fa.read(64 * MiB) == fb.read()
    # reads back equal through imagestore's own reader, from the blob itself
    again = run.json("store", "ingest", url)
    local = run.json("store", "ingest", raw, "--source-format", "raw")
    assert again["digest"] == local["digest"]
    # the blob exists now: a second disk there is refused, the blob untouched
    fails(run("disk", "create", "-n", "d2", "--gallery-image-reference", "g/d/1.0.0",
              "--format", "vhd-fixed", "--path", url), 5, "new.vhd", "exists")
    assert b.get_blob_properties().etag == props.etag
    fails(run("disk", "create", "-n", "d3", "--gallery-image-reference", "g/d/1.0.0",
              "--format", "raw", "--path", f"{run.base}/x.raw"), 3, "--format", "vhd-fixed")
    assert not run.container.get_blob_client("x.raw").exists()
    # disk delete --delete-file removes the page blob
    assert run("disk", "delete", "-n", "d1", "--delete-file").exit_code == 0
    assert not b.exists()


def test_hostile_blob_sources_one_line_store_untouched(blobs, azurite, blob_proxy,
                                                       monkeypatch):
    run = blobs
    run.json("sig", "create", "-r", "g")  # a store with something in it
    before = store_tree_snapshot(run.store)
    fails(run("store", "ingest", f"{run.base}/missing.vhd"), 4, "missing.vhd", "not found")
    fails(run("store", "ingest", f"{azurite.endpoint(blob_proxy.port)}/nocontainer/d.vhd"),
          4, "nocontainer")
    fails(run("store", "ingest", "https://"), 3)
    run.container.get_blob_client("junk.vhd").upload_blob(b"not a disk " * 100)
    fails(run("store", "ingest", f"{run.base}/junk.vhd"), 6, "junk.vhd")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       azurite.connection_string(blob_proxy.port).replace(KEY, "A" * 86 + "=="))
    r = run("store", "ingest", f"{run.base}/junk.vhd")
    fails(r, 14, "access denied")
    assert "A" * 86 not in r.stderr
    assert store_tree_snapshot(run.store) == before
