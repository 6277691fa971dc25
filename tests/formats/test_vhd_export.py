"""The fixed-VHD view of a disk (what `beginGetAccess` serves): its bytes written out are a
VHD that qemu-img reads as the source disk, any range equals the same slice of the whole,
and the page map covers every non-zero byte."""

from __future__ import annotations

import random
import subprocess
import uuid

import pytest

from imagestore.formats import open_disk
from imagestore.formats.vhd import FOOTER_COOKIE, SECTOR
from imagestore.formats.vhd_export import FOOTER_SIZE, FixedVhdView, export_footer
from tests.helpers import need

MiB = 1 << 20
UID = "0f3b7a52-54f1-4f8e-9a0e-2b5d2d1c9e11"


def qemu(*args: str) -> str:
    p = subprocess.run([need("qemu-img"), *args], capture_output=True, text=True)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout


@pytest.fixture
def dynamic_vhd(tmp_path) -> str:
    path = str(tmp_path / "src.vhd")
    qemu("create", "-q", "-f", "vpc", "-o", "force_size=on", path, "6M")
    for off, pat, n in ((0, 0x11, 4096), (MiB + 512, 0x22, 70000), (5 * MiB, 0x33, MiB)):
        subprocess.run([need("qemu-io"), "-f", "vpc", "-c", f"write -P {pat} {off} {n}", path],
                       check=True, capture_output=True)
    return path


def test_written_view_is_the_source_as_fixed_vhd(dynamic_vhd, tmp_path):
    reader = open_disk(dynamic_vhd)
    try:
        view = FixedVhdView(reader, unique_id=UID, timestamp=1_800_000_000)
        assert view.size == reader.virtual_size + FOOTER_SIZE == 6 * MiB + 512
        out = tmp_path / "export.vhd"
        with open(out, "wb") as f:
            for piece in view.iter_range(0, view.size, step=1_000_003):
                f.write(piece)
    finally:
        reader.close()
    info = qemu("info", "-f", "vpc", "--output=json", str(out))
    assert '"virtual-size": 6291456' in info
    qemu("compare", "-f", "vpc", "-F", "vpc", dynamic_vhd, str(out))
    # the footer: fixed disk, our unique id, exact size; our own reader takes it as vhd-fixed
    tail = out.read_bytes()[-512:]
    assert tail[:8] == FOOTER_COOKIE and tail[60:64] == b"\0\0\0\2"  # disk type fixed
    assert tail[68:84] == uuid.UUID(UID).bytes
    assert int.from_bytes(tail[48:56], "big") == 6 * MiB  # current size
    r2 = open_disk(str(out))
    assert r2.format == "vhd-fixed" and r2.virtual_size == 6 * MiB
    r2.close()


def test_ranges_equal_slices_of_the_whole(dynamic_vhd):
    reader = open_disk(dynamic_vhd)
    try:
        view = FixedVhdView(reader, unique_id=UID, timestamp=1_800_000_000)
        whole = view.read(0, view.size)
        rnd = random.Random(5)
        edges = [0, 1, MiB + 511, MiB + 512, view.size - 513, view.size - 512, view.size - 1]
        for _ in range(200):
            a = rnd.choice(edges) if rnd.random() < 0.3 else rnd.randrange(view.size)
            n = rnd.randrange(0, min(3 * MiB, view.size - a) + 1)
            assert view.read(a, n) == whole[a:a + n], (a, n)
        assert view.read(view.size - 512, 512) == view.footer
        with pytest.raises(ValueError):
            view.read(view.size - 10, 11)
    finally:
        reader.close()


def test_footer_is_a_pure_function():
    a = export_footer(6 * MiB, UID, 1_800_000_000)
    assert a == export_footer(6 * MiB, uuid.UUID(UID).bytes, 1_800_000_000)
    assert a != export_footer(6 * MiB, UID, 1_800_000_001)


def test_page_ranges_cover_every_nonzero_byte(dynamic_vhd):
    reader = open_disk(dynamic_vhd)
    try:
        view = FixedVhdView(reader, unique_id=UID, timestamp=0)
        pages = view.page_ranges()
        whole = view.read(0, view.size)
    finally:
        reader.close()
    assert pages[-1][1] == view.size - 1  # the footer's page is listed
    covered = bytearray(len(whole))
    for a, b in pages:
        assert a % SECTOR == 0 and (b + 1) % SECTOR == 0 and a <= b
        covered[a:b + 1] = b"\1" * (b + 1 - a)
    assert all(c for c, byte in zip(covered, whole, strict=True) if byte)
    # sparse: the 6 MiB disk's pages cover its 3 allocated 2 MiB blocks at most, not all of it
    assert sum(b + 1 - a for a, b in pages) < view.size
    for (_a0, b0), (a1, _b1) in zip(pages, pages[1:], strict=False):
        assert a1 > b0 + 1  # merged: no touching neighbours


def test_a_disk_not_in_whole_sectors_is_refused(tmp_path):
    p = tmp_path / "odd.raw"
    p.write_bytes(b"\x01" * 1000)
    reader = open_disk(str(p), source_format="raw")
    try:
        with pytest.raises(Exception, match="512-byte sectors"):
            FixedVhdView(reader, unique_id=UID, timestamp=0)
    finally:
        reader.close()
