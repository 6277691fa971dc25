"""Crash points, systematically: every invocation of the write-path system calls of a command
is a kill point. The command runs under ``strace -e inject=SYSCALL:signal=KILL:when=N`` for
N = 1, 2, … until it completes untouched, one syscall of the set at a time (strace counts
invocations per syscall), each time from the same starting state. After every kill:

* ``store verify`` exits 0 (for the first use of a new store: there is no store at all, or a
  verified one; for ``verify --repair``: no damage beyond the one being repaired);
* the retried command succeeds (an image version whose row was committed before the kill is
  resumed by ``worker --once``, which is what the product does);
* the content is byte-identical to the source (``store materialize`` / ``disk create``);
* after ``store gc`` nothing is left that was not published: no unreferenced chunk, no temp
  file or directory in or beside the store.

The syscall set: every invocation of ``rename``/``renameat2`` (publish), ``unlink``/``rmdir``
(removal), ``mkdir`` (creation) and ``ftruncate`` (SQLite's WAL reset, a pack cut back): what
changes the store's visible state. ``pwritev2`` (pack records), ``pwrite64`` (SQLite pages),
``write`` (temp files), ``fsync`` and ``fdatasync`` are sampled at their first, middle and last
invocation: a SIGKILL just before an fsync leaves the same files as one just before the next
state change, and each point costs a Python start. ``IMAGESTORE_KILL_POINTS=all`` kills at
every invocation of every syscall of both sets. Counts (sampled / all): first use 32 / 96,
ingest 18 / 35, image-version create 27 / 151, gc 20 / 59, verify --repair 19 / 64; printed
with ``-s``.

The checks run in-process (CliRunner) to keep the module fast: only the killed command is a
real process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from imagestore.store.cas import BlobStore
from imagestore.store.materialize import materialize
from imagestore.store.packs import scan_pack
from tests.conftest import Cli
from tests.helpers import MiB, need

#: the write-path syscalls whose every invocation is a kill point: what changes the store's
#: visible state (publish, removal, creation, truncation); a SIGKILL just before an fsync
#: leaves the same files as one just before the next of these, so fsyncs are sampled
EVERY = ("rename", "renameat2", "link", "linkat", "unlink", "rmdir", "mkdir", "ftruncate")
#: sampled: SAMPLES invocations spread over the command's count, the first and last included
SAMPLED = ("pwritev2", "pwrite64", "write", "fsync", "fdatasync")
SAMPLES = 3
#: IMAGESTORE_KILL_POINTS=all kills at every invocation of every syscall of both sets
FULL = os.environ.get("IMAGESTORE_KILL_POINTS") == "all"
#: killed commands run this many at a time (the checks afterwards run one at a time)
PARALLEL = 2

SUMMARY: dict[str, dict[str, int]] = {}


def make_source(path: str, seed: int, shared: bytes = b"") -> str:
    """A few 256 KiB chunks: random, compressible, a zero run and a hole; ``shared`` first
    (chunks another source has too, so a second ingest dedups part of it)."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.write(shared)
        f.write(rnd.randbytes(MiB // 2))
        f.write(rnd.randbytes(64) * (MiB // 256))
        f.write(bytes(MiB // 2))
        f.seek(MiB // 2, 1)  # a hole
        f.write(rnd.randbytes(MiB // 4))
    return path


def imagestore_argv(argv: list[str], *strace: str) -> list[str]:
    return [need("strace"), "-f", "-qq", *strace, sys.executable, "-m", "imagestore.cli.main",
            *argv]


def syscall_counts(argv: list[str], env: dict, log: str) -> dict[str, int]:
    """How often the command makes each syscall of the sets (all processes and threads)."""
    cmd = imagestore_argv(argv, "-c", "-o", log, "-e", "trace=" + ",".join(EVERY + SAMPLED))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    counts = {}
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[-1] in EVERY + SAMPLED:
                counts[parts[-1]] = int(parts[3])
    return counts


def killed_run(argv: list[str], syscall: str, n: int, env: dict) -> int:
    """Run imagestore under strace, SIGKILLed at the n-th ``syscall`` of any of its
    processes/threads (strace counts per thread); returns the exit status (0 when it completed
    untouched)."""
    cmd = imagestore_argv(argv, "-o", os.devnull, "-e", f"trace={syscall}",
                          "-e", f"inject={syscall}:signal=KILL:when={n}")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if p.returncode not in (0, -9, 137):
        raise AssertionError(f"{syscall}@{n}: exit {p.returncode} without a kill: {p.stderr}")
    return p.returncode


def points(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(syscall, n) of every kill point to try."""
    out = []
    for syscall in EVERY + SAMPLED:
        c = counts.get(syscall, 0)
        if FULL or syscall in EVERY or c <= SAMPLES:
            ns = list(range(1, c + 1))
        else:
            ns = sorted({1 + (c - 1) * i // (SAMPLES - 1) for i in range(SAMPLES)})
        out += [(syscall, n) for n in ns]
    return out


def leftovers(*dirs: str) -> list[str]:
    """Temp files and directories (``.tmp-*``, ``*.imagestore-new-*``) under or in ``dirs``."""
    out = []
    for d in dirs:
        for dirpath, dirnames, files in os.walk(d):
            for name in dirnames + files:
                if name.startswith(".tmp-") or ".imagestore-new-" in name:
                    out.append(os.path.join(dirpath, name))
    return out


def enumerate_points(label: str, prepare, argv_for, check, tmp_path) -> None:
    """Kill the command at each of its points; ``prepare(dir)`` makes the starting state and
    returns the store path, ``check(store)`` asserts the invariants after a kill and retries."""
    from concurrent.futures import ThreadPoolExecutor

    env = dict(os.environ, IMAGESTORE_AUTOSTART_WORKER="0")
    store = prepare(str(tmp_path / f"{label}-count"))
    counts = syscall_counts(argv_for(store), env, str(tmp_path / f"{label}.strace"))
    todo = points(counts)
    stores = [prepare(str(tmp_path / f"{label}-{sc}-{n}")) for sc, n in todo]
    with ThreadPoolExecutor(PARALLEL) as pool:
        rcs = list(pool.map(lambda a: killed_run(argv_for(a[1]), a[0][0], a[0][1], env),
                            zip(todo, stores, strict=True)))
    killed: dict[str, int] = {}
    for (syscall, n), st, rc in zip(todo, stores, rcs, strict=True):
        try:
            check(st)
        except BaseException as e:
            raise AssertionError(f"{label}: after a kill at {syscall} #{n}: {e}") from e
        if rc != 0:
            killed[syscall] = killed.get(syscall, 0) + 1
        shutil.rmtree(os.path.dirname(st))
    SUMMARY[label] = killed
    print(f"\nkill points {label}: {sum(killed.values())} killed of {len(todo)} tried "
          f"({'all' if FULL else 'sampled'}); calls: " +
          " ".join(f"{k}={v}" for k, v in counts.items()) + "; killed: " +
          " ".join(f"{k}={v}" for k, v in killed.items()))
    assert sum(killed.values()) > 0


def verify_ok(run: Cli, *extra: str) -> dict:
    r = run("store", "verify", *extra)
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
    return json.loads(r.stdout)


def same_bytes(run: Cli, digest: str, src: str, out: str) -> None:
    r = run("store", "materialize", digest, "--path", out, "--force")
    assert r.exit_code == 0, r.stderr
    with open(src, "rb") as a, open(out, "rb") as b:
        assert a.read() == b.read(), f"{digest}: content differs from {src}"
    os.unlink(out)


def collected(run: Cli, *dirs: str, regions: tuple[str, ...] = ()) -> None:
    """After gc (of the local store and ``regions``) nothing unpublished remains."""
    r = run("store", "gc")
    assert r.exit_code == 0, r.stderr
    for region in regions:
        r = run("region", "gc", region)
        assert r.exit_code == 0, r.stderr
    assert verify_ok(run)["unreferencedChunks"] == 0
    assert leftovers(*dirs) == [], leftovers(*dirs)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("kp-src")
    a = make_source(str(d / "a.raw"), 1)
    with open(a, "rb") as f:
        shared = f.read(MiB // 2)
    return {"a": a, "b": make_source(str(d / "b.raw"), 2, shared),
            "c": make_source(str(d / "c.raw"), 3)}


def digest_of(src: str) -> str:
    """The manifest digest of a source, from a scratch store."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return Cli(os.path.join(d, "s")).json("store", "ingest", src)["digest"]


def test_first_use_of_a_new_store(tmp_path, sources):
    src = sources["a"]
    digest = digest_of(src)

    def prepare(work: str) -> str:
        os.makedirs(work)
        return os.path.join(work, "store")

    def check(store: str) -> None:
        run = Cli(store)
        if not os.path.exists(store):  # killed before the rename that creates it: no store
            r = run("store", "verify")
            assert r.exit_code == 8 and "no imagestore store at" in r.stderr, r.stderr
        else:
            verify_ok(run)
        assert run.json("store", "ingest", src)["digest"] == digest
        same_bytes(run, digest, src, os.path.join(os.path.dirname(store), "out.raw"))
        collected(run, os.path.dirname(store))

    enumerate_points("first-use", prepare, lambda s: ["--store", s, "store", "ingest", src],
                     check, tmp_path)


def test_ingest_into_an_existing_store(tmp_path, sources):
    base = str(tmp_path / "base")
    Cli(base).json("store", "ingest", sources["a"])
    d_a, d_b = digest_of(sources["a"]), digest_of(sources["b"])

    def prepare(work: str) -> str:
        shutil.copytree(base, os.path.join(work, "store"))
        return os.path.join(work, "store")

    def check(store: str) -> None:
        run = Cli(store)
        verify_ok(run)
        assert run.json("store", "ingest", sources["b"])["digest"] == d_b
        out = os.path.join(os.path.dirname(store), "out.raw")
        same_bytes(run, d_b, sources["b"], out)
        same_bytes(run, d_a, sources["a"], out)
        collected(run, store)

    enumerate_points("ingest", prepare,
                     lambda s: ["--store", s, "store", "ingest", sources["b"]], check, tmp_path)


VERSION = ["sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
           "--target-regions", "local", "west", "--os-vhd-uri"]


def test_image_version_create_with_a_second_region(tmp_path, sources, monkeypatch):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    base = str(tmp_path / "base")
    run = Cli(os.path.join(base, "store"))
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("region", "create", "west", "--path", os.path.join(base, "west"))
    src = sources["c"]

    def prepare(work: str) -> str:
        shutil.copytree(base, work, symlinks=True)
        # the region's zone path is absolute: point it at this copy's zone
        reg = os.path.join(work, "store", "regions", "west", "region.json")
        with open(reg) as f:
            doc = json.load(f)
        doc["zones"] = [os.path.join(work, "west")]
        with open(reg, "w") as f:
            json.dump(doc, f)
        return os.path.join(work, "store")

    def check(store: str) -> None:
        run = Cli(store)
        work = os.path.dirname(store)
        verify_ok(run)
        verify_ok(run, "--region", "west")
        r = run(*VERSION, src)
        if r.exit_code == 5 and "already exists" in r.stderr:
            # the kill came after the version was recorded: the queued work resumes
            w = run("worker", "--once")
            assert w.exit_code == 0, w.stderr
        else:
            assert r.exit_code == 0, (r.exit_code, r.stderr)
        v = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0",
                     "--expand", "ReplicationStatus")
        assert v["properties"]["provisioningState"] == "Succeeded", v
        assert v["properties"]["replicationStatus"]["aggregatedState"] == "Completed", v
        ref = v["id"]
        for region in ("local", "west"):
            out = os.path.join(work, f"{region}.raw")
            run.json("disk", "create", "-n", f"d-{region}", "--gallery-image-reference", ref,
                     "-l", region, "--path", out)
            with open(src, "rb") as a, open(out, "rb") as b:
                assert a.read() == b.read(), region
        verify_ok(run, "--region", "west")
        collected(run, store, os.path.join(work, "west"), regions=("west",))

    enumerate_points("image-version-create", prepare, lambda s: ["--store", s, *VERSION, src],
                     check, tmp_path)


def test_gc(tmp_path, sources):
    """gc deletes a dead pack, compacts a half-dead one and removes an orphan pack and a
    temp file, each a kill point."""
    base = str(tmp_path / "base")
    run = Cli(base)
    d_a = run.json("store", "ingest", sources["a"])["digest"]
    d_b = run.json("store", "ingest", sources["b"])["digest"]  # its own chunks: a dead pack
    d_c = run.json("store", "ingest", sources["c"])["digest"]
    half = os.path.join(tmp_path, "half.raw")
    with open(sources["c"], "rb") as f, open(half, "wb") as g:
        g.write(f.read(MiB // 2))  # part of c's pack stays live: that pack is compacted
    d_h = run.json("store", "ingest", half)["digest"]
    mdir = os.path.join(base, "regions", "local", "manifests")
    for d in (d_b, d_c):
        os.unlink(os.path.join(mdir, f"{d}.mf"))
    with open(os.path.join(base, "regions", "local", "packs", "pack-00000000000000000000.pack"),
              "wb") as f:
        f.write(b"ISC1 torn")
    with open(os.path.join(mdir, ".tmp-0123456789abcdef-x.mf"), "wb") as f:
        f.write(b"torn")

    def prepare(work: str) -> str:
        shutil.copytree(base, os.path.join(work, "store"))
        return os.path.join(work, "store")

    def check(store: str) -> None:
        run = Cli(store)
        verify_ok(run)
        out = os.path.join(os.path.dirname(store), "out.raw")
        same_bytes(run, d_a, sources["a"], out)
        same_bytes(run, d_h, half, out)
        collected(run, store)
        same_bytes(run, d_a, sources["a"], out)
        same_bytes(run, d_h, half, out)

    enumerate_points("gc", prepare, lambda s: ["--store", s, "store", "gc"], check, tmp_path)


def test_verify_repair(tmp_path, sources):
    """A region with two copies, one chunk of copy 1 damaged: --repair rewrites it."""
    base = str(tmp_path / "base")
    run = Cli(os.path.join(base, "store"))
    d = run.json("store", "ingest", sources["a"])["digest"]
    run.json("region", "create", "east", "--path", os.path.join(base, "e1"),
             "--path", os.path.join(base, "e2"))
    run.json("region", "replicate", d, "--to", "east", "--copies", "2")
    packs = os.path.join(base, "e2", "packs")
    (pack,) = os.listdir(packs)
    with open(os.path.join(packs, pack), "r+b") as f:
        off, *_ = next(scan_pack(f.fileno(), os.fstat(f.fileno()).st_size))
        f.seek(off + 100)  # inside the first record's payload
        b = f.read(1)
        f.seek(off + 100)
        f.write(bytes([b[0] ^ 0xFF]))
    r = run("store", "verify", "--region", "east")
    assert r.exit_code == 7

    def prepare(work: str) -> str:
        shutil.copytree(base, work)
        reg = os.path.join(work, "store", "regions", "east", "region.json")
        with open(reg) as f:
            doc = json.load(f)
        doc["zones"] = [os.path.join(work, "e1"), os.path.join(work, "e2")]
        with open(reg, "w") as f:
            json.dump(doc, f)
        return os.path.join(work, "store")

    def check(store: str) -> None:
        run = Cli(store)
        work = os.path.dirname(store)
        for r in (run("store", "verify"), run("store", "verify", "--region", "east")):
            if r.exit_code != 0:  # the damage being repaired, nothing more
                assert r.exit_code == 7, r.stderr
                assert "1 bad and 0 missing chunk(s), 0 bad manifest(s)" in r.stderr, r.stderr
                assert "0 damaged index" in r.stderr, r.stderr
        r = run("store", "verify", "--repair", "--region", "east")
        assert r.exit_code == 0, r.stderr
        verify_ok(run, "--region", "east")
        for z in ("e1", "e2"):  # each copy on its own holds the disk
            slot = BlobStore.open(os.path.join(work, z))
            out = os.path.join(work, f"{z}.raw")
            try:
                materialize(slot, d, out)
            finally:
                slot.close()
            with open(sources["a"], "rb") as a, open(out, "rb") as b:
                assert a.read() == b.read(), z
        assert leftovers(work) == [], leftovers(work)

    enumerate_points("verify-repair", prepare,
                     lambda s: ["--store", s, "store", "verify", "--repair", "--region", "east"],
                     check, tmp_path)

