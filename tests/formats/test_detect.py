"""Format detection by content: everything that is not a supported disk is refused by name.

The corpus is made here: qcow2/QED/VMDK/VDI/Parallels by ``qemu-img create``, an ISO 9660
volume descriptor written by hand, gzip/xz/zstd/bzip2/zip/tar archives of a raw image, text
files, odd sizes, random bytes named like containers, and fixed VHDs with damaged footers. Each
is refused by ``store ingest`` with exit 6 (BadImage), one ``error:`` line naming the file and
what it is, and the store unchanged; ``--source-format raw`` still captures what a user says is
raw.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import shutil
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from imagestore.errors import InvalidArgument
from imagestore.formats import open_disk
from tests.helpers import fails, need, run_imagestore, store_tree_snapshot

MiB = 1 << 20


def qemu_create(path: Path, fmt: str, size: str = "16M", *opts: str) -> Path:
    need("qemu-img")
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *opts, str(path), size], check=True,
                   capture_output=True)
    return path


def raw_disk(path: Path, size: int = 2 * MiB, seed: int = 1) -> Path:
    """A small raw disk: a boot-sector-like first sector and some data, the rest zeros."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(b"\xeb\x63\x90" + bytes(507) + b"\x55\xaa")
        f.seek(MiB)
        f.write(rnd.randbytes(64 * 1024))
    return path


def fixed_vhd(tmp: Path, name: str) -> Path:
    need("qemu-img")
    src = raw_disk(tmp / f"{name}.src.raw")
    out = tmp / name
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
                    "subformat=fixed,force_size=on", str(src), str(out)], check=True)
    return out


def iso9660(path: Path) -> Path:
    """System area (16 zero sectors of 2 KiB), a primary volume descriptor, a terminator."""
    pvd = bytearray(2048)
    pvd[0:8] = b"\x01CD001\x01\x00"
    pvd[40:72] = b"IMAGESTORE_TEST".ljust(32)
    struct.pack_into("<I", pvd, 80, 20)
    struct.pack_into(">I", pvd, 84, 20)
    term = b"\xffCD001\x01" + bytes(2041)
    path.write_bytes(bytes(16 * 2048) + bytes(pvd) + term + bytes(2 * 2048))
    return path


