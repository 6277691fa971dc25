"""VHD reader and writer, checked against qemu-img/qemu-io and libvhdi (pyvhdi) as oracles."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imagestore.errors import BadImage, ImagestoreError, NotFound, TooLarge
from imagestore.formats import create_writer, open_disk, vhd

MIB = 2**20

# qemu is required, never skipped: a missing tool fails the test (scripts/setup.sh installs it)
needs_qemu = pytest.mark.usefixtures("qemu_tools")

_spec = importlib.util.spec_from_file_location(
    "hostile_vhd", Path(__file__).resolve().parents[2] / "fixtures" / "hostile_vhd.py"
)
hostile_vhd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile_vhd)
build_sparse_vhd = hostile_vhd.build_sparse_vhd


# ---------------------------------------------------------------------------- helpers


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True)


def qemu_vhd(path: Path, size: int, writes, *, subformat="dynamic", force_size=True) -> None:
    opts = f"subformat={subformat}" + (",force_size=on" if force_size else "")
    run("qemu-img", "create", "-q", "-f", "vpc", "-o", opts, str(path), str(size))
    cmds = []
    for off, n, pat in writes:
        cmds += ["-c", f"write -P {pat:#x} {off} {n}"]
    if cmds:
        run("qemu-io", "-f", "vpc", *cmds, str(path))


def qemu_raw(path: Path, out: Path) -> bytes:
    run("qemu-img", "convert", "-f", "vpc", "-O", "raw", str(path), str(out))
    return out.read_bytes()


def qemu_check(path: Path) -> None:
    """qemu-img check; qemu's vpc driver has no check and exits 63 ("does not support
    checks"), which counts as a pass as long as qemu could open the image."""
    p = subprocess.run(["qemu-img", "check", "-f", "vpc", str(path)], capture_output=True)
    assert p.returncode in (0, 63), p.stderr
    if p.returncode == 63:
        assert b"does not support checks" in p.stderr


def qemu_virtual_size(path: Path) -> int:
    p = run("qemu-img", "info", "-f", "vpc", "--output=json", str(path))
    return json.loads(p.stdout)["virtual-size"]


def read_all(r, piece: int = 777_777) -> bytes:
    parts = []
    for off in range(0, r.virtual_size, piece):
        parts.append(r.read(off, min(piece, r.virtual_size - off)))
    return b"".join(parts)


def assert_same(ours: bytes, ref: bytes) -> None:
    """Equal over the longer of the two, the shorter one padded with zeros."""
    n = max(len(ours), len(ref))
    a, b = ours.ljust(n, b"\0"), ref.ljust(n, b"\0")
    if a != b:
        first = next(i for i in range(n) if a[i] != b[i])
        pytest.fail(f"data differs first at byte {first} (ours {len(ours)}, ref {len(ref)})")


def assert_extents_cover(r, data: bytes) -> list[tuple[int, int]]:
    ext = list(r.extents())
    prev_end = -1
    for off, n in ext:
        assert n > 0 and off > prev_end and off + n <= r.virtual_size
        prev_end = off + n
    arr = np.frombuffer(data, dtype=np.uint8).copy()
    for off, n in ext:
        arr[off : off + n] = 0
    assert not arr.any(), "non-zero data outside the extents"
    return ext


def pyvhdi_read(path: Path, parents: list[Path] = ()) -> bytes:
    import pyvhdi  # a test dependency: fail, never skip, when it is missing
    files = []
    for p in [path, *parents]:
        f = pyvhdi.file()
        f.open(str(p))
        files.append(f)
    for child, parent in zip(files, files[1:], strict=False):
        child.set_parent(parent)
    f = files[0]
    size = f.get_media_size()
    data = f.read_buffer_at_offset(size, 0)
    for x in reversed(files):
        x.close()
    return data


# ---------------------------------------------------------------------------- reader vs qemu

WRITES_10M = [
    (0, 4096, 0xAB),
    (2 * MIB - 1000, 5000, 0xCD),  # straddles the first block boundary
    (7 * MIB + 13, 777, 0x5A),  # unaligned
]


