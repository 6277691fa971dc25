"""Dedup domains through the gallery (``gallery/dedup.py``): resource -> subscription -> home
tenant -> domain; the local tenant keeps the home domain; other tenants get a domain number
on first capture and ids keyed with ``identity/dedup.key`` (0600, published atomically); a
missing or damaged key is a clear error and changes nothing. Then the privacy claim end to
end: a capture for tenant B does the same work and reports the same whether or not the local
tenant (through the CLI) or tenant C stored the disk before."""

from __future__ import annotations

import os
import random
import stat

import pytest

from imagestore.errors import IntegrityError, NotFound
from imagestore.gallery import GalleryService, capture, dedup
from imagestore.gallery.directory_repository import DirectoryRepository
from imagestore.home import Home
from imagestore.store import domains
from tests.conftest import Cli
from tests.helpers import store_tree_snapshot

MiB = 1 << 20
LOCAL_SUB = "00000000-0000-0000-0000-000000000000"
SUB_B, TENANT_B = "11111111-1111-1111-1111-111111111111", "bbbbbbbb-0000-0000-0000-00000000000b"
SUB_C, TENANT_C = "22222222-2222-2222-2222-222222222222", "cccccccc-0000-0000-0000-00000000000c"


def rid(sub: str, name: str = "snap") -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/{name}"


def gallery(store_dir: str) -> GalleryService:
    svc = GalleryService(Home.open(store_dir))
    d = DirectoryRepository(svc.repo.con)
    with d.transaction():
        for t, s, dom in ((TENANT_B, SUB_B, "b.example"), (TENANT_C, SUB_C, "c.example")):
            if d.tenant(t) is None:
                d.add_tenant(t, dom, dom)
                d.add_subscription(s, dom, t)
    return svc


def test_domain_of_resource(store_dir):
    svc = gallery(store_dir)
    key = dedup.key_path(store_dir)
    assert svc.placement.dedup_domain(rid(LOCAL_SUB)) == domains.HOME_DOMAIN
    assert svc.placement.dedup_domain(rid(LOCAL_SUB.upper())) == domains.HOME_DOMAIN
    assert not os.path.exists(key)  # the local tenant needs no key
    b = svc.placement.dedup_domain(rid(SUB_B))
    c = svc.placement.dedup_domain(rid(SUB_C, "other"))
    assert (b.tag, c.tag) == (1, 2) and b.key == c.key and len(b.key) == 32
    assert svc.placement.dedup_domain(rid(SUB_B, "x")) == b  # stable
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 32
    assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
    assert not [n for n in os.listdir(os.path.dirname(key)) if n.startswith(".tmp")]
    # a second service (another process) agrees
    assert gallery(store_dir).placement.dedup_domain(rid(SUB_C)) == c
    for bad in ("/subscriptions/33333333-3333-3333-3333-333333333333/resourceGroups/rg",
                "/resourceGroups/rg", ""):
        with pytest.raises(NotFound):
            svc.placement.dedup_domain(bad)


@pytest.mark.sqlite_gallery("compares the store tree, which holds the SQLite gallery database")
@pytest.mark.parametrize("damage", ["missing", "short", "long", "empty"])
def test_missing_or_damaged_key_is_an_error_and_changes_nothing(store_dir, damage):
    svc = gallery(store_dir)
    svc.placement.dedup_domain(rid(SUB_B))
    key = dedup.key_path(store_dir)
    if damage == "missing":
        os.unlink(key)
    else:
        with open(key, "wb") as f:
            f.write({"short": b"x" * 31, "long": b"x" * 33, "empty": b""}[damage])
    before = store_tree_snapshot(store_dir)
    for sub in (SUB_B, SUB_C):  # a known tenant, and one whose domain would be new
        with pytest.raises(IntegrityError) as e:
            svc.placement.dedup_domain(rid(sub))
        assert key in str(e.value)
        assert ("missing" if damage == "missing" else "damaged") in str(e.value)
    assert store_tree_snapshot(store_dir) == before
    # the local tenant's captures do not need the key
    assert svc.placement.dedup_domain(rid(LOCAL_SUB)) == domains.HOME_DOMAIN


