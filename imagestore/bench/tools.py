"""External tools (qemu-img, cp, dd …), fsync and scratch space."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .settings import BenchError, Settings


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a tool; BenchError (one line) when it is missing or fails."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise BenchError(f"{cmd[0]}: not installed (install qemu-utils and e2fsprogs)") from None
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[:400]}")
    return p


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files(path: str) -> Iterator[str]:
    """``path`` if it is a file, else every regular file under it (no symlinks)."""
    if os.path.isdir(path):
        for d, _dirs, names in os.walk(path):
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    yield p
    elif os.path.isfile(path):
        yield path


def rm(*paths: str) -> None:
    """Remove files or directory trees; missing ones are fine."""
    for p in paths:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


@contextmanager
def scratch(s: Settings, prefix: str) -> Iterator[str]:
    """A fresh directory under the run's workdir, removed afterwards."""
    os.makedirs(s.workdir, exist_ok=True)
    d = tempfile.mkdtemp(prefix=prefix, dir=s.workdir)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def qemu_convert(src: str, dst: str, src_fmt: str, dst_fmt: str, opts: str | None = None) -> None:
    """``qemu-img convert -f SRC_FMT -O DST_FMT [-o OPTS]``, output fsynced."""
    cmd = ["qemu-img", "convert", "-f", src_fmt, "-O", dst_fmt]
    if opts:
        cmd += ["-o", opts]
    run(cmd + [src, dst])
    fsync_path(dst)


def cp_sparse(src: str, dst: str) -> None:
    """``cp --sparse=always``, output fsynced."""
    run(["cp", "--sparse=always", src, dst])
    fsync_path(dst)


def cp_files(paths: list[str], dst_dir: str) -> None:
    """``cp -r FILES DIR``, then fsync every copied file and the directory."""
    run(["cp", "-r", *paths, dst_dir])
    for p in files(dst_dir):
        fsync_path(p)
    fsync_path(dst_dir)


def du_bytes(path: str) -> int:
    """``du -sb``; -1 when it cannot tell."""
    try:
        p = subprocess.run(["du", "-sb", path], capture_output=True, text=True, timeout=120)
        return int(p.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return -1
