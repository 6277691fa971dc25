"""The qcow2 reader against qemu-img and libqcow (pyqcow), two independent readers.

Images are made here by ``qemu-img create/convert`` and ``qemu-io``: versions 2 (compat=0.10)
and 3, zlib and zstd compression, zero clusters (``write -z``), small and large clusters, a
backing chain (raw and qcow2 parents). Each must capture to the same manifest digest as its
raw rendering by ``qemu-img convert -O raw``; its extents must be exactly where qemu says data
is (``qemu-img map``), and libqcow must read the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from imagestore.errors import BadImage
from imagestore.formats import open_disk
from imagestore.store.cas import BlobStore
from imagestore.store.ingest import ingest
from imagestore.store.layout import CasConfig
from tests.helpers import need

MiB = 1 << 20
SIZE = 24 * MiB


def qemu(*args: str) -> str:
    need(args[0])
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


def pattern_raw(path: Path, size: int = SIZE) -> Path:
    """A raw disk with data at odd places (unaligned edges, a run across L2 boundaries of
    512-byte clusters, the last sector), compressible and random parts."""
    rnd = np.random.default_rng(5)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in ((0, 4096), (MiB - 700, 1400), (3 * MiB + 512, 200 * 1024),
                       (9 * MiB, 3 * MiB), (size - 512, 512)):
            f.seek(off)
            f.write(rnd.integers(0, 256, n, dtype=np.uint8).tobytes())
        f.seek(15 * MiB)
        f.write(b"imagestore qcow2 " * 40000)
    return path


def our_raw(path: str, **kw) -> bytes:
    """The disk as our reader gives it, rebuilt from its extents (zeros elsewhere)."""
    r = open_disk(path, **kw)
    try:
        out = np.zeros(r.virtual_size, dtype=np.uint8)
        for off, n in r.extents():
            out[off : off + n] = np.frombuffer(r.read(off, n), dtype=np.uint8)
        return out.tobytes()
    finally:
        r.close()


def qemu_raw(path: Path, tmp: Path) -> bytes:
    out = tmp / (path.name + ".ref.raw")
    qemu("qemu-img", "convert", "-O", "raw", str(path), str(out))
    return out.read_bytes()


def qemu_data_ranges(path: Path) -> list[tuple[int, int]]:
    """Where qemu-img map says the image (with its chain) has data."""
    m = json.loads(qemu("qemu-img", "map", "--output=json", str(path)))
    out: list[tuple[int, int]] = []
    for e in m:
        if e["data"]:
            if out and out[-1][0] + out[-1][1] == e["start"]:
                out[-1] = (out[-1][0], out[-1][1] + e["length"])
            else:
                out.append((e["start"], e["length"]))
    return out


def pyqcow_bytes(path: Path) -> bytes:
    import pyqcow

    f = pyqcow.file()
    f.open(str(path))
    try:
        return f.read_buffer_at_offset(f.get_media_size(), 0)
    finally:
        f.close()


def digest_of(store: BlobStore, path: str, **kw) -> str:
    r = open_disk(path, **kw)
    try:
        return ingest(store, r).digest
    finally:
        r.close()


def _variants(tmp: Path) -> dict[str, Path]:
    raw = pattern_raw(tmp / "src.raw")
    out: dict[str, Path] = {}

    def conv(name: str, *opts: str) -> None:
        p = tmp / f"{name}.qcow2"
        qemu("qemu-img", "convert", "-f", "raw", "-O", "qcow2", *opts, str(raw), str(p))
        out[name] = p

    conv("v2", "-o", "compat=0.10")
    conv("v3", "-o", "compat=1.1")
    conv("v3-512", "-o", "compat=1.1,cluster_size=512")
    conv("v3-2m", "-o", "compat=1.1,cluster_size=2M")
    conv("zlib", "-c", "-o", "compat=1.1")
    conv("zlib-v2", "-c", "-o", "compat=0.10,cluster_size=4096")
    conv("zstd", "-c", "-o", "compat=1.1,compression_type=zstd")
    # zero clusters (v3 flag) over data, and a write that makes a zero cluster in a hole
    z = tmp / "zero.qcow2"
    qemu("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(z))
    qemu("qemu-io", "-f", "qcow2", "-c", "write -z 9M 1M", "-c", "write -z 20M 128k",
         "-c", "write -P 0x5a 21M 64k", str(z))
    out["zero"] = z
    return out


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    return _variants(tmp_path_factory.mktemp("qcow2"))


#: where libqcow 20260703 is no oracle: it refuses zstd images (incompatible feature bit 3),
#: and reads some zlib-compressed 64 KiB clusters as zeros that qemu-img reads as data (its
#: 4 KiB-cluster zlib image it reads right)
LIBQCOW_BLIND = {"zstd": "refuses", "zlib": "zeros"}


@pytest.mark.parametrize("name", ["v2", "v3", "v3-512", "v3-2m", "zlib", "zlib-v2", "zstd",
                                  "zero"])
def test_bytes_and_extents_match_qemu_and_libqcow(variants, tmp_path, name):
    path = variants[name]
    ref = qemu_raw(path, tmp_path)
    ours = our_raw(str(path))
    assert hashlib.sha256(ours).digest() == hashlib.sha256(ref).digest()
    if name not in LIBQCOW_BLIND:
        assert pyqcow_bytes(path) == ref
    elif LIBQCOW_BLIND[name] == "refuses":
        with pytest.raises(OSError, match="unsupported incompatible features"):
            pyqcow_bytes(path)
    else:
        assert pyqcow_bytes(path) != ref  # when libqcow learns it, this test says so
    r = open_disk(str(path))
    try:
        assert r.format == "qcow2" and r.virtual_size == SIZE
        ext = list(r.extents())
    finally:
        r.close()
    assert ext == qemu_data_ranges(path)


def test_compression_type_is_read_from_the_header(variants):
    r = open_disk(str(variants["zstd"]))
    try:
        assert r.header.compression_type == 1
    finally:
        r.close()
    assert "zstd" in qemu("qemu-img", "info", str(variants["zstd"]))


def test_capture_gives_the_digest_of_the_raw_rendering(variants, tmp_path):
    store = BlobStore.create(str(tmp_path / "store"), CasConfig(chunk_size=256 * 1024))
    try:
        ref = tmp_path / "ref.raw"
        digests = {}
        for name in ("v2", "zstd", "zero"):
            p = variants[name]
            qemu("qemu-img", "convert", "-O", "raw", str(p), str(ref))
            want = digest_of(store, str(ref), source_format="raw")
            digests[name] = digest_of(store, str(p))
            assert digests[name] == want, name
            ref.unlink()
        assert digests["v2"] == digests["zstd"] != digests["zero"]
    finally:
        store.close()


def test_backing_chain_raw_and_qcow2(tmp_path):
    pattern_raw(tmp_path / "base.raw")
    mid = tmp_path / "mid.qcow2"
    top = tmp_path / "top.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(mid))
    qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 1M 256k", "-c", "write -z 9M 64k",
         str(mid))
    qemu("qemu-img", "create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", str(top),
         str(SIZE + 2 * MiB))  # larger than its backing: the tail reads as zeros
    qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 4k", "-c", "write -P 0x33 25M 4k",
         str(top))
    ref = qemu_raw(top, tmp_path)
    r = open_disk(str(top))
    try:
        assert r.format == "qcow2-differencing"
        assert r.parent.format == "qcow2-differencing" and r.parent.parent.format == "raw"
        assert list(r.extents()) == qemu_data_ranges(top)
    finally:
        r.close()
    assert our_raw(str(top)) == ref


def test_raw_backing_is_not_probed(tmp_path):
    """A backing file named raw is taken as raw even when its bytes look like a qcow2 (a
    guest that wrote an image onto its disk must not make us open another file)."""
    inner = tmp_path / "inner.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", str(inner), "1M")
    base = tmp_path / "base.raw"
    data = inner.read_bytes()
    base.write_bytes(data + bytes(-len(data) % (1 << 20)))
    top = tmp_path / "top.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(top))
    assert our_raw(str(top)) == qemu_raw(top, tmp_path)
    r = open_disk(str(top))
    try:
        assert r.parent.format == "raw"
    finally:
        r.close()


def test_escaping_backing_path_is_refused(tmp_path):
    outside = tmp_path / "outside"
    inside = tmp_path / "vm"
    outside.mkdir()
    inside.mkdir()
    pattern_raw(outside / "secret.raw", 4 * MiB)
    top = inside / "top.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-b", "../outside/secret.raw", "-F", "raw",
         str(top))
    with pytest.raises(BadImage, match="resolves outside the child's directory"):
        open_disk(str(top))
    abs_top = inside / "abs.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-b", str(outside / "secret.raw"), "-F", "raw",
         str(abs_top))
    with pytest.raises(BadImage, match="outside the child's directory"):
        open_disk(str(abs_top))
    # allowed explicitly, as for VHD/VHDX parents
    assert our_raw(str(top), allow_parent_dir=str(outside)) == qemu_raw(top, tmp_path)


def test_backing_loop_is_refused(tmp_path):
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", str(b), "1M")
    qemu("qemu-img", "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", str(a))
    qemu("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", str(b))
    with pytest.raises(BadImage, match="loops back"):
        open_disk(str(a))


def test_refused_features(tmp_path):
    # encryption: crypt_method 1 (AES) and 2 (LUKS) set in a real image's header (making a
    # LUKS image with qemu-img takes seconds of key stretching)
    plain = tmp_path / "plain.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", str(plain), "1M")
    for method, name in ((1, "AES"), (2, "LUKS")):
        b = bytearray(plain.read_bytes())
        b[35] = method  # crypt_method: big-endian u32 at 32
        enc = tmp_path / f"enc{method}.qcow2"
        enc.write_bytes(b)
        with pytest.raises(BadImage, match=f"encrypted qcow2 \\({name}\\)"):
            open_disk(str(enc))
    df = tmp_path / "df.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-o", f"data_file={tmp_path / 'df.data'}",
         str(df), "1M")
    with pytest.raises(BadImage, match="external data file"):
        open_disk(str(df))


def test_extended_l2_subclusters(tmp_path):
    """extended_l2=on: 32 subclusters per cluster, each allocated, zero or unallocated (read
    from the backing file); compressed clusters ignore the bitmap."""
    base = pattern_raw(tmp_path / "base.raw")
    x = tmp_path / "x.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-o", "extended_l2=on", str(x), str(SIZE))
    qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4k", "-c", "write -P 0x22 70k 3k",
         "-c", "write -z 200k 2k", "-c", "write -P 0x33 1M 64k", "-c", "write -z 1028k 8k",
         str(x))
    y = tmp_path / "y.qcow2"
    qemu("qemu-img", "create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", "-b",
         "base.raw", "-F", "raw", str(y))
    qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x44 4k 4k", "-c", "write -z 9M 8k",
         "-c", "write -P 0x55 6M 130k", str(y))
    zc = tmp_path / "zc.qcow2"
    qemu("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "extended_l2=on", str(base), str(zc))
    for p in (x, y, zc):
        assert our_raw(str(p)) == qemu_raw(p, tmp_path), p.name
        r = open_disk(str(p))
        try:
            assert r.mapping.ext and list(r.extents()) == qemu_data_ranges(p), p.name
        finally:
            r.close()


def test_dirty_bit_is_accepted_corrupt_bit_refused(variants, tmp_path):
    src = variants["v3"].read_bytes()
    ref = qemu_raw(variants["v3"], tmp_path)
    for bit, ok in ((0, True), (1, False)):
        b = bytearray(src)
        b[79] |= 1 << bit  # incompatible_features, low byte (big-endian u64 at 72)
        p = tmp_path / f"bit{bit}.qcow2"
        p.write_bytes(b)
        if ok:
            assert our_raw(str(p)) == ref
        else:
            with pytest.raises(BadImage, match="flagged this image as corrupt"):
                open_disk(str(p))


def test_cli_captures_a_qcow2(variants, tmp_path):
    from tests.helpers import run_imagestore

    p = run_imagestore("--store", str(tmp_path / "s"), "store", "ingest",
                       str(variants["zstd"]))
    out = json.loads(p.stdout)
    assert out["sourceFormat"] == "qcow2" and out["virtualSize"] == SIZE
