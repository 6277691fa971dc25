"""Disk creation from the store vs ``qemu-img convert`` from the image (part of
``bench capture``)."""

from __future__ import annotations

from collections.abc import Callable

from .report import Goal, pair
from .stores import materialize_file, packs_dir
from .timing import interleaved
from .tools import rm
from .workspace import Workspace


def disk_creation_rows(w: Workspace) -> list[dict]:
    """store -> raw / VHDX vs qemu-img convert from the raw image, and from the uncompressed
    store (what decompression costs). Needs ``w.digest`` in both stores; removes the
    uncompressed store afterwards."""
    s, img, cache, th = w.s, w.img, w.s.cache, w.s.threads
    assert w.digest is not None
    digest = w.digest
    nb = img.allocated
    rows: list[dict] = []
    s.log("create disks")
    packs = packs_dir(w.store)
    packs_none = packs_dir(w.store_none)

    def mat(root: str, fmt: str) -> Callable[[], object]:
        return lambda: materialize_file(root, digest, w.out, fmt, th)

    t_mr, t_mx, t_mn, t_qr, t_qx = interleaved(s, [
        (mat(w.store, "raw"), w.drop(packs)),
        (mat(w.store, "vhdx"), w.drop(packs)),
        (mat(w.store_none, "raw"), w.drop(packs_none)),
        (w.qemu(img.raw, "raw", "raw"), w.drop(img.raw)),
        (w.qemu(img.raw, "raw", "vhdx"), w.drop(img.raw)),
    ])
    rm(w.out, w.store_none)
    rows += pair("create disk store -> raw (materialize)", t_mr, nb, [
        ("qemu-img convert -f raw -O raw (from the raw image)", "qemu-img", t_qr),
    ], target=Goal.RAW_DISK, cache=cache)
    rows += pair("create disk store -> vhdx (materialize)", t_mx, nb, [
        ("qemu-img convert -f raw -O vhdx (from the raw image)", "qemu-img", t_qx),
    ], target=Goal.A_FIFTH_FASTER, cache=cache)
    rows += pair("create disk store -> raw, store with --compression none", t_mn, nb, [
        ("qemu-img convert -f raw -O raw (from the raw image)", "qemu-img", t_qr),
    ], cache=cache)
    return rows
