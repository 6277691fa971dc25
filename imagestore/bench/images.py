"""Test images: an ext4 file system built from real files (raw, dynamic VHD, dynamic VHDX),
generated data of a chosen compressibility, the user's own image, and v2 = v1 changed in place."""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass

import numpy as np

from ..formats import open_disk
from .cache import allocated_bytes, data_extents
from .settings import MiB, Settings
from .tools import du_bytes, files, fsync_path, rm, run

#: where realistic file content comes from (the first that fits the image is used)
SOURCE_CANDIDATES = (
    "/usr/share",
    "/usr/lib/python3",
    "/usr/share/doc",
    "/usr/share/locale",
    "/usr/share/perl",
    "/usr/share/zoneinfo",
    "/usr/share/misc",
)

#: qemu-img's name for each of our source formats' family
QEMU_FORMAT = {"raw": "raw", "vhd": "vpc", "vhdx": "vhdx"}


def pick_source(size: int, workdir: str) -> tuple[str, int]:
    """A directory of real files whose content fills an ext4 image of ``size`` to about
    70% at most. Falls back to a staged copy of part of /usr/share."""
    budget = int(size * 0.7)
    best: tuple[str, int] | None = None
    for cand in SOURCE_CANDIDATES:
        if not os.path.isdir(cand):
            continue
        n = du_bytes(cand)
        if 0 < n <= budget and (best is None or n > best[1]):
            best = (cand, n)
    if best is not None and best[1] >= budget // 3:
        return best
    stage = os.path.join(workdir, "source")
    rm(stage)
    total = 0
    for p in files("/usr/share"):
        try:
            n = os.path.getsize(p)
        except OSError:
            continue
        if n == 0 or total + n > budget:
            continue
        rel = os.path.relpath(p, "/usr/share")
        dst = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            shutil.copyfile(p, dst)
        except OSError:
            continue
        total += n
        if total >= budget * 0.95:
            break
    return stage, total


def make_ext4(path: str, size: int, source: str) -> None:
    rm(path)
    run(["truncate", "-s", str(size), path])
    run(["mkfs.ext4", "-q", "-F", "-d", source, path])



@dataclass
class Images:
    raw: str
    vhd: str
    vhdx: str
    size: int  # virtual size
    allocated: int  # allocated bytes of the raw file (SEEK_DATA)
    source: str  # what made it
    source_dir: str | None = None  # the directory of files the ext4 image was made from


def build_images(s: Settings, d: str) -> Images:
    """The realistic image as raw, dynamic VHD and dynamic VHDX."""
    raw = os.path.join(d, "image.raw")
    if s.image:
        fmt = open_disk(s.image).format
        s.log(f"using {s.image} ({fmt})")
        if fmt == "raw":
            os.link(s.image, raw) if same_fs(s.image, d) else shutil.copyfile(s.image, raw)
        else:
            qfmt = QEMU_FORMAT[fmt.split("-")[0]]
            run(["qemu-img", "convert", "-f", qfmt, "-O", "raw", s.image, raw])
        source = s.image
        src = None
    else:
        src, n = pick_source(s.size, d)
        s.log(f"building a {s.size >> 20} MiB ext4 image from {src} ({n >> 20} MiB)")
        make_ext4(raw, s.size, src)
        source = f"mkfs.ext4 -d {src} ({n >> 20} MiB of files)"
    size = os.path.getsize(raw)
    vhd = os.path.join(d, "image.vhd")
    vhdx = os.path.join(d, "image.vhdx")
    run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, vhd])
    run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", raw, vhdx])
    for p in (raw, vhd, vhdx):
        fsync_path(p)
    return Images(raw, vhd, vhdx, size, allocated_bytes(raw), source, src)


