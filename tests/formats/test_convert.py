"""formats.convert: every source kind × every writer, checked against qemu-img (``qemu-img
compare`` of the output with the source, ``qemu-img check`` where qemu has one), holes kept,
and the refusals (existing, same file, directory, too large, not a disk) leaving nothing behind."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from imagestore.errors import BadImage, Conflict, InvalidArgument, TooLarge
from imagestore.formats.convert import convert
from tests.helpers import need

MiB = 1 << 20
KiB = 1 << 10
QEMU_FMT = {"raw": "raw", "vhd": "vpc", "vhd-fixed": "vpc", "vhdx": "vhdx", "vhdx-fixed": "vhdx",
            "qcow2": "qcow2"}
WRITERS = ["raw", "vhd", "vhd-fixed", "vhdx", "vhdx-fixed", "qcow2"]
#: virtual size of the sources: not a multiple of 1 MiB, so vhd-fixed has to round up
SIZE = 24 * MiB + 12 * KiB


def qemu(*args: str) -> subprocess.CompletedProcess:
    need("qemu-img")
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True)


def allocated(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        total, pos, size = 0, 0, os.fstat(fd).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total += end - start
            pos = end
        return total
    finally:
        os.close(fd)


#: (offset, length, fill byte or None for random): data at the start, a zero block written
#: inside data, an odd-sized run, data in the last (partial) MiB
WRITES = [(0, 64 * KiB, None), (64 * KiB, 4 * KiB, 0), (68 * KiB, 60 * KiB, None),
          (5 * MiB + 4 * KiB, 1 * MiB + 8 * KiB, 0x5A), (SIZE - 8 * KiB, 8 * KiB, None)]
#: non-zero bytes of WRITES
NONZERO = sum(n for _o, n, fill in WRITES if fill != 0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, tuple[str, str, str]]:
    """name -> (path, format the oracle reads, the file the oracle compares against): raw,
    dynamic VHD and VHDX made by qemu-img from the raw (qemu compares the output with the
    source itself); a differencing VHD whose child overwrites part of its parent, which qemu
    can neither make nor read (fixture generator): its reference is a raw file with the
    parent's writes, then the child's, applied in place."""
    need("qemu-img")
    d = tmp_path_factory.mktemp("convert-src")
    rnd = random.Random(11)
    raw = str(d / "src.raw")
    with open(raw, "wb") as f:
        f.truncate(SIZE)
        for off, n, fill in WRITES:
            f.seek(off)
            f.write(rnd.randbytes(n) if fill is None else bytes([fill]) * n)
    vhd, vhdx = str(d / "src.vhd"), str(d / "src.vhdx")
    assert qemu("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
                raw, vhd).returncode == 0
    assert qemu("convert", "-f", "raw", "-O", "vhdx", raw, vhdx).returncode == 0
    from fixtures.hostile_vhd import build_sparse_vhd

    base, child = str(d / "base.vhd"), str(d / "child.vhd")
    parent_writes = [(0, b"\x01" * MiB), (5 * MiB, rnd.randbytes(2 * MiB))]
    # the child's first write ends inside a byte of the sector bitmap: the sectors after it
    # in that byte must still come from the parent
    child_writes = [(5 * MiB + 512, b"\x02" * 8192), (9 * MiB, b"\x03" * MiB)]
    build_sparse_vhd(base, 12 * MiB, parent_writes)
    build_sparse_vhd(child, 12 * MiB, child_writes, parent=base)
    ref = str(d / "child.ref.raw")
    with open(ref, "wb") as f:
        f.truncate(12 * MiB)
        for off, data in parent_writes + child_writes:
            f.seek(off)
            f.write(data)
    return {"raw": (raw, "raw", raw), "vhd-dynamic": (vhd, "vpc", vhd),
            "vhdx-dynamic": (vhdx, "vhdx", vhdx), "vhd-differencing": (child, "raw", ref)}


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize("name", ["raw", "vhd-dynamic", "vhdx-dynamic", "vhd-differencing"])
def test_output_is_identical_to_the_source_for_qemu(sources, tmp_path, name, fmt):
    src, qref, ref = sources[name]
    out = str(tmp_path / f"out.{fmt}")
    res = convert(src, out, fmt, threads=2)
    assert res.source_format == name and res.format == fmt and res.path == out
    p = qemu("compare", "-f", qref, "-F", QEMU_FMT[fmt], ref, out)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Images are identical" in p.stdout
    info = json.loads(qemu("info", "--output=json", "-f", QEMU_FMT[fmt], out).stdout)
    # vhd-fixed rounds up to a whole MiB (Azure's rule); every other format keeps the size
    size = os.path.getsize(ref) if qref == "raw" else SIZE
    expect = -(-size // MiB) * MiB if fmt == "vhd-fixed" else size
    assert info["virtual-size"] == res.virtual_size == expect
    if QEMU_FMT[fmt] in ("vhdx", "qcow2"):
        chk = qemu("check", "-f", QEMU_FMT[fmt], out)
        assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "backing-filename" not in info  # a differencing source is flattened
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temp file left


def test_only_nonzero_data_is_written_and_holes_stay_holes(sources, tmp_path):
    src, _, _ = sources["raw"]
    out = str(tmp_path / "out.raw")
    res = convert(src, out, "raw")
    assert res.written_bytes == NONZERO  # the zero blocks inside the data are not written
    assert res.read_bytes == allocated(src)  # only what the source's extents cover is read
    assert allocated(out) == NONZERO
    with open(src, "rb") as a, open(out, "rb") as b:
        assert a.read() == b.read()


def test_existing_destination_is_refused_untouched_unless_overwrite(sources, tmp_path):
    src, _, _ = sources["vhd-dynamic"]
    out = tmp_path / "out.raw"
    out.write_bytes(b"keep me")
    with pytest.raises(Conflict, match="file exists") as e:
        convert(src, str(out), "raw")
    assert e.value.target == "destination" and "--" not in e.value.message  # names no flag
    assert out.read_bytes() == b"keep me"
    convert(src, str(out), "raw", overwrite=True)
    assert out.stat().st_size == SIZE
    assert qemu("compare", "-f", "vpc", "-F", "raw", src, str(out)).returncode == 0


def test_refusals_name_the_file_and_leave_nothing_behind(sources, tmp_path):
    src, _, _ = sources["raw"]
    with pytest.raises(InvalidArgument, match="is the source image itself"):
        convert(src, src, "vhdx", overwrite=True)
    with pytest.raises(InvalidArgument, match="is a directory"):
        convert(src, str(tmp_path), "raw")
    with pytest.raises(InvalidArgument, match="does not exist"):
        convert(src, str(tmp_path / "no" / "out.raw"), "raw")
    with pytest.raises(InvalidArgument, match="unknown format 'qed'"):
        convert(src, str(tmp_path / "out.qed"), "qed")
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    with pytest.raises(BadImage, match="empty.img"):
        convert(str(empty), str(tmp_path / "out.raw"), "raw")
    # a 3 TiB disk does not fit a VHD (2040 GiB at most): refused before any byte is written
    big = tmp_path / "big.raw"
    with open(big, "wb") as f:
        f.truncate(3 << 40)
    with pytest.raises(TooLarge):
        convert(str(big), str(tmp_path / "big.vhd"), "vhd")
    assert sorted(os.listdir(tmp_path)) == ["big.raw", "empty.img"]