def corpus(tmp: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """(file, what the one-line error must say) for every kind of non-disk."""
    raw = raw_disk(tmp / "disk.raw").read_bytes()
    rnd = random.Random(7)
    cases: list[tuple[Path, tuple[str, ...]]] = []

    def add(p: Path, *needles: str) -> None:
        cases.append((p, (p.name, *needles)))

    q4 = bytearray(qemu_create(tmp / "x.qcow2", "qcow2").read_bytes())
    q4[7] = 4  # a qcow2 version this reader does not know
    (tmp / "x.qcow2").write_bytes(q4)
    add(tmp / "x.qcow2", "this is a qcow2 image of version 4", "qemu-img convert -O vhdx")
    add(qemu_create(tmp / "old.qcow", "qcow"), "qcow (version 1) image")
    add(qemu_create(tmp / "x.qed", "qed"), "QED image")
    add(qemu_create(tmp / "x.vmdk", "vmdk"), "VMDK image (sparse extent)")
    add(qemu_create(tmp / "desc.vmdk", "vmdk", "16M", "-o", "subformat=monolithicFlat"),
        "VMDK descriptor")
    add(qemu_create(tmp / "x.vdi", "vdi"), "VirtualBox VDI image")
    add(qemu_create(tmp / "x.hds", "parallels"), "Parallels image")
    add(iso9660(tmp / "cd.iso"), "ISO 9660")
    for name, data, what in (
        ("disk.raw.gz", gzip.compress(raw), "gzip-compressed"),
        ("disk.raw.xz", lzma.compress(raw), "xz-compressed"),
        ("disk.raw.zst", zstandard.ZstdCompressor().compress(raw), "zstd-compressed"),
        ("disk.raw.bz2", bz2.compress(raw), "bzip2-compressed"),
    ):
        p = tmp / name
        p.write_bytes(data)
        add(p, what, "decompress it first")
    zp = tmp / "disk.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr("disk.raw", raw)
    add(zp, "zip archive")
    tp = tmp / "disk.tar"
    with tarfile.open(tp, "w") as t:
        info = tarfile.TarInfo("disk.raw")
        info.size = len(raw)
        t.addfile(info, io.BytesIO(raw))
    add(tp, "tar archive")
    # text: /etc/passwd (odd size), 6 bytes, and text of exactly 8 sectors (only the text rule)
    shutil.copy("/etc/passwd", tmp / "passwd")
    add(tmp / "passwd", "text file")
    (tmp / "six").write_bytes(b"hello\n")
    add(tmp / "six", "text file")
    (tmp / "notes.img").write_bytes((b"a line of notes\n" * 256)[:4096])
    add(tmp / "notes.img", "text file")
    # odd sizes of binary data
    (tmp / "odd.raw").write_bytes(rnd.randbytes(MiB + 100))
    add(tmp / "odd.raw", "1048676 bytes is not a whole number of 512-byte sectors")
    (tmp / "one.bin").write_bytes(b"\x01")
    add(tmp / "one.bin", "512-byte sectors")
    # container extensions the content does not keep
    for name in ("x.vhdx", "x.avhdx", "x.vhd"):
        (tmp / name).write_bytes(rnd.randbytes(4 * MiB))
        add(tmp / name, "the file name promises a VHD")
    vhdx = qemu_create(tmp / "real.vhdx", "vhdx", "8M")
    os.rename(vhdx, tmp / "real-vhdx.vhd")
    add(tmp / "real-vhdx.vhd", "promises a VHD but the content is a VHDX")
    # damaged fixed VHD footers, named .raw: the content gives them away, not the name
    v = fixed_vhd(tmp, "trunc100.raw")
    os.truncate(v, os.path.getsize(v) - 100)
    add(v, "damaged VHD footer", "truncated")
    v = fixed_vhd(tmp, "trunc504.raw")  # only the cookie is left
    os.truncate(v, os.path.getsize(v) - 504)
    add(v, "damaged VHD footer")
    v = fixed_vhd(tmp, "badsum.raw")
    with open(v, "r+b") as f:  # one byte of the footer's unique id
        f.seek(os.path.getsize(v) - 512 + 70)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    add(v, "footer checksum mismatch", "damaged")
    v = fixed_vhd(tmp, "appended.vhd")
    with open(v, "ab") as f:
        f.write(bytes(512))
    add(v, "damaged VHD", "followed by 512 bytes")
    return cases


def test_non_disks_refused_by_name_store_unchanged(run, tmp_path):
    good = raw_disk(tmp_path / "good.raw")
    assert run.json("store", "ingest", str(good))["sourceFormat"] == "raw"
    before = store_tree_snapshot(run.store)
    cases = corpus(tmp_path)
    assert len(cases) == 27
    for path, needles in cases:
        r = run("store", "ingest", str(path))
        fails(r, 6, *needles)
    assert store_tree_snapshot(run.store) == before
    r = run("store", "verify")
    assert r.exit_code == 0, r.stderr


def test_refusal_through_the_real_cli_is_one_line(store_dir, tmp_path):
    """The subprocess path: stderr is exactly one line, exit 6, no traceback."""
    q = qemu_create(tmp_path / "vm.qcow", "qcow")
    r = run_imagestore("--store", store_dir, "store", "ingest", str(q), check=False)
    assert r.returncode == 6, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(
        f"error: {q}: this is a qcow (version 1) image")
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_source_format_raw_forces_raw(run, tmp_path):
    """What a user says is raw is captured as raw, bytes as they are."""
    odd = tmp_path / "odd.bin"
    odd.write_bytes(random.Random(3).randbytes(MiB + 100))
    q = qemu_create(tmp_path / "x.qcow2", "qcow2")
    text = tmp_path / "notes.txt"
    text.write_bytes(b"a line\n" * 100)
    for p in (odd, q, text):
        res = run.json("store", "ingest", str(p), "--source-format", "raw")
        assert res["sourceFormat"] == "raw" and res["virtualSize"] == os.path.getsize(p)
        out = tmp_path / f"{p.name}.out"
        run.json("store", "materialize", res["digest"], "--path", str(out))
        assert out.read_bytes() == p.read_bytes()
    r = run("store", "ingest", str(odd), "--source-format", "qcow2")
    assert r.exit_code == 2 and "'qcow2' is not one of 'auto', 'raw'" in r.stderr


def test_supported_formats_still_detected(tmp_path):
    """The refusals do not catch real disks: raw with a boot sector, an all-zero raw, a
    sparse raw, VHD (fixed and dynamic) and VHDX made by qemu-img, whatever their names."""
    need("qemu-img")
    raw = raw_disk(tmp_path / "disk.img")
    zero = tmp_path / "zero"
    zero.write_bytes(bytes(MiB))
    sparse = tmp_path / "sparse.raw"
    with open(sparse, "wb") as f:
        f.truncate(64 * MiB)
    fixed = fixed_vhd(tmp_path, "fixed.vhd")
    dyn = tmp_path / "dyn.avhd"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", str(raw), str(dyn)],
                   check=True)
    vhdx = qemu_create(tmp_path / "d.avhdx", "vhdx", "8M")
    qcow2 = qemu_create(tmp_path / "d.img", "qcow2", "8M")
    for p, fmt in ((raw, "raw"), (zero, "raw"), (sparse, "raw"), (fixed, "vhd-fixed"),
                   (dyn, "vhd-dynamic"), (vhdx, "vhdx-dynamic"), (qcow2, "qcow2")):
        r = open_disk(str(p))
        try:
            assert r.format == fmt, (p, r.format)
        finally:
            r.close()
    with pytest.raises(InvalidArgument, match="unknown source format 'qcow2'"):
        open_disk(str(raw), source_format="qcow2")


