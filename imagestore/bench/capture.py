"""``bench capture``: capture and re-capture vs ``qemu-img convert`` and ``cp``; then disk
creation (:mod:`.disks`) and format conversion (:mod:`.conversions`) on the same image."""

from __future__ import annotations

import os
from collections.abc import Callable

from .cache import warm
from .conversions import conversion_rows
from .disks import disk_creation_rows
from .images import build_images, changed_copy
from .peers import found_peers, peer_rows
from .report import Goal, pair
from .settings import Settings
from .stores import ingest_file
from .timing import interleaved
from .tools import cp_sparse, fsync_path, rm, run, scratch
from .workspace import Workspace


def bench_capture(s: Settings) -> list[dict]:
    """Capture, re-capture, disk creation and conversion rows, on one generated (or the
    user's) image; once per cache mode (``--cache both``: cold, then warm); with
    ``s.peers`` also borg / restic where installed (:mod:`.peers`)."""
    rows: list[dict] = []
    asked = s.cache
    have: list[str] = []
    if s.peers:
        have, skipped = found_peers()
        s.notes.append(f"peers: {', '.join(have) or 'none'}"
                       + (f"; skipped (not installed): {', '.join(skipped)}" if skipped else ""))
    if s.only == () and not have:
        return rows  # nothing asked for can run: no image is built
    with scratch(s, "capture-") as d:
        w = Workspace.at(s, d, build_images(s, d))
        v2 = None
        if s.peers:
            if have:
                v2 = os.path.join(d, "image-v2.raw")
                changed_copy(s, d, w.img.raw, v2, max(1 << 20, w.img.allocated // 50),
                             ext4_source=w.img.source_dir)
        try:
            for mode in s.modes():
                s.cache = mode
                if s.wants("capture") or s.wants("disks"):
                    rows += capture_rows(w)  # disk creation needs its stores
                if s.wants("disks"):
                    rows += disk_creation_rows(w)
                if s.wants("conversions"):
                    rows += conversion_rows(w)
                if s.peers:
                    rows += peer_rows(w, v2)[0]
        finally:
            s.cache = asked
    return rows


def capture_rows(w: Workspace) -> list[dict]:
    """Capture from raw, VHD, VHDX and a fully allocated raw; re-capture (warm). Leaves the
    image captured in both stores (``w.digest``)."""
    s, img, cache, th = w.s, w.img, w.s.cache, w.s.threads
    nb = img.allocated
    rows: list[dict] = []

    def ing(root: str, path: str) -> Callable[[], object]:
        return lambda: ingest_file(root, path, th, fresh=False)

    # 1. capture from raw vs qemu-img convert -O raw vs cp --sparse=always; and the same
    # capture into an uncompressed store, to show what zstd costs
    s.log("capture from raw")
    t_ing, t_none, t_q, t_cp = interleaved(s, [
        (ing(w.store, img.raw), w.fresh(w.store, img.raw)),
        (ing(w.store_none, img.raw), w.fresh(w.store_none, img.raw, compression="none")),
        (w.qemu(img.raw, "raw", "raw"), w.drop(img.raw)),
        (lambda: cp_sparse(img.raw, w.out), w.drop(img.raw)),
    ])
    rows += pair("capture raw -> store (ingest)", t_ing, nb, [
        ("qemu-img convert -O raw", "qemu-img", t_q),
        ("cp --sparse=always", "cp", t_cp),
    ], target=Goal.AT_LEAST_AS_FAST, cache=cache)
    rows += pair("capture raw -> store, --compression none", t_none, nb, [
        ("qemu-img convert -O raw", "qemu-img", t_q),
    ], cache=cache)

    # 2. capture from dynamic VHD and VHDX vs qemu-img convert to raw
    s.log("capture from dynamic VHD and VHDX")
    t_vhd, t_vhdx, t_qvhd, t_qvhdx = interleaved(s, [
        (ing(w.store, img.vhd), w.fresh(w.store, img.vhd)),
        (ing(w.store, img.vhdx), w.fresh(w.store, img.vhdx)),
        (w.qemu(img.vhd, "vpc", "raw"), w.drop(img.vhd)),
        (w.qemu(img.vhdx, "vhdx", "raw"), w.drop(img.vhdx)),
    ])
    rows += pair("capture dynamic VHD -> store (ingest)", t_vhd, nb, [
        ("qemu-img convert -f vpc -O raw", "qemu-img", t_qvhd),
    ], target=Goal.A_FIFTH_FASTER, cache=cache)
    rows += pair("capture dynamic VHDX -> store (ingest)", t_vhdx, nb, [
        ("qemu-img convert -f vhdx -O raw", "qemu-img", t_qvhdx),
    ], cache=cache)

    # 3. a fully allocated raw (every zero block on disk, as a dd of a real disk): the
    # zero scan sees every byte of the virtual size
    full = os.path.join(w.dir, "full.raw")
    run(["cp", "--sparse=never", img.raw, full])
    fsync_path(full)
    s.log("capture from a fully allocated raw")
    t_f, t_qf = interleaved(s, [
        (ing(w.store, full), w.fresh(w.store, full)),
        (w.qemu(full, "raw", "raw"), w.drop(full)),
    ])
    rm(w.out, full)
    rows += pair("capture fully-allocated raw -> store (ingest)", t_f, img.size, [
        ("qemu-img convert -O raw", "qemu-img", t_qf),
    ], cache=cache)

    # 4. re-capture of the unchanged image: every chunk already stored, warm cache
    s.log("re-capture, warm")
    w.digest = ingest_file(w.store, img.raw, th).digest
    res_none = ingest_file(w.store_none, img.raw, th, fresh=False)
    assert res_none.digest == w.digest
    warm(img.raw)
    t_re, t_rd = interleaved(s, [(ing(w.store, img.raw), None), (lambda: warm(img.raw), None)])
    rows += pair("re-capture unchanged raw (all chunks stored)", t_re, nb, [
        ("read of the allocated extents (pread 8 MiB)", "read", t_rd),
    ], cache="warm")
    rows[-2]["target"] = Goal.RECAPTURE
    return rows