@needs_qemu
@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
@pytest.mark.parametrize("size", [10 * MIB, 10_000_384, 33 * MIB + 1536])
def test_reader_matches_qemu(tmp_path, subformat, size):
    img = tmp_path / "d.vhd"
    writes = [*WRITES_10M, (size - 512, 512, 0xEE), (size - 3 * MIB - 7, 2 * MIB + 9, 0x42)]
    qemu_vhd(img, size, writes, subformat=subformat)
    ref = qemu_raw(img, tmp_path / "d.raw")
    r = open_disk(str(img))
    try:
        assert r.format == ("vhd-fixed" if subformat == "fixed" else "vhd-dynamic")
        assert r.virtual_size == qemu_virtual_size(img) == size
        assert_same(read_all(r), ref)
        assert_same(read_all(r, MIB), ref)
        ext = assert_extents_cover(r, ref)
        if subformat == "dynamic":
            # exactly the blocks qemu allocated, i.e. those written
            blocks = set()
            for off, n, _ in writes:
                blocks.update(range(off // (2 * MIB), (off + n - 1) // (2 * MIB) + 1))
            covered = set()
            for off, n in ext:
                covered.update(range(off // (2 * MIB), (off + n - 1) // (2 * MIB) + 1))
            assert covered == blocks
            assert sum(n for _, n in ext) < size
    finally:
        r.close()


@needs_qemu
def test_reader_chs_sized_qemu_image(tmp_path):
    """Without force_size qemu rounds to the CHS geometry and stores that as current size."""
    img = tmp_path / "chs.vhd"
    qemu_vhd(img, 10_000_000, WRITES_10M, force_size=False)
    ref = qemu_raw(img, tmp_path / "chs.raw")
    with_reader = open_disk(str(img))
    try:
        assert with_reader.virtual_size == qemu_virtual_size(img)
        assert_same(read_all(with_reader), ref)
    finally:
        with_reader.close()


@needs_qemu
def test_empty_dynamic_has_no_extents(tmp_path):
    img = tmp_path / "e.vhd"
    qemu_vhd(img, 6 * MIB, [])
    r = open_disk(str(img))
    assert list(r.extents()) == []
    assert r.read(0, 6 * MIB) == bytes(6 * MIB)
    r.close()


@needs_qemu
def test_dynamic_damaged_footers_fall_back(tmp_path):
    img = tmp_path / "d.vhd"
    qemu_vhd(img, 4 * MIB, [(4096, 8192, 0x77)])
    ref = qemu_raw(img, tmp_path / "d.raw")
    good = img.read_bytes()
    # trailing footer damaged: the copy at offset 0 is used (spec: it exists for this)
    b = bytearray(good)
    b[-512 + 70] ^= 0xFF
    img.write_bytes(b)
    r = open_disk(str(img))
    assert r.format == "vhd-dynamic"
    assert_same(read_all(r), ref)
    r.close()
    # copy at offset 0 damaged: detection says "vhd-fixed", the trailing footer says dynamic
    b = bytearray(good)
    b[0] ^= 0xFF
    img.write_bytes(b)
    r = open_disk(str(img))
    assert r.format == "vhd-dynamic"
    assert_same(read_all(r), ref)
    r.close()


def test_fixed_disk_whose_data_starts_with_cookie(tmp_path):
    """A fixed VHD holding a VHD is detected as "vhd"; the trailing footer decides."""
    p = tmp_path / "f.vhd"
    w = create_writer(str(p), MIB, "vhd-fixed")
    w.write(0, b"conectix" + b"\1" * 504)
    w.finish()
    r = open_disk(str(p))
    assert r.format == "vhd-fixed"
    assert r.read(0, 8) == b"conectix"
    r.close()


@needs_qemu
def test_one_pread_per_block(tmp_path, monkeypatch):
    img = tmp_path / "d.vhd"
    qemu_vhd(img, 8 * MIB, [(0, 8 * MIB, 0x11)])
    r = open_disk(str(img))
    calls = []
    real = vhd.reader.pread_full

    def counting(fd, n, off, path=""):
        calls.append(n)
        return real(fd, n, off, path)

    monkeypatch.setattr(vhd.reader, "pread_full", counting)  # what the readers call
    assert r.read(MIB, 4 * MIB) == b"\x11" * (4 * MIB)  # spans 3 blocks
    assert len(calls) == 3
    r.close()


# ---------------------------------------------------------------------------- differencing


@needs_qemu
def test_differencing_depth_1(tmp_path):
    base = tmp_path / "base.vhd"
    qemu_vhd(base, 6 * MIB, [(0, 3 * MIB, 0x11), (5 * MIB, 4096, 0x12)])
    child = tmp_path / "child.vhd"
    writes = [
        (512, b"\x21" * 512),  # one sector inside the parent's data
        (2 * MIB - 1024, b"\x22" * 2048),  # straddles a block boundary
        (4 * MIB + 4096, b"\x23" * 1536),  # where the parent has nothing
    ]
    build_sparse_vhd(str(child), 6 * MIB, writes, parent=str(base))
    expect = bytearray(qemu_raw(base, tmp_path / "base.raw"))
    for off, data in writes:
        expect[off : off + len(data)] = data
    r = open_disk(str(child))
    try:
        assert r.format == "vhd-differencing"
        got = read_all(r, 100_001)
        assert_same(got, bytes(expect))
        assert_same(read_all(r, 513), bytes(expect))
        assert_extents_cover(r, bytes(expect))
        assert (4 * MIB + 4096, 1536) in list(r._own_extents())  # sector granular in the child
    finally:
        r.close()
    # libvhdi decodes a VHD bitmap byte with an unmasked shift: once a bit is set, the later
    # sectors of that byte read as the child's. Compare with it on 4 KiB-aligned writes only.
    aligned = [(4096, b"\x31" * 8192), (2 * MIB - 4096, b"\x32" * 8192), (5 * MIB, b"\x33" * 4096)]
    child2 = tmp_path / "child2.vhd"
    build_sparse_vhd(str(child2), 6 * MIB, aligned, parent=str(base))
    r = open_disk(str(child2))
    try:
        assert_same(read_all(r), pyvhdi_read(child2, [base]))
    finally:
        r.close()


def test_differencing_depth_3_and_locators(tmp_path):
    size = 5 * MIB
    rnd = random.Random(7)
    layers = []
    expect = bytearray(size)
    prev = None
    for depth in range(4):
        p = tmp_path / f"l{depth}.vhd"
        writes = []
        for _ in range(6):
            # 4 KiB granular so that libvhdi (see above) can serve as the oracle too
            off = rnd.randrange(0, size // 4096 - 10) * 4096
            data = bytes([depth * 16 + 1 + rnd.randrange(15)]) * (4096 * rnd.randrange(1, 10))
            writes.append((off, data))
        for off, data in writes:
            expect[off : off + len(data)] = data
        locators = None
        if depth == 2:  # absolute locator only, inside the directory
            locators = [(b"W2ku", str(prev))]
        elif depth == 3:  # a MacX file URL and a dead relative one tried first
            locators = [(b"W2ru", "gone.vhd"), (b"MacX", str(prev))]
        build_sparse_vhd(str(p), size, writes, parent=None if prev is None else str(prev),
                         locators=locators, parent_name="" if locators else None)
        layers.append(p)
        prev = p
    r = open_disk(str(layers[-1]))
    try:
        got = read_all(r, 65_537)
        assert_same(got, bytes(expect))
        assert_same(got, pyvhdi_read(layers[-1], layers[-2::-1]))
        assert_extents_cover(r, bytes(expect))
    finally:
        r.close()


def test_differencing_parent_outside_dir_needs_allow(tmp_path):
    pdir, cdir = tmp_path / "p", tmp_path / "c"
    pdir.mkdir()
    cdir.mkdir()
    base = pdir / "base.vhd"
    build_sparse_vhd(str(base), 2 * MIB, [(0, b"\x01" * 512)])
    child = cdir / "child.vhd"
    build_sparse_vhd(str(child), 2 * MIB, [(512, b"\x02" * 512)], parent=str(base),
                     locators=[(b"W2ru", "../p/base.vhd")], parent_name="")
    with pytest.raises(BadImage, match="resolves outside"):
        open_disk(str(child))
    r = open_disk(str(child), allow_parent_dir=str(pdir))
    assert r.read(0, 1024) == b"\x01" * 512 + b"\x02" * 512
    r.close()


def test_differencing_windows_locators_and_fixed_parent(tmp_path):
    base = tmp_path / "base.vhd"
    w = create_writer(str(base), 3 * MIB, "vhd-fixed")
    w.write(MIB - 512, b"\x05" * 1024)
    w.finish()
    child = tmp_path / "child.vhd"
    build_sparse_vhd(str(child), 3 * MIB, [(MIB, b"\x06" * 512)], parent=str(base),
                     locators=[(b"W2ru", ".\\missing.vhd"), (b"W2ku", "C:\\vms\\base.vhd")],
                     parent_name="")
    r = open_disk(str(child))
    try:
        assert r.parent.format == "vhd-fixed"
        assert r.read(MIB - 1024, 2048) == bytes(512) + b"\x05" * 512 + b"\x06" * 512 + bytes(512)
    finally:
        r.close()


def test_fixed_with_old_511_byte_footer(tmp_path):
    p = tmp_path / "old.vhd"
    w = create_writer(str(p), MIB, "vhd-fixed")
    w.write(MIB - 4, b"\x01\x02\x03\x04")
    w.finish()
    data = p.read_bytes()
    assert data[-1] == 0
    p.write_bytes(data[:-1])
    r = open_disk(str(p))
    assert r.format == "vhd-fixed" and r.virtual_size == MIB
    assert r.read(MIB - 4, 4) == b"\x01\x02\x03\x04"
    r.close()


def test_close_closes_chain(tmp_path):
    base = tmp_path / "b.vhd"
    build_sparse_vhd(str(base), 2 * MIB, [(0, b"\x01" * 512)])
    child = tmp_path / "c.vhd"
    build_sparse_vhd(str(child), 2 * MIB, [], parent=str(base))
    r = open_disk(str(child))
    fds = [r.fd, r.parent.fd]
    r.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


# ---------------------------------------------------------------------------- writer


def _pattern_writes(size: int, seed: int) -> list[tuple[int, bytes]]:
    rnd = random.Random(seed)
    writes = [(0, b"\x01" * 1000)]
    pos = 1000
    plan = [
        (2 * MIB - 3000 - pos, 6000),  # straddles block 0/1
        (17, 100),  # continues in the same block
        (MIB - 3106, 4 * MIB + 4000),  # from 3 MiB + 11: spans two block boundaries
    ]
    for gap, n in plan:
        pos += gap
        writes.append((pos, bytes([rnd.randrange(1, 256)]) * n))
        pos += n
    writes.append((size - 700, bytes(range(1, 201)) * 3 + b"\x09" * 100))  # to the very end
    return writes


@needs_qemu
@pytest.mark.parametrize("fmt", ["vhd", "vhd-fixed"])
def test_writer_against_qemu_and_libvhdi(tmp_path, fmt):
    size = 12_000_000
    out = tmp_path / "out.vhd"
    w = create_writer(str(out), size, fmt)
    assert w.virtual_size == (12 * MIB if fmt == "vhd-fixed" else 12_000_256)
    writes = _pattern_writes(size, 1)
    ref = bytearray(w.virtual_size)
    for i, (off, data) in enumerate(writes):
        w.write(off, memoryview(data) if i % 2 else data)
        ref[off : off + len(data)] = data
    w.finish()
    refp = tmp_path / "ref.raw"
    refp.write_bytes(ref)
    run("qemu-img", "compare", "-f", "vpc", "-F", "raw", str(out), str(refp))
    assert qemu_virtual_size(out) == w.virtual_size
    if fmt == "vhd":
        qemu_check(out)
    assert pyvhdi_read(out) == bytes(ref)
    r = open_disk(str(out))
    try:
        assert r.format == ("vhd-fixed" if fmt == "vhd-fixed" else "vhd-dynamic")
        assert r.virtual_size == w.virtual_size
        assert read_all(r) == bytes(ref)
        ext = assert_extents_cover(r, bytes(ref))
        if fmt == "vhd":  # 12 MB = 6 blocks; block 4 never written
            assert not any(off < 10 * MIB and off + n > 8 * MIB for off, n in ext)
    finally:
        r.close()
    if fmt == "vhd-fixed":
        assert out.stat().st_size == 12 * MIB + 512
        footer = out.read_bytes()[-512:]
        cyl, heads, spt = struct.unpack_from(">HBB", footer, 56)
        assert (cyl, heads, spt) == vhd.chs_geometry(12 * MIB)
        assert footer[28:32] == vhd.CREATOR_APP


@needs_qemu
def test_writer_empty_dynamic(tmp_path):
    out = tmp_path / "e.vhd"
    w = create_writer(str(out), 3 * MIB, "vhd")
    w.finish()
    qemu_check(out)
    assert qemu_virtual_size(out) == 3 * MIB
    r = open_disk(str(out))
    assert list(r.extents()) == [] and r.read(0, 3 * MIB) == bytes(3 * MIB)
    r.close()


def test_writer_max_size_dynamic(tmp_path):
    out = tmp_path / "max.vhd"
    w = create_writer(str(out), vhd.VHD_MAX_SIZE, "vhd")
    w.write(vhd.VHD_MAX_SIZE - 512, b"\x07" * 512)
    w.finish()
    r = open_disk(str(out))
    assert r.virtual_size == vhd.VHD_MAX_SIZE
    assert r.read(vhd.VHD_MAX_SIZE - 1024, 1024) == bytes(512) + b"\x07" * 512
    assert list(r.extents()) == [(vhd.VHD_MAX_SIZE - 2 * MIB, 2 * MIB)]
    r.close()
    if shutil.which("qemu-img"):
        assert qemu_virtual_size(out) == vhd.VHD_MAX_SIZE


@pytest.mark.parametrize("fmt", ["vhd", "vhd-fixed"])
@pytest.mark.parametrize("size", [vhd.VHD_MAX_SIZE + 1, vhd.VHD_MAX_SIZE + MIB, 2**50])
def test_writer_too_large(tmp_path, fmt, size):
    out = tmp_path / "big.vhd"
    with pytest.raises(TooLarge, match="2040 GiB") as ei:
        create_writer(str(out), size, fmt)
    assert str(out) in str(ei.value)
    assert not out.exists()


def test_writer_abort(tmp_path):
    out = tmp_path / "a.vhd"
    w = create_writer(str(out), 4 * MIB, "vhd")
    w.write(0, b"\1" * 512)
    fd = w.fd
    w.abort()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_chs_geometry_spec_examples():
    assert vhd.chs_geometry(65535 * 16 * 255 * 512) == (65535, 16, 255)
    assert vhd.chs_geometry(127 * 2**30) == (65278, 16, 255)
    assert vhd.chs_geometry(3000 * 2**40) == (65535, 16, 255)  # capped
    c, h, s = vhd.chs_geometry(10 * MIB)
    assert c * h * s <= 10 * MIB // 512 and h <= 16 and s in (17, 31, 63, 255)


# ---------------------------------------------------------------------------- hostile input


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    return d, hostile_vhd.generate(str(d))


def _open_and_read_all(path: str) -> None:
    r = open_disk(path)
    try:
        for off, n in r.extents():
            for o in range(off, off + n, 4 * MIB):
                r.read(o, min(4 * MIB, off + n - o))
    finally:
        r.close()


def test_hostile_files(hostile_dir):
    d, cases = hostile_dir
    assert len(cases) >= 15
    for name, expect in cases:
        path = str(d / name)
        with pytest.raises((BadImage, NotFound)) as ei:
            _open_and_read_all(path)
        msg = str(ei.value)
        assert expect in msg, (name, msg)
        assert "\n" not in msg and msg.startswith(str(d)), (name, msg)
        if "parent disk not found" in expect:
            assert isinstance(ei.value, NotFound)
        else:
            assert isinstance(ei.value, BadImage), (name, msg)


def test_hostile_script_runs(tmp_path):
    p = subprocess.run(
        [sys.executable, str(Path(hostile_vhd.__file__)), str(tmp_path)],
        capture_output=True, text=True, check=True,
    )
    assert len(p.stdout.splitlines()) >= 15


def _fuzz(tmp_path: Path, name: str, valid: bytes, seed: int, iterations: int,
          hot: list[tuple[int, int]]) -> None:
    rnd = random.Random(seed)
    target = tmp_path / name
    for _ in range(iterations):
        b = bytearray(valid)
        if rnd.random() < 0.1:
            b = b[: rnd.randrange(0, len(b))]
        else:
            for _ in range(rnd.randrange(1, 6)):
                if rnd.random() < 0.85:
                    lo, hi = rnd.choice(hot)
                    i = rnd.randrange(lo, min(hi, len(b)))
                else:
                    i = rnd.randrange(len(b))
                b[i] = rnd.randrange(256) if rnd.random() < 0.5 else b[i] ^ (1 << rnd.randrange(8))
            if rnd.random() < 0.5:  # keep checksums valid so that the deeper checks are reached
                hostile_vhd._fix_footers(b)
                try:
                    hostile_vhd._fix_header(b)
                except (struct.error, ValueError, IndexError):
                    pass
        target.write_bytes(b)
        try:
            _open_and_read_all(str(target))
        except ImagestoreError:
            pass


@needs_qemu
def test_fuzz_dynamic(tmp_path):
    base = tmp_path / "base.vhd"
    qemu_vhd(base, 4 * MIB, [(4096, 8192, 0x5A), (3 * MIB, 4096, 0xA5)])
    valid = base.read_bytes()
    n = len(valid)
    _fuzz(tmp_path, "fz.vhd", valid, 1234, 200, [(0, 2048), (n - 512, n), (0, 4096)])


def test_fuzz_differencing(tmp_path):
    par = tmp_path / "par.vhd"
    build_sparse_vhd(str(par), 2 * MIB, [(0, b"\x11" * 1024)])
    child = tmp_path / "child.vhd"
    build_sparse_vhd(str(child), 2 * MIB, [(1024, b"\x22" * 1024)], parent=str(par))
    valid = child.read_bytes()
    n = len(valid)
    _fuzz(tmp_path, "fz.vhd", valid, 99, 150, [(0, 3072), (n - 512, n)])
