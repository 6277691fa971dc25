"""The background worker: --no-wait returns at once and a worker started on demand finishes the
job; SIGKILL of the worker mid-replication at random moments, several times, then a restart
completes it (verify clean, no chunk stored twice, the stale lease taken over); one worker at
a time; per-region progress for `wait`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

from imagestore import worker as jobs
from imagestore.gallery import GalleryService
from imagestore.home import Home
from imagestore.regions import RegionRegistry
from imagestore.regions.replicas import open_slot, region_slots
from imagestore.store.maintenance import verify
from imagestore.worker import lease
from tests.helpers import (
    kill_when_grown,
    make_random,
    pack_records,
    run_imagestore,
    run_with_tty_stderr,
)

MiB = 1 << 20


def env_no_autostart() -> dict:
    return {**os.environ, "IMAGESTORE_AUTOSTART_WORKER": "0"}


def setup_gallery(store: str, env: dict | None = None) -> None:
    run_imagestore("--store", store, "sig", "create", "-r", "g", env=env)
    run_imagestore("--store", store, "sig", "image-definition", "create", "-r", "g", "-i", "d",
                   "-p", "P", "-f", "O", "-s", "S", "--os-type", "Linux", env=env)


def show(store: str, v: str = "1.0.0", env: dict | None = None) -> dict:
    return json.loads(run_imagestore("--store", store, "sig", "image-version", "show", "-r", "g",
                                     "-i", "d", "-e", v, "--expand", "ReplicationStatus",
                                     env=env).stdout)


def test_no_wait_and_worker_on_demand(tmp_path):
    store = str(tmp_path / "store")
    src = make_random(str(tmp_path / "src.raw"), 24, 3)
    setup_gallery(store)
    run_imagestore("--store", store, "region", "create", "west", "--path", str(tmp_path / "w"))
    p = run_imagestore("--store", store, "sig", "image-version", "create", "-r", "g", "-i", "d",
                       "-e", "1.0.0", "--os-vhd-uri", src, "--target-regions", "local", "west=2",
                       "--no-wait")
    assert p.stdout == ""
    # the command started a detached worker; `wait` follows the version to the end
    w = run_imagestore("--store", store, "sig", "image-version", "wait", "-r", "g", "-i", "d",
                       "-e", "1.0.0", "--created", "--timeout", "60")
    assert w.returncode == 0, w.stderr
    v = show(store)
    assert v["properties"]["provisioningState"] == "Succeeded"
    assert v["properties"]["replicationStatus"]["aggregatedState"] == "Completed"
    log = open(os.path.join(store, jobs.LOG_NAME)).read()
    assert "replicate version" in log and "completed" in log
    out = str(tmp_path / "o.raw")
    run_imagestore("--store", store, "disk", "create", "-n", "o", "--gallery-image-reference",
                   "g/d", "-l", "west", "--path", out)
    subprocess.run(["cmp", src, out], check=True)
    home = Home.open(store)
    svc = GalleryService(home)
    try:
        assert svc.repo.pending_jobs() == 0
        deadline = time.monotonic() + 10
        while jobs.lease_holder(svc.repo) and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker releases its lease as it exits
        assert jobs.lease_holder(svc.repo) is None
    finally:
        svc.close()
        home.close()


def test_sigkill_worker_mid_replication_resumes(tmp_path):
    store = str(tmp_path / "store")
    env = env_no_autostart()
    size = 160
    src = make_random(str(tmp_path / "src.raw"), size, 5)
    run_imagestore("--store", store, "init", "--chunk-size", "256K")
    setup_gallery(store, env)
    zone = str(tmp_path / "w")
    run_imagestore("--store", store, "region", "create", "west", "--path", zone, env=env)
    run_imagestore("--store", store, "sig", "image-version", "create", "-r", "g", "-i", "d",
                   "-e", "1.0.0", "--os-vhd-uri", src, "--target-regions", "local", "west",
                   "--no-wait", env=env)
    assert show(store, env=env)["properties"]["provisioningState"] == "Creating"
    argv = [sys.executable, "-m", "imagestore.cli.main", "--store", store, "worker", "--once"]
    rnd = random.Random(77)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kills += kill_when_grown(proc, zone, int(rnd.uniform(0.05, 0.25) * size * MiB))
        if proc.returncode == 0:
            break
        st = show(store, env=env)["properties"]
        assert st["provisioningState"] == "Creating"
        west = next(s for s in st["replicationStatus"]["summary"] if s["region"] == "west")
        assert west["state"] in ("Queued", "Replicating") and west["progress"] < 100
    assert kills >= 3
    # the next worker takes the stale lease over and finishes without copying again
    p = run_imagestore("--store", store, "worker", "--once", env=env)
    assert json.loads(p.stdout)["ran"] == 1 and "attempt=" in p.stderr
    v = show(store, env=env)
    assert v["properties"]["provisioningState"] == "Succeeded"
    assert v["properties"]["replicationStatus"]["aggregatedState"] == "Completed"
    home = Home.open(store)
    reg = RegionRegistry(home)
    slots = [open_slot(s, home.config, create=False) for s in region_slots(reg.get("west"))]
    dst = slots[0]
    digest = v["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
    ids = set(home.blob_store().load_manifest(digest).ids())
    assert dst.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == len(ids) == size * 4
    recs = pack_records(dst)
    assert set(recs) == ids
    assert sum(n - 1 for n in recs.values()) <= kills  # at most the record in flight per kill
    rep = verify(dst)
    assert rep.clean and rep.unreferenced_chunks == 0
    for s in slots:
        s.close()
    svc = GalleryService(home)
    try:
        assert svc.repo.pending_jobs() == 0 and jobs.lease_holder(svc.repo) is None
    finally:
        svc.close()
        home.close()
    out = str(tmp_path / "o.raw")
    run_imagestore("--store", store, "disk", "create", "-n", "o", "--gallery-image-reference",
                   "g/d/1.0.0", "-l", "west", "--path", out, env=env)
    subprocess.run(["cmp", src, out], check=True)


def test_one_worker_at_a_time_and_stale_lease(tmp_path):
    store = str(tmp_path / "store")
    home = Home.open(store)
    svc = GalleryService(home)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with svc.repo.transaction():
            svc.con.execute("INSERT INTO worker_lease(id, pid, host, heartbeat, started) VALUES "
                            "(1, ?, ?, ?, 'x')", (sleeper.pid, lease.hostname(), time.time()))
            svc.con.execute("INSERT INTO jobs(kind, payload, state, created) VALUES "
                            "('gc', '{\"region\": \"local\"}', 'queued', 'x')")
        assert jobs.lease_holder(svc.repo).pid == sleeper.pid
        assert jobs.run_worker(svc, once=True, verbose=False)["leaseHeldBy"] == sleeper.pid
        assert jobs.ensure_worker(svc) is None  # a live worker holds the lease
        sleeper.kill()
        sleeper.wait()
        assert jobs.lease_holder(svc.repo) is None  # its process is gone: stale
        res = jobs.run_worker(svc, once=True, verbose=False)
        assert res == {"ran": 1, "leaseHeldBy": None, "pending": 0}
        # an old heartbeat is stale too, even if the pid is alive
        with svc.repo.transaction():
            svc.con.execute("INSERT INTO worker_lease(id, pid, host, heartbeat, started) VALUES "
                            "(1, ?, 'elsewhere', ?, 'x')", (os.getpid(), time.time() - 3600))
        assert jobs.lease_holder(svc.repo) is None
    finally:
        sleeper.kill()
        svc.close()
        home.close()


def test_region_bars_from_progress():
    seen: dict[str, list] = {}

    class Bar:
        def __init__(self, label):
            self.label = label
            seen[label] = []

        def __call__(self, done, total):
            seen[self.label].append((done, total))

        def close(self):
            seen[self.label].append("closed")

    from imagestore.cli.progress import GalleryProgress
    from imagestore.gallery import ProgressEvent, TaskKind

    bars = GalleryProgress(Bar)

    def ev(region, state, done, total):
        bars(ProgressEvent(TaskKind.REPLICATE, region, done, total, state=state,
                           final=state in ("Completed", "Failed")))

    ev("west", "Queued", 0, 0)
    ev("west", "Replicating", 10, 100)
    ev("west", "Replicating", 60, 100)
    ev("west", "Completed", 100, 100)
    ev("west", "Completed", 100, 100)  # polled again: nothing more
    ev("local", "Completed", 5, 5)  # completed before we looked: no bar
    bars.close()
    assert seen == {"replicate west": [(10, 100), (60, 100), (100, 100), "closed"]}


def test_progress_bars_per_region_on_a_terminal(tmp_path):
    store = str(tmp_path / "store")
    env = env_no_autostart()
    src = make_random(str(tmp_path / "src.raw"), 12, 9)
    setup_gallery(store, env)
    for n in ("west", "east"):
        run_imagestore("--store", store, "region", "create", n, "--path", str(tmp_path / n))
    rc, out, err = run_with_tty_stderr(
        ["--store", store, "sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
         "--os-vhd-uri", src, "--target-regions", "local", "west", "east=2"])
    assert rc == 0, err
    assert "capture os disk [" in err
    for n, mib in (("west", "12.0"), ("east", "24.0")):
        assert f"replicate {n} [" in err and f"{mib} MiB/{mib} MiB" in err and "/s" in err, err
    assert json.loads(out)["properties"]["provisioningState"] == "Succeeded"
    # `wait` after --no-wait shows the bars too, and starts the worker itself
    run_imagestore("--store", store, "sig", "image-version", "create", "-r", "g", "-i", "d",
                   "-e", "2.0.0", "--os-vhd-uri", src, "--target-regions", "local", "west",
                   "--replica-count", "3", "--no-wait", env=env)
    rc, out, err = run_with_tty_stderr(
        ["--store", store, "sig", "image-version", "wait", "-r", "g", "-i", "d", "-e", "2.0.0",
         "--created", "--interval", "1"])
    assert rc == 0, err
    assert "replicate west [" in err and "100.0%" in err, err
    assert show(store, "2.0.0")["properties"]["provisioningState"] == "Succeeded"


def test_no_wait_capture_failure_and_deletion_while_queued(tmp_path, run, monkeypatch):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    src = tmp_path / "gone.raw"
    src.write_bytes(os.urandom(MiB))
    base = ["sig", "image-version", "create", "-r", "g", "-i", "d", "--os-vhd-uri", str(src),
            "--target-regions", "local", "west", "--no-wait", "-e"]
    assert run(*base, "1.0.0").exit_code == 0
    os.unlink(src)  # the source disappears before the worker captures it
    assert run.json("worker", "--once")["ran"] == 1
    v = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--expand", "ReplicationStatus")
    assert v["properties"]["provisioningState"] == "Failed"
    st = v["properties"]["replicationStatus"]
    assert st["aggregatedState"] == "Failed"
    assert all(s["state"] == "Failed" and "capture failed" in s["details"] and str(src) in s["details"]
               for s in st["summary"]), st
    # deleted while its job is still queued: the job goes, nothing is ever written to west
    src.write_bytes(os.urandom(MiB))
    assert run(*base, "2.0.0").exit_code == 0
    run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "2.0.0")
    assert run.json("worker", "--once")["ran"] == 0
    assert all(s["manifests"] == 0 for s in run.json("region", "show", "west")["slots"])
    assert os.listdir(os.path.join(run.store, "regions", "local", "manifests")) == []


def test_version_deleted_while_replicating_leaves_no_orphans(tmp_path, run, monkeypatch):
    """The worker finds the version gone when it finishes a region and unpublishes what it
    copied there; the region's gc then reclaims the space."""
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    src = make_random(str(tmp_path / "s.raw"), 8, 4)
    assert run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
               "--os-vhd-uri", src, "--target-regions", "local", "west=2").exit_code == 0
    home = Home.open(run.store)
    svc = GalleryService(home)
    other = GalleryService(home)
    try:
        r = run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "2.0.0",
                "--os-vhd-uri", make_random(str(tmp_path / "t.raw"), 8, 5),
                "--target-regions", "local", "west", "--no-wait")
        assert r.exit_code == 0
        vpk = svc.version_pk("default", "g", "d", "2.0.0")
        deleted = []

        def progress(ev):
            if ev.subject == "west" and ev.done and not deleted:
                other.delete_version("default", "g", "d", "2.0.0")
                deleted.append(ev.subject)

        w = jobs.Worker(svc)
        assert w.lease.acquire(svc.repo)
        try:
            w.run(once=True, only_version=vpk, observer=progress)
        finally:
            w.lease.release(svc.repo)
        assert deleted == ["west"]
    finally:
        other.close()
        svc.close()
        home.close()
    v1 = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    d1 = v1["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
    for region in ("local", "west"):
        for s in run.json("region", "show", region)["slots"]:
            assert s["manifests"] == 1, (region, s)  # only 1.0.0's
    run.json("region", "gc", "west")
    run.json("store", "gc")
    for region in ("local", "west"):
        rep = run.json("region", "verify", region)
        assert rep["clean"] and all(s["unreferencedChunks"] == 0 for s in rep["slots"]), rep
    out = str(tmp_path / "o.raw")
    run.json("disk", "create", "-n", "o", "--gallery-image-reference", "g/d", "-l", "west",
             "--path", out)
    subprocess.run(["cmp", src, out], check=True)
    assert d1
