"""VHDX reader and writer, against qemu-img/qemu-io and libvhdi (pyvhdi) as oracles.

qemu 7.2 can neither create nor open differencing VHDX files (no backing option; HasParent
gives ENOTSUP), so differencing chains are made with imagestore's own writer (its test-only
``parent=`` option) on top of a qemu-made base, and checked against pyvhdi and a byte model.
qemu can neither make nor read 4096-byte-logical-sector VHDX files; those come from our writer
(``logical_sector_size=4096``) and are checked against pyvhdi.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import pyvhdi

from imagestore.errors import BadImage, ImagestoreError, NotFound, TooLarge
from imagestore.formats import create_writer, open_disk
from imagestore.formats.vhdx import crc32c, create_vhdx_writer
from imagestore.formats.vhdx import structs as S

MiB = 2**20

# qemu-img, qemu-io and pyvhdi are required by the suite (.ci/run installs them): a missing one
# fails loudly instead of skipping, like the rest of the suite (see conftest.need).
@pytest.fixture(autouse=True, scope="module")
def _oracles_installed():
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            pytest.fail(f"required tool '{tool}' is not installed (run .ci/run or see README)")

ROOT = Path(__file__).resolve().parents[2]


def _load_fixture():
    spec = importlib.util.spec_from_file_location("hostile_vhdx", ROOT / "fixtures" / "hostile_vhdx.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def qemu_create(path: Path, size: int | str, **opts: str) -> None:
    o = ",".join(f"{k}={v}" for k, v in opts.items())
    cmd = ["qemu-img", "create", "-q", "-f", "vhdx"]
    if o:
        cmd += ["-o", o]
    run(*cmd, str(path), str(size))


def qemu_write(path: Path, writes: list[tuple[int, int, int]]) -> None:
    cmds: list[str] = []
    for off, n, pat in writes:
        cmds += ["-c", f"write -P {pat:#x} {off} {n}"]
    if cmds:
        run("qemu-io", "-f", "vhdx", *cmds, str(path))


def qemu_raw(path: Path, tmp: Path) -> bytes:
    out = tmp / (path.name + ".raw")
    run("qemu-img", "convert", "-f", "vhdx", "-O", "raw", str(path), str(out))
    return out.read_bytes()


def read_all(path: Path | str) -> tuple[bytes, list[tuple[int, int]], str]:
    r = open_disk(str(path))
    try:
        ext = list(r.extents())
        data = r.read(0, r.virtual_size)
        # extents-only view: zeros outside extents must equal the full read
        view = bytearray(r.virtual_size)
        for off, n in ext:
            view[off : off + n] = r.read(off, n)
        assert bytes(view) == data
        return data, ext, r.format
    finally:
        r.close()


def pyvhdi_read(path: Path, parents: list[Path] = ()) -> bytes:
    files = []
    f = pyvhdi.file()
    f.open(str(path))
    files.append(f)
    cur = f
    for p in parents:
        pf = pyvhdi.file()
        pf.open(str(p))
        cur.set_parent(pf)
        files.append(pf)
        cur = pf
    try:
        size = f.get_media_size()
        return f.read_buffer_at_offset(size, 0)
    finally:
        for x in files:
            x.close()


# ------------------------------------------------------------------------------------------
# CRC-32C


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4


# ------------------------------------------------------------------------------------------
# Reader vs qemu-img

READER_CASES = {
    # name: (create options, size, writes)
    "dynamic_straddle_1M": (
        {"block_size": "1M"}, 8 * MiB,
        [(MiB - 4096, 8192, 0x11), (3 * MiB + 512, 2 * MiB + 1024, 0x22), (8 * MiB - 512, 512, 0x33)],
    ),
    "dynamic_default_block": (
        {}, 100 * MiB, [(0, 4096, 0xAB), (33 * MiB - 1000 // 512 * 512, 70 * 1024, 0xCD)],
    ),
    "dynamic_size_not_block_multiple": (
        {"block_size": "4M"}, 10 * MiB + 3 * 512, [(10 * MiB - 4096, 4096 + 3 * 512, 0x44), (4 * MiB - 512, 1024, 0x55)],
    ),
    "dynamic_log_2M": ({"log_size": "2M", "block_size": "2M"}, 6 * MiB, [(MiB, MiB * 2, 0x66)]),
    "fixed_writes": (
        {"subformat": "fixed", "block_size": "1M"}, 5 * MiB + 512, [(512, 1536, 0x77), (5 * MiB - 512, 1024, 0x78)],
    ),
    "fixed_empty": ({"subformat": "fixed"}, 3 * MiB, []),
    "dynamic_empty": ({}, 64 * MiB, []),
    "zero_size": ({}, 0, []),
}


@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_reader_matches_qemu(tmp_path: Path, case: str):
    opts, size, writes = READER_CASES[case]
    p = tmp_path / f"{case}.vhdx"
    qemu_create(p, size, **opts)
    qemu_write(p, writes)
    ref = qemu_raw(p, tmp_path)
    data, ext, fmt = read_all(p)
    assert len(data) == size
    assert data == ref
    assert fmt == ("vhdx-fixed" if opts.get("subformat") == "fixed" else "vhdx-dynamic")
    if not writes:
        assert data == bytes(size)
    for off, n, _pat in writes:  # every written range is inside the extents
        assert any(o <= off and off + n <= o + ln for o, ln in ext), (off, n, ext)


def test_reader_full_random_disk(tmp_path: Path):
    rnd = random.Random(7)
    size = 6 * MiB + 512
    raw = tmp_path / "rand.raw"
    raw.write_bytes(rnd.randbytes(size))
    for sub in ("dynamic", "fixed"):
        p = tmp_path / f"rand-{sub}.vhdx"
        run("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", f"subformat={sub},block_size=1M",
            str(raw), str(p))
        data, ext, _fmt = read_all(p)
        assert data == raw.read_bytes()
        assert ext == [(0, size)]


def test_reader_32tib_sparse_is_fast(tmp_path: Path):
    p = tmp_path / "big.vhdx"
    qemu_create(p, "32T")
    offs = [0, 17 * 2**40 + 5 * MiB, 32 * 2**40 - MiB]
    qemu_write(p, [(o, MiB, 0xAB) for o in offs])
    t0 = time.perf_counter()
    r = open_disk(str(p))
    try:
        ext = list(r.extents())
        got = b"".join(r.read(o, n) for o, n in ext)
        for o in offs:
            assert r.read(o, MiB) == b"\xab" * MiB
            assert r.read(o - 512, 512) == bytes(512) if o else True
    finally:
        r.close()
    dt = time.perf_counter() - t0
    print(f"32 TiB VHDX: {len(ext)} extents, {len(got)} bytes read in {dt:.3f} s")
    assert r.virtual_size == 32 * 2**40
    assert len(ext) == 3
    for o in offs:
        assert any(e <= o and o + MiB <= e + n for e, n in ext)
    assert got.count(b"\xab") == 3 * MiB


# ------------------------------------------------------------------------------------------
# Writer


def _write_pattern(w, ref: bytearray, writes: list[tuple[int, bytes]]) -> None:
    for off, data in writes:
        w.write(off, data)
        ref[off : off + len(data)] = data


def _writer_writes(size: int) -> list[tuple[int, bytes]]:
    rnd = random.Random(3)
    return [
        (1000, rnd.randbytes(5000)),  # unaligned, mid-block
        (7000, rnd.randbytes(300)),  # continues the same block
        (32 * MiB - 777, rnd.randbytes(2000)),  # straddles a block boundary
        (40 * MiB, memoryview(rnd.randbytes(3 * MiB))),  # a memoryview
        (size - 1234, rnd.randbytes(1234)),  # up to the last byte
    ]


@pytest.mark.parametrize("fixed", [False, True], ids=["dynamic", "fixed"])
def test_writer_against_oracles(tmp_path: Path, fixed: bool):
    size = 100 * MiB + 7  # rounded up to a sector multiple
    vsize = 100 * MiB + 512
    out = tmp_path / "out.vhdx"
    w = create_writer(str(out), size, "vhdx-fixed" if fixed else "vhdx")
    assert w.virtual_size == vsize
    ref = bytearray(vsize)
    _write_pattern(w, ref, _writer_writes(size))
    w.finish()
    refp = tmp_path / "ref.raw"
    refp.write_bytes(ref)
    data, ext, fmt = read_all(out)
    assert data == ref
    assert fmt == ("vhdx-fixed" if fixed else "vhdx-dynamic")
    if not fixed:  # 32 MiB blocks: 0, 1 (straddle + 40 MiB..43 MiB) and 3 (the end)
        assert ext == [(0, 64 * MiB), (96 * MiB, vsize - 96 * MiB)]
    r = run("qemu-img", "compare", "-f", "vhdx", str(out), "-F", "raw", str(refp), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("qemu-img", "check", "-f", "vhdx", str(out), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(run("qemu-img", "info", "--output=json", str(out)).stdout)
    assert info["virtual-size"] == vsize
    assert info["format"] == "vhdx"
    assert pyvhdi_read(out) == ref
    assert out.stat().st_blocks * 512 < 16 * MiB  # sparse: ~8 MiB of data written


def test_writer_empty_and_sparse(tmp_path: Path):
    for fixed in (False, True):
        out = tmp_path / f"empty-{fixed}.vhdx"
        w = create_vhdx_writer(str(out), 2 * 2**40, fixed=fixed)  # 2 TiB
        w.finish()
        st = out.stat()
        assert st.st_blocks * 512 < 32 * MiB, st.st_blocks  # BAT of 64 Ki entries + headers
        r = open_disk(str(out))
        try:
            assert r.virtual_size == 2 * 2**40
            ext = list(r.extents())
            assert (ext == []) if not fixed else (ext == [(0, 2 * 2**40)])
            assert r.read(2**40, 4096) == bytes(4096)
        finally:
            r.close()
        assert run("qemu-img", "check", "-f", "vhdx", str(out), check=False).returncode == 0


def test_writer_too_large(tmp_path: Path):
    out = tmp_path / "huge.vhdx"
    with pytest.raises(TooLarge):
        create_writer(str(out), 64 * 2**40 + 1, "vhdx")
    with pytest.raises(TooLarge):
        create_vhdx_writer(str(out), 65 * 2**40, fixed=True)
    assert not out.exists()
    w = create_vhdx_writer(str(out), 64 * 2**40, fixed=False)  # exactly the limit is fine
    w.write(64 * 2**40 - 512, b"\x01" * 512)
    w.finish()
    r = open_disk(str(out))
    try:
        assert r.virtual_size == 64 * 2**40
        assert list(r.extents()) == [(64 * 2**40 - 32 * MiB, 32 * MiB)]
        assert r.read(64 * 2**40 - 1024, 1024) == bytes(512) + b"\x01" * 512
    finally:
        r.close()


def test_writer_abort(tmp_path: Path):
    out = tmp_path / "a.vhdx"
    w = create_vhdx_writer(str(out), 10 * MiB, fixed=False)
    w.write(0, b"x" * 100)
    w.abort()
    w.abort()  # idempotent
    # never finished: no "vhdxfile" identifier, so not a VHDX, and its name promises one
    with pytest.raises(BadImage, match="promises a VHDX but it is not one"):
        open_disk(str(out))
    r = open_disk(str(out), source_format="raw")
    try:
        assert r.format == "raw"
    finally:
        r.close()


def test_logical_sector_4096(tmp_path: Path):
    size = 9 * MiB + 4096 * 3
    out = tmp_path / "ls4k.vhdx"
    w = create_vhdx_writer(str(out), size, fixed=False, block_size=MiB, logical_sector_size=4096)
    ref = bytearray(size)
    _write_pattern(w, ref, [(4096, b"\x42" * 3 * MiB), (size - 8192, b"\x43" * 8192)])
    w.finish()
    r = open_disk(str(out))
    try:
        assert r.logical_sector_size == 4096
        assert r.chunk_ratio == (2**23 * 4096) // MiB
    finally:
        r.close()
    data, _ext, _fmt = read_all(out)
    assert data == ref
    assert pyvhdi_read(out) == ref  # qemu 7.2 refuses logical sectors other than 512 (ENOTSUP)


# ------------------------------------------------------------------------------------------
# Differencing chains


def _data_write_guid(path: Path) -> uuid.UUID:
    r = open_disk(str(path))
    try:
        return r.header.data_write_guid
    finally:
        r.close()


@pytest.mark.parametrize("depth", [1, 3])
def test_differencing_chain(tmp_path: Path, depth: int):
    size = 20 * MiB
    base = tmp_path / "base.vhdx"
    qemu_create(base, size, block_size="2M")
    qemu_write(base, [(0, 3 * MiB, 0x10), (10 * MiB, MiB, 0x11), (19 * MiB, MiB, 0x12)])
    ref = bytearray(qemu_raw(base, tmp_path))
    chain = [base]
    rnd = random.Random(depth)
    for level in range(depth):
        child = tmp_path / f"child{level}.vhdx"
        parent = chain[-1]
        w = create_vhdx_writer(
            str(child), size, fixed=False, block_size=MiB,
            parent=(".\\" + parent.name, _data_write_guid(parent)),
        )
        writes = [
            (512 * (1 + level), bytes([0x20 + level]) * 1024),  # sectors inside a base block
            ((2 + level) * MiB - 512, rnd.randbytes(4096)),  # straddles child blocks
            (12 * MiB + level * 4096, bytes([0x30 + level]) * 512),  # over a base hole
        ]
        _write_pattern(w, ref, writes)
        w.finish()
        chain.append(child)
    top = chain[-1]
    data, ext, fmt = read_all(top)
    assert fmt == "vhdx-differencing"
    assert data == ref
    # the union of extents covers all non-zero data of the chain
    cover = bytearray(size)
    for o, n in ext:
        cover[o : o + n] = ref[o : o + n]
    assert bytes(cover) == bytes(ref)
    assert pyvhdi_read(top, list(reversed(chain[:-1]))) == ref


def test_differencing_parent_size_mismatch(tmp_path: Path):
    base = tmp_path / "base.vhdx"
    qemu_create(base, 8 * MiB)
    child = tmp_path / "child.vhdx"
    w = create_vhdx_writer(str(child), 16 * MiB, fixed=False, parent=("base.vhdx", _data_write_guid(base)))
    w.finish()
    with pytest.raises(BadImage, match="virtual size"):
        open_disk(str(child))


# ------------------------------------------------------------------------------------------
# Hostile files


def test_hostile_files(tmp_path: Path):
    mod = _load_fixture()
    cases = mod.generate(str(tmp_path))
    assert len(cases) >= 15
    failures = []
    for name, expect in cases:
        path = tmp_path / name
        try:
            r = open_disk(str(path))
            try:
                for o, n in r.extents():
                    r.read(o, min(n, MiB))
            finally:
                r.close()
            failures.append(f"{name}: no error")
        except (BadImage, NotFound) as e:
            msg = str(e)
            if expect not in msg or "\n" in msg or not msg.startswith(str(path)):
                failures.append(f"{name}: {type(e).__name__}: {msg!r} lacks {expect!r}")
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: unexpected {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_hostile_fixture_script(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "fixtures" / "hostile_vhdx.py"), str(tmp_path / "out")],
        capture_output=True, text=True, check=True,
    )
    lines = [x.split("\t") for x in r.stdout.splitlines()]
    assert len(lines) >= 15 and all(len(x) == 2 for x in lines)


@pytest.mark.parametrize("kind", ["dynamic", "differencing"])
def test_fuzz_header_area(tmp_path: Path, kind: str):
    """Seeded byte flips over the header section, metadata and BAT of a small valid VHDX
    (and of a differencing child: locator, sector bitmap entries), half of them with the CRCs
    recomputed so that parsing goes deeper: every open either succeeds (and reads) or raises
    an ImagestoreError."""
    mod = _load_fixture()
    path = tmp_path / "fuzz.vhdx"
    if kind == "dynamic":
        mod.make_valid(str(path))
        iterations = 200
    else:
        dwg = mod.make_valid(str(tmp_path / "parent.vhdx"))
        mod.make_valid(str(path), parent=("parent.vhdx", dwg))
        iterations = 100
    orig = bytearray(path.read_bytes())
    rnd = random.Random(20240601)
    areas = [
        (0, 64),
        (S.HEADER1_OFFSET, 80),
        (S.HEADER2_OFFSET, 80),
        (S.REGION_TABLE1_OFFSET, 80),
        (mod.META_OFF, 256),  # metadata table
        (mod.META_OFF + 64 * 1024, 256),  # metadata items (and the parent locator)
        (mod.BAT_OFF, 64),  # BAT
        (mod.BAT_OFF + 8 * 4096, 8),  # the sector bitmap entry (chunk ratio 4096)
    ]
    outcomes = {"ok": 0, "error": 0}
    with open(path, "r+b") as f:
        for i in range(iterations):
            buf = bytearray(orig)
            for _ in range(rnd.randint(1, 6)):
                start, length = rnd.choice(areas)
                pos = start + rnd.randrange(length)
                if rnd.random() < 0.5:
                    buf[pos] ^= 1 << rnd.randrange(8)
                else:
                    buf[pos] = rnd.choice([0, 0xFF, 0x80, 0x01, rnd.randrange(256)])
            if i % 2:
                mod.refix(buf)
            # write back only the touched head of the file (the payload is unchanged)
            f.seek(0)
            f.write(buf[: 4 * MiB])
            f.flush()
            try:
                r = open_disk(str(path))
                try:
                    for o, n in r.extents():
                        r.read(o, min(n, 2 * MiB))
                    r.read(0, min(r.virtual_size, 4096))
                finally:
                    r.close()
                outcomes["ok"] += 1
            except ImagestoreError as e:
                assert "\n" not in str(e)
                outcomes["error"] += 1
    print(outcomes)
    assert outcomes["error"] > 0


def test_region_table_second_copy_and_header_sequence(tmp_path: Path):
    """A bad first region table falls back to the second; the header with the higher
    sequence number wins."""
    mod = _load_fixture()
    p = tmp_path / "v.vhdx"
    mod.make_valid(str(p))
    buf = bytearray(p.read_bytes())
    buf[S.REGION_TABLE1_OFFSET + 200] ^= 1  # breaks only copy 1's CRC
    # header 1: higher sequence number but a bogus version -> must be chosen, then refused
    struct.pack_into("<Q", buf, S.HEADER1_OFFSET + 8, 99)
    struct.pack_into("<H", buf, S.HEADER1_OFFSET + 66, 7)
    from imagestore.formats.vhdx import with_checksum

    buf[S.HEADER1_OFFSET : S.HEADER1_OFFSET + 4096] = with_checksum(
        bytes(buf[S.HEADER1_OFFSET : S.HEADER1_OFFSET + 4096])
    )
    p.write_bytes(buf)
    with pytest.raises(BadImage, match="header version 7"):
        open_disk(str(p))
    buf[S.HEADER1_OFFSET + 4] ^= 1  # header 1 now fails CRC: header 2 is used
    p.write_bytes(buf)
    data, _ext, _fmt = read_all(p)
    assert data[:4096] == b"\x5a" * 4096


# ------------------------------------------------------------------------------------------
# Log replay (in memory, never writing the file)


def test_log_replay_in_memory_matches_qemu(tmp_path: Path):
    """A valid log entry (built per MS-VHDX 2.3) that rewrites a payload sector, clears one
    BAT entry and zeroes a payload range: our in-memory replay must give the bytes qemu gives
    after it replays the log into a copy (``qemu-img check -r all``); the original stays
    untouched, and qemu itself refuses the original read-only because the log needs replay."""
    import hashlib

    mod = _load_fixture()
    p = tmp_path / "dirty.vhdx"
    qemu_create(p, 8 * MiB, block_size="1M")
    qemu_write(p, [(MiB, MiB, 0x11), (5 * MiB, MiB, 0x55), (6 * MiB, 8192, 0x66)])
    r = open_disk(str(p))
    try:
        bat_off = r.bat_region.file_offset
        blk1 = int(r.offsets[1])
        blk6 = int(r.offsets[6])
    finally:
        r.close()
    buf = bytearray(p.read_bytes())
    bat_sector = bytearray(buf[bat_off : bat_off + 4096])
    struct.pack_into("<Q", bat_sector, 5 * 8, 0)  # block 5: NOT_PRESENT
    mod.add_log_entry(
        buf,
        [(blk1 + 8192, b"\xee" * 4096), (bat_off, bytes(bat_sector))],
        zeros=[(blk6, 4096)],
        seq=7,
    )
    p.write_bytes(buf)
    before = hashlib.sha256(p.read_bytes()).hexdigest()

    r = open_disk(str(p))
    try:
        assert r.log_replayed == 1
        data = r.read(0, r.virtual_size)
        ext = list(r.extents())
    finally:
        r.close()
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before  # never written

    expect = bytearray(8 * MiB)
    expect[MiB : 2 * MiB] = b"\x11" * MiB
    expect[MiB + 8192 : MiB + 12288] = b"\xee" * 4096
    expect[6 * MiB + 4096 : 6 * MiB + 8192] = b"\x66" * 4096
    assert data == bytes(expect)
    assert ext == [(MiB, MiB), (6 * MiB, MiB)]

    ro = run("qemu-img", "convert", "-f", "vhdx", "-O", "raw", str(p), str(tmp_path / "x.raw"),
             check=False)
    assert ro.returncode != 0 and "replay" in ro.stderr  # qemu agrees the log is valid
    copy = tmp_path / "copy.vhdx"
    shutil.copyfile(p, copy)
    run("qemu-img", "check", "-q", "-r", "all", "-f", "vhdx", str(copy), check=False)
    assert qemu_raw(copy, tmp_path) == data


def test_log_stale_entries_ignored(tmp_path: Path):
    """A non-zero LogGuid whose log holds only entries of another LogGuid or with a bad
    checksum: nothing to replay, the file opens as is."""
    mod = _load_fixture()
    p = tmp_path / "stale.vhdx"
    mod.make_valid(str(p))
    buf = bytearray(p.read_bytes())
    mod.add_log_entry(buf, [(mod.BAT_OFF, bytes(4096))], log_guid=uuid.UUID(int=1))
    for off in (S.HEADER1_OFFSET, S.HEADER2_OFFSET):  # header now names another log guid
        buf[off + 48 : off + 64] = uuid.UUID(int=2).bytes_le
    mod.refix(buf)
    p.write_bytes(buf)
    data, _ext, _fmt = read_all(p)
    assert data[:4096] == b"\x5a" * 4096


def test_differencing_block_states(tmp_path: Path):
    """In a child: NOT_PRESENT reads the parent, ZERO reads zeros (not the parent),
    FULLY_PRESENT reads the child's block (unwritten parts zero), PARTIALLY_PRESENT mixes
    (MS-VHDX 2.5.1.1). The BAT of the child is patched directly."""
    size = 4 * MiB
    parent = tmp_path / "p.vhdx"
    w = create_vhdx_writer(str(parent), size, fixed=False, block_size=MiB)
    w.write(0, b"\x11" * size)
    w.finish()
    child = tmp_path / "c.vhdx"
    w = create_vhdx_writer(str(child), size, fixed=False, block_size=MiB,
                           parent=("p.vhdx", w.data_write_guid))
    w.write(4096, b"\x22" * 4096)  # block 0, partially present
    w.write(MiB + 4096, b"\x33" * 4096)  # block 1, becomes fully present below
    w.finish()
    buf = bytearray(child.read_bytes())
    bat = 3 * MiB  # the writer's layout; chunk ratio 4096 so entry i is block i
    e1 = struct.unpack_from("<Q", buf, bat + 8)[0]
    struct.pack_into("<Q", buf, bat + 8, (e1 & ~7) | S.PAYLOAD_BLOCK_FULLY_PRESENT)
    struct.pack_into("<Q", buf, bat + 16, S.PAYLOAD_BLOCK_ZERO)  # block 2: zeros
    # block 3 stays NOT_PRESENT: the parent's bytes
    child.write_bytes(buf)
    data, ext, fmt = read_all(child)
    assert fmt == "vhdx-differencing"
    expect = bytearray(b"\x11" * size)
    expect[4096:8192] = b"\x22" * 4096
    expect[MiB : 2 * MiB] = bytes(MiB)
    expect[MiB + 4096 : MiB + 8192] = b"\x33" * 4096
    expect[2 * MiB : 3 * MiB] = bytes(MiB)
    assert data == bytes(expect)
    assert ext == [(0, size)]  # union with the parent's extents
    # libvhdi reads a ZERO block of a child from the parent; MS-VHDX 2.5.1.1 defines its
    # contents as zero (as do other readers' state tables): compare everywhere else
    got = bytearray(pyvhdi_read(child, [parent]))
    got[2 * MiB : 3 * MiB] = bytes(MiB)
    assert got == expect


def test_differencing_locator_fallbacks(tmp_path: Path):
    """relative_path missing: absolute_win32_path's and volume_path's file names are tried
    next to the child."""
    from imagestore.formats import vhdx as V

    size = 2 * MiB
    parent = tmp_path / "base.vhdx"
    w = create_vhdx_writer(str(parent), size, fixed=False, block_size=MiB)
    w.write(0, b"\x44" * 512)
    w.finish()
    dwg = w.data_write_guid
    for key, value in (
        ("absolute_win32_path", "C:\\vms\\base.vhdx"),
        ("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\vms\\base.vhdx"),
    ):
        child = tmp_path / f"child-{key}.vhdx"
        cw = create_vhdx_writer(str(child), size, fixed=False, block_size=MiB,
                                parent=("gone.vhdx", dwg))
        cw.finish()
        buf = bytearray(child.read_bytes())
        _pos, loc_off, loc_len = _load_fixture().meta_entry(buf, S.PARENT_LOCATOR_GUID)
        new = V.pack_locator([("parent_linkage", "{" + str(dwg) + "}"),
                               ("relative_path", "gone.vhdx"), (key, value)])
        assert len(new) < 64 * 1024
        buf[loc_off : loc_off + len(new)] = new
        # fix the locator's length in the metadata table
        pos = _pos
        struct.pack_into("<I", buf, pos + 20, len(new))
        child.write_bytes(buf)
        data, _ext, _fmt = read_all(child)
        assert data[:512] == b"\x44" * 512, key


def test_writer_fixed_beyond_filesystem_limit(tmp_path: Path):
    """A 20 TiB fixed VHDX: sparse where the filesystem allows such a file; where it does not
    (ext4 stops at 16 TiB), TooLarge and no file left behind."""
    out = tmp_path / "big-fixed.vhdx"
    size = 20 * 2**40
    try:
        w = create_writer(str(out), size, "vhdx-fixed")
    except TooLarge as e:
        assert "too large" in str(e)
        assert not out.exists()
        return
    w.write(size - 4096, b"\x07" * 4096)
    w.finish()
    assert out.stat().st_blocks * 512 < 64 * MiB
    r = open_disk(str(out))
    try:
        assert r.format == "vhdx-fixed" and r.virtual_size == size
        assert r.read(size - 8192, 8192) == bytes(4096) + b"\x07" * 4096
    finally:
        r.close()