def _disk(path, seed: int) -> str:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(20 * MiB)
        for i in (0, 3, 4, 9, 17):
            f.seek(i * MiB)
            f.write(rnd.randbytes(MiB) if i % 2 else (b"tenant text %d\n" % (i + seed)) * 70000)
    return str(path)


KEY = bytes(range(100, 132))


def _world(store_dir: str, other: str, first_disk: str, disk: str) -> tuple[dict, dict]:
    """A store with a known dedup key where ``other`` (the local tenant through the CLI, or
    tenant C) captured ``first_disk``; then tenant B captures ``disk``: what B sees, and the
    pack bytes its capture wrote."""
    Home.open(store_dir)
    os.makedirs(os.path.join(store_dir, "identity"), mode=0o700)
    fd = os.open(dedup.key_path(store_dir), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, KEY)
    os.close(fd)
    if other == "local":
        first = Cli(store_dir).json("store", "ingest", first_disk, "--source-format", "raw")
        assert first["newChunks"] > 0
    else:
        _capture(store_dir, first_disk, SUB_C)
    return _capture(store_dir, disk, SUB_B)


def _capture(store_dir: str, disk: str, sub: str) -> tuple[dict, dict]:
    svc = gallery(store_dir)
    store = svc.placement.home.blob_store()
    before = {n: os.path.getsize(os.path.join(store.packs_dir, n)) for n in os.listdir(store.packs_dir)}
    res = capture.capture_file(store, disk, source_format="raw", label="snapshot", threads=2,
                               observer=None, published=[],
                               domain=svc.placement.dedup_domain(rid(sub)))
    after = {n: os.path.getsize(os.path.join(store.packs_dir, n)) for n in os.listdir(store.packs_dir)}
    assert all(after[n] == s for n, s in before.items())
    written = sum(s for n, s in after.items() if n not in before)
    svc.placement.home.blob_store().close()
    return res.to_json(), {"packBytesWritten": written, "newPacks": len(after) - len(before)}


@pytest.mark.sqlite_gallery("two stores (two worlds), each with its own gallery database")
@pytest.mark.parametrize("other", ["local", "tenant-c"])
def test_tenant_b_capture_is_the_same_whether_or_not_another_tenant_stored_the_disk(
        tmp_path, other):
    """World 1: ``other`` captured disk X; world 2: it captured a different disk Y. Tenant
    B's capture of X writes and reports the same in both, digest included (the work is
    asserted, not wall time)."""
    x, y = _disk(tmp_path / "x.raw", 1), _disk(tmp_path / "y.raw", 2)
    seen, work = _world(str(tmp_path / "w1"), other, x, x)
    alone, alone_work = _world(str(tmp_path / "w2"), other, y, x)
    assert seen == alone and work == alone_work
    assert seen["newChunks"] > 0 and work["packBytesWritten"] >= seen["storedBytes"] > 0
    # within tenant B dedup still works
    again, again_work = _capture(str(tmp_path / "w1"), x, SUB_B)
    assert again["newChunks"] == 0 and again["storedBytes"] == 0
    assert again["digest"] == seen["digest"] and again_work["packBytesWritten"] == 0
    # and the store is sound: every domain verifies
    assert Cli(str(tmp_path / "w1")).json("store", "verify")["clean"] is True


def test_concurrent_first_captures_agree(store_dir):
    """Several services (as several processes would) ask for B's and C's domains at once:
    one number per tenant, one key."""
    from concurrent.futures import ThreadPoolExecutor

    gallery(store_dir)  # the directory rows

    def ask(i: int) -> domains.Domain:
        svc = GalleryService(Home.open(store_dir))
        return svc.placement.dedup_domain(rid(SUB_B if i % 2 else SUB_C))

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, range(16)))
    assert {d.tag for d in got[1::2]} | {d.tag for d in got[0::2]} == {1, 2}
    assert len({d.tag for d in got[1::2]}) == 1 and len({d.tag for d in got[0::2]}) == 1
    assert len({d.key for d in got}) == 1
