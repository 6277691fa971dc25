"""A bounded fuzz run of the VHD, VHDX and qcow2 readers, with qemu-img as the oracle.

Small valid images are made by qemu-img here (dynamic and fixed VHD, dynamic and fixed VHDX
with 1 MiB blocks), then mutated with a fixed seed: bit flips and byte stores in the format's
own structures (footers, dynamic header, BAT, block bitmaps; VHDX headers, region tables,
metadata, BAT; qcow2 header, extensions, L1, L2 and refcount tables), half of them with the
checksums recomputed so the parser goes deeper, some in the payload, some truncations. Every case must:

- open and read completely, or fail with an ImagestoreError (never another exception);
- finish within a per-case time bound (SIGALRM), so a loop on hostile input is a failure;
- where ``qemu-img convert`` to raw also accepts the file, give the same bytes. The disk is
  rebuilt from our reader's *extents* (zeros elsewhere), so the extents are checked too.
  Sizes may differ (qemu takes a VHD's size from its CHS geometry unless the footer's creator
  is one it trusts, BRIEF §4): the common prefix must match and the longer tail be zeros —
  except where the mutation touched the very fields the two readers take the size from (VHD
  creator application, current size, geometry), where only the common prefix is compared.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from imagestore.errors import ImagestoreError
from imagestore.formats import open_disk
from imagestore.formats.vhd import DYN_CHECKSUM_OFFSET, FOOTER_CHECKSUM_OFFSET, vhd_checksum
from imagestore.formats.vhdx import structs as S
from imagestore.formats.vhdx import with_checksum
from tests.helpers import need

MiB = 1 << 20
#: the seed and a case multiplier can be changed for a longer exploratory run, e.g.
#: IMAGESTORE_FUZZ_SEED=7 IMAGESTORE_FUZZ_SCALE=20 pytest tests/formats/test_fuzz.py
SEED = int(os.environ.get("IMAGESTORE_FUZZ_SEED", "20261202"))
SCALE = int(os.environ.get("IMAGESTORE_FUZZ_SCALE", "1"))
#: seconds one case may take in our reader before it counts as a hang: a real hang never
#: ends; a valid read of a few MiB in the pure-Python pass on a loaded machine can take 5 s
CASE_LIMIT = 30
#: VHD footer fields the size comes from: creator application (28..32), current size
#: (48..56), disk geometry (56..60)
VHD_SIZE_FIELDS = [(28, 32), (48, 60)]


class Hang(Exception):
    pass


def _alarm(_sig, _frame):  # noqa: ANN001
    raise Hang()


def make_source(tmp: Path, size: int) -> Path:
    rnd = random.Random(1)
    p = tmp / "src.raw"
    with open(p, "wb") as f:
        f.truncate(size)
        for off, n in ((0, 4096), (MiB - 700, 1400), (2 * MiB + 512, 64 * 1024),
                       (size - 5000, 5000)):
            f.seek(off)
            f.write(rnd.randbytes(n))
    return p


def qemu_image(tmp: Path, src: Path, name: str, fmt: str, opts: str) -> bytes:
    need("qemu-img")
    out = tmp / name
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, "-o", opts, str(src),
                    str(out)], check=True, capture_output=True)
    return out.read_bytes()


def fix_vhd(b: bytearray) -> None:
    """Recompute the checksums of both VHD footers and of the dynamic header."""
    for pos in (0, len(b) - 512):
        if pos >= 0 and b[pos : pos + 8] == b"conectix" and len(b) - pos >= 512:
            struct.pack_into(">I", b, pos + FOOTER_CHECKSUM_OFFSET,
                             vhd_checksum(bytes(b[pos : pos + 512]), FOOTER_CHECKSUM_OFFSET))
    if len(b) >= 512:
        doff = struct.unpack_from(">Q", b, len(b) - 512 + 16)[0]
        if doff + 1024 <= len(b) and b[doff : doff + 8] == b"cxsparse":
            struct.pack_into(">I", b, doff + DYN_CHECKSUM_OFFSET,
                             vhd_checksum(bytes(b[doff : doff + 1024]), DYN_CHECKSUM_OFFSET))


def fix_vhdx(b: bytearray) -> None:
    """Recompute the CRC-32C of both headers and both region tables."""
    for off, size in ((S.HEADER1_OFFSET, S.HEADER_SIZE), (S.HEADER2_OFFSET, S.HEADER_SIZE),
                      (S.REGION_TABLE1_OFFSET, S.REGION_TABLE_SIZE),
                      (S.REGION_TABLE2_OFFSET, S.REGION_TABLE_SIZE)):
        if off + size <= len(b):
            b[off : off + size] = with_checksum(bytes(b[off : off + size]))


def qcow2_areas(orig: bytes) -> list[tuple[int, int]]:
    from imagestore.formats.qcow2 import structs as Q

    h = Q.parse_header(orig)
    cs = h.cluster_size
    areas = [(0, 112), (112, 512), (h.l1_table_offset, h.l1_table_offset + 8 * h.l1_size),
             (h.refcount_table_offset, h.refcount_table_offset + 64)]
    for i in range(h.l1_size):
        (e,) = struct.unpack_from(">Q", orig, h.l1_table_offset + 8 * i)
        off = e & Q.L1E_OFFSET_MASK
        if off and off + cs <= len(orig):
            areas.append((off, off + cs))
    return areas


def vhd_areas(orig: bytes) -> list[tuple[int, int]]:
    n = len(orig)
    areas = [(n - 512, n - 512 + 100)]  # the footer's fields
    if orig[:8] == b"conectix":  # dynamic: footer copy, dynamic header, BAT, bitmaps
        toff = struct.unpack_from(">Q", orig, 512 + 16)[0]
        entries = struct.unpack_from(">I", orig, 512 + 28)[0]
        areas += [(0, 100), (512, 512 + 64), (toff, toff + 4 * entries)]
        for k in range(entries):
            sec = struct.unpack_from(">I", orig, toff + 4 * k)[0]
            if sec != 0xFFFFFFFF:
                areas.append((sec * 512, sec * 512 + 512))
    return areas


def vhdx_areas(orig: bytes) -> list[tuple[int, int]]:
    _sig, _crc, count, _r = S.REGION_TABLE_HEADER_FMT.unpack_from(orig, S.REGION_TABLE1_OFFSET)
    areas = [(0, 64), (S.HEADER1_OFFSET, S.HEADER1_OFFSET + 80),
             (S.HEADER2_OFFSET, S.HEADER2_OFFSET + 80),
             (S.REGION_TABLE1_OFFSET, S.REGION_TABLE1_OFFSET + 16 + 32 * count),
             (S.REGION_TABLE2_OFFSET, S.REGION_TABLE2_OFFSET + 16 + 32 * count)]
    for i in range(count):
        g, foff, length, _f = S.REGION_ENTRY_FMT.unpack_from(
            orig, S.REGION_TABLE1_OFFSET + 16 + 32 * i)
        if S.guid_from_le(g) == S.METADATA_GUID:
            areas += [(foff, foff + 32 + 32 * 6), (foff + 64 * 1024, foff + 64 * 1024 + 64)]
        elif S.guid_from_le(g) == S.BAT_GUID:
            areas.append((foff, foff + 8 * 8))
    return areas


def mutate(orig: bytes, areas: list[tuple[int, int]], fix, rnd: random.Random,  # noqa: ANN001
           payload: tuple[int, int]) -> tuple[bytearray, list[int]]:
    """A mutated copy and the positions changed before the checksum fix-up."""
    b = bytearray(orig)
    r = rnd.random()
    if r < 0.08:  # truncation: anywhere, or just the last bytes
        cut = rnd.randrange(len(b)) if rnd.random() < 0.5 else len(b) - rnd.randrange(1, 1024)
        return b[:cut], [cut]
    touched = []
    for _ in range(rnd.randint(1, 4)):
        lo, hi = payload if rnd.random() < 0.1 else rnd.choice(areas)
        i = rnd.randrange(lo, hi)
        b[i] = (b[i] ^ (1 << rnd.randrange(8))) if rnd.random() < 0.5 else rnd.choice(
            [0, 0xFF, 0x80, 0x01, rnd.randrange(256)])
        touched.append(i)
    if rnd.random() < 0.5:
        fix(b)
    return b, touched


#: disks larger than this (a mutated size field) are read completely but not compared
COMPARE_LIMIT = 64 * MiB


def our_bytes(path: str) -> bytes | int:
    """The disk as our reader gives it, rebuilt from its extents (zeros elsewhere); for a
    disk above COMPARE_LIMIT its extents are read all the same and their total returned."""
    r = open_disk(path)
    try:
        if r.virtual_size > COMPARE_LIMIT:
            total = 0
            for off, n in r.extents():
                for o in range(off, off + n, 8 * MiB):
                    total += len(r.read(o, min(8 * MiB, off + n - o)))
            return total
        out = np.zeros(r.virtual_size, dtype=np.uint8)
        for off, n in r.extents():
            out[off : off + n] = np.frombuffer(r.read(off, n), dtype=np.uint8)
        return out.tobytes()
    finally:
        r.close()


def qemu_bytes(path: str, fmt: str, out: str) -> bytes | None:
    try:
        p = subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", path, out],
                           capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    with open(out, "rb") as f:
        return f.read()


def same_disk(a: bytes, b: bytes, prefix_only: bool) -> bool:
    n = min(len(a), len(b))
    if a[:n] != b[:n]:
        return False
    if prefix_only:
        return True
    longer = a if len(a) > len(b) else b
    return longer[n:].count(0) == len(longer) - n


KINDS = {
    # name: (qemu format, qemu -o options, cases)
    "vhd-dynamic": ("vpc", "subformat=dynamic", 110),
    "vhd-fixed": ("vpc", "subformat=fixed", 40),
    "vhdx-dynamic": ("vhdx", "subformat=dynamic,block_size=1M", 110),
    "vhdx-fixed": ("vhdx", "subformat=fixed,block_size=1M", 40),
    "qcow2-v3": ("qcow2", "compat=1.1,cluster_size=4096", 70),
    "qcow2-v2": ("qcow2", "compat=0.10", 30),
    "qcow2-extl2": ("qcow2", "compat=1.1,extended_l2=on,cluster_size=16k", 30),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fuzz_against_qemu(tmp_path, kind):
    fmt, opts, cases = KINDS[kind]
    cases *= SCALE
    src = make_source(tmp_path, 4 * MiB)
    orig = qemu_image(tmp_path, src, f"valid.{fmt}", fmt, opts)
    ref = qemu_bytes(str(tmp_path / f"valid.{fmt}"), fmt, str(tmp_path / "ref.raw"))
    assert ref is not None and same_disk(our_bytes(str(tmp_path / f"valid.{fmt}")), ref, False)
    is_vhd = fmt == "vpc"
    if fmt == "qcow2":
        areas, fix = qcow2_areas(orig), (lambda b: None)
    else:
        areas = vhd_areas(orig) if is_vhd else vhdx_areas(orig)
        fix = fix_vhd if is_vhd else fix_vhdx
    # payload: where the data is (the first data block for dynamic disks, the disk for fixed,
    # the clusters after the tables for qcow2)
    if fmt == "qcow2":
        payload = (max(e for _s, e in areas), len(orig))
    elif kind == "vhd-fixed":
        payload = (0, len(orig) - 512)
    else:
        payload = (len(orig) - 2 * MiB, len(orig) - 4096)
    rnd = random.Random(f"{SEED}-{kind}")
    path = tmp_path / f"case.{'vhd' if is_vhd else fmt}"
    stats = {"ours": 0, "refused": 0, "both": 0, "qemu-only": 0, "large": 0}
    old = signal.signal(signal.SIGALRM, _alarm)
    t0 = time.monotonic()
    try:
        for i in range(cases):
            b, touched = mutate(orig, areas, fix, rnd, payload)
            path.write_bytes(b)
            signal.alarm(CASE_LIMIT)
            try:
                ours = our_bytes(str(path))
            except ImagestoreError:
                ours = None
            except Hang:
                keep = tmp_path.parent / f"fuzz-{kind}-{i}.bin"
                keep.write_bytes(b)
                pytest.fail(f"{kind} case {i}: our reader took more than {CASE_LIMIT} s "
                            f"(file kept: {keep})")
            except Exception as e:  # noqa: BLE001 - that is the point of the test
                keep = tmp_path.parent / f"fuzz-{kind}-{i}.bin"
                keep.write_bytes(b)
                pytest.fail(f"{kind} case {i}: {type(e).__name__}: {e} (file kept: {keep})")
            finally:
                signal.alarm(0)
            stats["ours" if ours is not None else "refused"] += 1
            if isinstance(ours, int):  # too large to compare
                stats["large"] += 1
                continue
            theirs = qemu_bytes(str(path), fmt, str(tmp_path / "q.raw"))
            if ours is None:
                stats["qemu-only"] += theirs is not None
                continue
            if theirs is None:
                continue
            stats["both"] += 1
            size_fields = is_vhd and any(
                lo <= t - foot < hi for t in touched for foot in (0, len(orig) - 512)
                for lo, hi in VHD_SIZE_FIELDS)
            if not same_disk(ours, theirs, prefix_only=size_fields):
                keep = tmp_path.parent / f"fuzz-{kind}-{i}.bin"
                keep.write_bytes(b)
                pytest.fail(f"{kind} case {i}: our bytes differ from qemu-img's (sizes "
                            f"{len(ours)} / {len(theirs)}; touched {touched}; file kept: {keep})")
    finally:
        signal.signal(signal.SIGALRM, old)
    elapsed = time.monotonic() - t0
    print(f"{kind}: {cases} cases in {elapsed:.1f} s: {stats}")
    # the run must exercise both paths: accepted files compared with qemu, and refusals
    assert stats["both"] >= cases // 5 and stats["refused"] >= cases // 10, stats
    os.unlink(path)