def test_image_version_create_refuses_and_forces(run, tmp_path):
    """`sig image-version create` refuses a non-disk (also with --no-wait, before queueing),
    and --source-format raw reaches the capture, inline and in the background worker."""
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    odd = tmp_path / "odd.bin"
    odd.write_bytes(random.Random(4).randbytes(MiB + 100))
    ver = ["sig", "image-version", "create", "-r", "g", "-i", "d", "--os-vhd-uri", str(odd)]
    before = store_tree_snapshot(run.store)
    fails(run(*ver, "-e", "1.0.0"), 6, "odd.bin", "512-byte sectors")
    fails(run(*ver, "-e", "1.0.0", "--no-wait"), 6, "odd.bin", "512-byte sectors")
    assert store_tree_snapshot(run.store) == before
    assert run.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []
    v = run.json(*ver, "-e", "1.0.0", "--source-format", "raw")
    assert v["properties"]["provisioningState"] == "Succeeded"
    r = run(*ver, "-e", "1.1.0", "--source-format", "raw", "--no-wait")
    assert r.exit_code == 0, r.stderr
    w = run("sig", "image-version", "wait", "-r", "g", "-i", "d", "-e", "1.1.0", "--created",
            "--timeout", "60")
    assert w.exit_code == 0, w.stderr
    for name in ("1.0.0", "1.1.0"):
        out = tmp_path / f"{name}.raw"
        run.json("disk", "create", "-n", f"disk-{name}", "--gallery-image-reference",
                 f"g/d/{name}", "--path", str(out))
        assert out.read_bytes() == odd.read_bytes()