def same_fs(a: str, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev



def sample_data(s: Settings, n: int) -> bytes:
    """``n`` bytes of realistic content: the user's image, else files from /usr/share."""
    if s.image:
        r = open_disk(s.image)
        try:
            parts, got = [], 0
            for off, k in r.extents():
                k = min(k, n - got)
                parts.append(r.read(off, k))
                got += k
                if got >= n:
                    break
            return b"".join(parts).ljust(n, b"\0")
        finally:
            r.close()
    parts, got = [], 0
    for p in files("/usr/share"):
        try:
            with open(p, "rb") as f:
                b = f.read(n - got)
        except OSError:
            continue
        parts.append(b)
        got += len(b)
        if got >= n:
            break
    return b"".join(parts).ljust(n, b"\0")



def make_synthetic(path: str, size: int, compressibility: float, seed: int = 20261126) -> None:
    """A fully allocated raw file of ``size`` bytes (rounded down to 4 KiB) that zstd shrinks
    by about ``compressibility`` (0 = random, 0.5 ~ 2:1, 0.9 ~ 10:1): every 4 KiB block is
    random bytes followed by a repeated-text filler, so no two chunks are alike and every chunk
    compresses the same."""
    blk = 4096
    k = max(1, blk - int(round(blk * compressibility)))  # random bytes per block
    filler = np.frombuffer((b"imagestore generated filler. " * (blk // 16))[: blk - k], np.uint8)
    rng = np.random.default_rng(seed)
    nblocks = size // blk
    with open(path, "wb") as f:
        done = 0
        while done < nblocks:
            nb = min(2048, nblocks - done)  # 8 MiB at a time
            a = np.empty((nb, blk), np.uint8)
            a[:, :k] = np.frombuffer(rng.bytes(nb * k), np.uint8).reshape(nb, k)
            a[:, k:] = filler
            f.write(a.tobytes())
            done += nb
        f.flush()
        os.fsync(f.fileno())


def raw_copy_of(s: Settings, dst: str) -> None:
    """The user's ``--image`` as a raw file at ``dst`` (a hard link when it is raw already and
    on the same file system: only read, never written)."""
    r = open_disk(s.image)
    fmt = r.format
    r.close()
    s.log(f"using {s.image} ({fmt})")
    if fmt == "raw":
        try:
            os.link(s.image, dst)  # same file system: no copy needed
        except OSError:
            run(["cp", "--sparse=always", s.image, dst])
    else:
        qfmt = QEMU_FORMAT[fmt.split("-")[0]]
        run(["qemu-img", "convert", "-f", qfmt, "-O", "raw", s.image, dst])
    fsync_path(dst)



def debugfs_changes(s: Settings, d: str, source: str, raw: str, budget: int) -> tuple[int, int]:
    """Change files of the ext4 image ``raw`` in place with debugfs: replace files (``rm``
    then ``write`` of new random content of the same size) until ``budget`` bytes changed,
    and remove a few more. Returns (files changed, bytes written)."""
    rnd = random.Random(20261126)
    cands: list[tuple[str, int]] = []
    for p in files(source):
        try:
            n = os.path.getsize(p)
        except OSError:
            continue
        if 16 << 10 <= n <= 4 * MiB:
            cands.append((os.path.relpath(p, source), n))
    cands.sort()
    rnd.shuffle(cands)
    hostdir = os.path.join(d, "new-content")
    os.makedirs(hostdir, exist_ok=True)
    cmds, changed, count = [], 0, 0
    i = 0
    while i < len(cands) and changed < budget:
        rel, n = cands[i]
        i += 1
        if any(c in rel for c in ' "\n\\'):
            continue
        host = os.path.join(hostdir, f"f{count}")
        with open(host, "wb") as f:
            f.write(rnd.randbytes(n))
        cmds += [f"rm /{rel}", f"write {host} /{rel}"]
        changed += n
        count += 1
    for rel, _n in cands[i : i + 5]:  # and delete a few files
        if not any(c in rel for c in ' "\n\\'):
            cmds.append(f"rm /{rel}")
    cmdfile = os.path.join(d, "debugfs.cmds")
    with open(cmdfile, "w") as f:
        f.write("\n".join(cmds) + "\n")
    run(["debugfs", "-w", "-f", cmdfile, raw])
    return count, changed


def scatter_changes(raw: str, budget: int) -> tuple[int, int]:
    """For a user's image that debugfs cannot edit: overwrite random 4-64 KiB pieces of its
    allocated data with random bytes until ``budget`` bytes changed."""
    rnd = random.Random(20261126)
    fd = os.open(raw, os.O_RDWR)
    try:
        ext = [(o, n) for o, n in data_extents(fd, os.fstat(fd).st_size) if n >= 65536]
        changed = count = 0
        while ext and changed < budget:
            o, n = rnd.choice(ext)
            k = rnd.choice((4096, 16384, 65536))
            at = o + rnd.randrange(0, n - k + 1) // 4096 * 4096
            os.pwrite(fd, rnd.randbytes(k), at)
            changed += k
            count += 1
        os.fsync(fd)
    finally:
        os.close(fd)
    return count, changed



def changed_copy(s: Settings, d: str, v1: str, v2: str, budget: int, *,
                 ext4_source: str | None) -> tuple[int, int, str]:
    """v2 = a sparse copy of v1 with about ``budget`` bytes changed in place: files of the
    ext4 image rewritten by debugfs when ``ext4_source`` made it, else random 4-64 KiB
    overwrites. Returns (changes, bytes changed, how)."""
    run(["cp", "--sparse=always", v1, v2])
    if ext4_source is None:
        count, changed = scatter_changes(v2, budget)
        how = "random 4-64 KiB overwrites"
    else:
        count, changed = debugfs_changes(s, d, ext4_source, v2, budget)
        how = "debugfs rm + write"
    fsync_path(v2)
    s.log(f"v2: {count} changes, {changed >> 10} KiB ({how})")
    return count, changed, how
