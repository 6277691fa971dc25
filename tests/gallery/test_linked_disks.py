"""Linked clones: `disk create --linked` writes a small overlay over the version's shared,
read-only parent; writes into one disk touch neither the parent nor its siblings (sha256);
deleting the version keeps the parent (the disks still `qemu-img compare` equal); `store gc`
frees the parent only after the last linked disk is deleted; `disk flatten` makes a disk
independent. The timing of 20 linked disks of a 2 GiB version is a benchmark
(benchmarks/linked_clones.py), not a test."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.helpers import fails, need

MiB = 1 << 20
N_DISKS = 20


def sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def qemu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([need(args[0]), *args[1:]], capture_output=True, text=True)


def compare(a: str, b: str, fa: str = "qcow2", fb: str = "raw") -> bool:
    p = qemu("qemu-img", "compare", "-f", fa, "-F", fb, a, b)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode == 0


@pytest.fixture
def version(run, tmp_path):
    src = tmp_path / "os.raw"
    with open(src, "wb") as f:
        f.truncate(48 * MiB)
        f.write(os.urandom(2 * MiB))
        f.seek(30 * MiB + 4096)
        f.write(b"linked " * 100000)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", str(src))
    run.src = str(src)
    return run


def linked(run, name: str, fmt: str = "qcow2", *extra: str) -> dict:
    return run.json("disk", "create", "-n", name, "--gallery-image-reference", "g/d/1.0.0",
                    "--format", fmt, "--linked", *extra)


def parents(run) -> list[str]:
    root = os.path.join(run.store, "linked-parents", "local")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def test_linked_disks_share_one_parent_and_stay_isolated(version):
    run = version
    disks = [linked(run, f"l{i}") for i in range(N_DISKS)]
    paths = [d["properties"]["localStorage"]["path"] for d in disks]
    info = disks[0]["properties"]["localStorage"]["linked"]
    parent = info["parentPath"]
    assert parents(run) == [os.path.basename(parent)]  # made once, shared by all
    assert all(d["properties"]["localStorage"]["linked"]["parentPath"] == parent for d in disks)
    assert oct(os.stat(parent).st_mode & 0o777) == "0o444"
    for p in paths:
        assert os.path.getsize(p) < MiB
        chk = qemu("qemu-img", "check", p)
        assert chk.returncode == 0, chk.stdout + chk.stderr
    assert compare(paths[0], run.src) and compare(paths[-1], run.src)
    before = {p: sha(p) for p in [parent, *paths]}
    w = qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 300k", "-c",
             "write -z 30M 64k", paths[3])
    assert w.returncode == 0, w.stderr
    after = {p: sha(p) for p in [parent, *paths]}
    assert after[paths[3]] != before[paths[3]]
    assert {p: h for p, h in after.items() if p != paths[3]} == {
        p: h for p, h in before.items() if p != paths[3]}
    assert not compare(paths[3], run.src) and compare(paths[4], run.src)
    # our reader sees the write too (through the sandbox allowance for the store's parents)
    from imagestore.formats import open_disk

    r = open_disk(paths[3], allow_parent_dir=os.path.dirname(parent))
    try:
        assert r.read(MiB, 4096) == b"\xab" * 4096
        assert r.read(30 * MiB + 4096, 7) == bytes(7)
    finally:
        r.close()


def test_version_deleted_parent_pinned_until_last_disk_then_gc_frees_it(version):
    run = version
    a = linked(run, "a")["properties"]["localStorage"]
    b = linked(run, "b")["properties"]["localStorage"]
    parent = a["linked"]["parentPath"]
    r = run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert r.exit_code == 0, r.stderr
    assert run.json("store", "gc")["linkedParentsFreed"] == []
    assert compare(a["path"], run.src) and compare(b["path"], run.src)
    assert run("disk", "delete", "-n", "a", "--delete-file").exit_code == 0
    assert run.json("store", "gc")["linkedParentsFreed"] == []
    assert os.path.exists(parent) and compare(b["path"], run.src)
    assert run("disk", "delete", "-n", "b", "--delete-file").exit_code == 0
    dry = run.json("store", "gc", "--dry-run")["linkedParentsFreed"]
    assert [x["path"] for x in dry] == [parent] and os.path.exists(parent)
    freed = run.json("store", "gc")["linkedParentsFreed"]
    assert [x["path"] for x in freed] == [parent] and freed[0]["bytes"] == 48 * MiB
    assert not os.path.exists(parent) and parents(run) == []
    r = run("store", "verify")
    assert r.exit_code == 0, r.stderr


def test_parent_is_remade_after_gc_and_a_new_linked_disk(version):
    run = version
    p = linked(run, "a")["properties"]["localStorage"]["linked"]["parentPath"]
    run("disk", "delete", "-n", "a", "--delete-file")
    run.json("store", "gc")
    assert not os.path.exists(p)
    d = linked(run, "b")["properties"]["localStorage"]
    assert d["linked"]["parentPath"] == p and compare(d["path"], run.src)


def test_flatten_makes_a_disk_independent(version):
    run = version
    d = linked(run, "a")["properties"]["localStorage"]
    assert qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x5c 40M 8k", d["path"]).returncode == 0
    want = qemu("qemu-img", "convert", "-O", "raw", d["path"], d["path"] + ".want.raw")
    assert want.returncode == 0, want.stderr
    out = run.json("disk", "flatten", "-n", "a")["properties"]["localStorage"]
    assert "linked" not in out and out["flattened"]
    info = qemu("qemu-img", "info", d["path"]).stdout
    assert "backing file" not in info
    assert compare(d["path"], d["path"] + ".want.raw")
    assert qemu("qemu-img", "check", d["path"]).returncode == 0
    freed = run.json("store", "gc")["linkedParentsFreed"]  # nothing pins the parent now
    assert [x["path"] for x in freed] == [d["linked"]["parentPath"]]
    assert compare(d["path"], d["path"] + ".want.raw")
    fails(run("disk", "flatten", "-n", "a"), 5, "is not a linked disk")


def test_vhdx_linked_is_a_differencing_child(version, tmp_path):
    run = version
    d = linked(run, "x", "vhdx")["properties"]["localStorage"]
    assert d["linked"]["parentFormat"] == "vhdx" and d["path"].endswith(".vhdx")
    from imagestore.formats import open_disk

    r = open_disk(d["path"], allow_parent_dir=os.path.dirname(d["linked"]["parentPath"]))
    try:
        assert r.format == "vhdx-differencing"
    finally:
        r.close()
    out = tmp_path / "x.raw"
    r = run("convert", d["path"], str(out), "--allow-parent-dir",
            os.path.dirname(d["linked"]["parentPath"]))
    assert r.exit_code == 0, r.stderr
    assert sha(str(out)) == sha(run.src)
    # a copy of a linked disk (`disk create --source`) reads through its parent
    c = run.json("disk", "create", "-n", "copy", "--source", "x", "--format", "raw")
    assert sha(c["properties"]["localStorage"]["path"]) == sha(run.src)


def test_linked_refusals(version):
    run = version
    fails(run("disk", "create", "-n", "r", "--gallery-image-reference", "g/d", "--format",
              "raw", "--linked"), 3, "--format", "a linked disk is 'qcow2'")
    linked(run, "a")
    fails(run("disk", "create", "-n", "r", "--source", "a", "--format", "qcow2", "--linked"),
          3, "linked disk is made from a gallery image version")
    fails(run("disk", "create", "-n", "a", "--gallery-image-reference", "g/d", "--format",
              "qcow2", "--linked"), 5, "already exists")
    assert len(parents(run)) == 1


def test_snapshot_of_a_linked_disk_captures_its_content(version):
    """The services that know a disk is linked read through its parent (the sandbox allows
    the store's parents directory for them)."""
    run = version
    d = linked(run, "a")["properties"]["localStorage"]
    assert qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x3c 5M 64k", d["path"]).returncode == 0
    snap = run.json("snapshot", "create", "-n", "s", "--source", "a")
    c = run.json("disk", "create", "-n", "c", "--source", "s", "--format", "raw")
    assert compare(c["properties"]["localStorage"]["path"], d["path"], "raw", "qcow2")
    assert snap["properties"]["diskSizeBytes"] == 48 * MiB


@pytest.mark.one_pass  # two real processes; the parents lock, not the byte loops
def test_concurrent_first_linked_disks_make_one_parent(version):
    """Two processes creating the first linked disks of a version at once: one parent, made
    once (the parents lock), both disks read as the version."""
    import sys

    run = version
    procs = [subprocess.Popen(
        [sys.executable, "-m", "imagestore.cli.main", "--store", run.store, "disk", "create",
         "-n", f"c{i}", "--gallery-image-reference", "g/d/1.0.0", "--format", "qcow2",
         "--linked", "--query", "properties.localStorage.path", "-o", "tsv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, IMAGESTORE_AUTOSTART_WORKER="0")) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(parents(run)) == 1
    for out, _err in outs:
        assert compare(out.strip(), run.src)
