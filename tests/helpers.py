"""Helpers shared by the whole suite (fixtures live in conftest.py)."""

from __future__ import annotations

import json  # noqa: F401
import os
import random
import select
import shutil
import subprocess
import sys
import time
from collections import Counter

import pytest

from imagestore.store.packs import scan_pack

MiB = 1 << 20


def need(tool: str) -> str:
    """A tool the suite requires; .ci/run installs it, so a missing one fails loudly."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"required tool '{tool}' is not installed (run .ci/run or see README)")
    return path


class gallery_db:  # noqa: N801 - used like a function: ``with gallery_db(store) as con:``
    """The store's gallery database (its gallery.sqlite, or ``$IMAGESTORE_DATABASE_URL``)
    through the backend seam, statements autocommitted; closed at the end of the block."""

    def __init__(self, store: str) -> None:
        from imagestore.gallery import backends

        self.con = backends.connect(backends.locate(os.path.join(store, "gallery.sqlite")))

    def __enter__(self):  # noqa: ANN204
        return self.con

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.con.close()


def run_imagestore(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess."""
    p = subprocess.run(
        [sys.executable, "-m", "imagestore.cli.main", *args],
        capture_output=True, text=True, **kw,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"imagestore {args} failed {p.returncode}: {p.stderr}")
    return p


def dir_bytes(path: str) -> int:
    """Bytes allocated by the files under ``path`` (sparse files count what they hold)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def kill_when_grown(proc: subprocess.Popen, watch: str, grow: int, timeout: float = 60.0) -> bool:
    """SIGKILL ``proc`` once the files under ``watch`` have grown by ``grow`` bytes: a kill in
    the middle of the work, however fast the machine. Returns False if it finished first."""
    import time

    start = dir_bytes(watch)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if dir_bytes(watch) - start >= grow:
            proc.kill()
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


def make_ext4(path: str, size: str = "256M", src: str = "/usr/share/doc") -> str:
    """A realistic image: an ext4 filesystem populated from system files."""
    need("mkfs.ext4")
    subprocess.run(["truncate", "-s", size, path], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", src, path], check=True)
    return path


def store_tree_snapshot(root: str) -> dict[str, object]:
    """Every file under root: (size, mtime) for data files, the logical content for SQLite
    databases (a WAL checkpoint moves pages without changing content). To show that a failed
    command changed nothing."""
    import hashlib
    import sqlite3

    out: dict[str, object] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if f.endswith(("-shm", "-wal", "lock")):
                continue
            if f.endswith(".sqlite"):
                con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
                dump = "\n".join(con.iterdump())
                con.close()
                out[os.path.relpath(p, root)] = hashlib.sha256(dump.encode()).hexdigest()
                continue
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def fails(r, code: int, *needles: str) -> None:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in err, (n, err)


def pack_records(store) -> Counter:
    """Chunk id -> number of well-formed records for it in all of the store's pack files."""
    seen: Counter = Counter()
    for name in os.listdir(store.packs_dir):
        fd = os.open(os.path.join(store.packs_dir, name), os.O_RDONLY)
        try:
            for _off, _fl, _raw, _stored, rid in scan_pack(fd, os.fstat(fd).st_size):
                seen[rid] += 1
        finally:
            os.close(fd)
    return seen


def make_v2(v1: str, tmp_path) -> str:
    """v1 changed in place with debugfs: a 2 MiB file added, another removed."""
    need("debugfs")
    v2 = str(tmp_path / "v2.raw")
    subprocess.run(["cp", "--sparse=always", v1, v2], check=True)
    payload = tmp_path / "new.bin"
    payload.write_bytes(random.Random(1).randbytes(2 * MiB))
    listing = subprocess.run(["debugfs", "-R", "ls -p /", v1], capture_output=True, text=True).stdout
    victim = next(line.split("/")[5] for line in listing.splitlines()
                  if line.count("/") >= 6 and line.split("/")[5] not in (".", "..", "lost+found"))
    subprocess.run(["debugfs", "-w", "-R", f"write {payload} new.bin", v2], check=True, capture_output=True)
    subprocess.run(["debugfs", "-w", "-R", f"rm {victim}", v2], capture_output=True)
    return v2


def make_random(path: str, mib: int, seed: int) -> str:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rnd.randbytes(MiB))
    return path


def umount(mnt: str) -> None:
    for _ in range(10):
        if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
            return
        time.sleep(0.3)
    subprocess.run(["umount", "-l", mnt], capture_output=True)


def shared_extents(path: str) -> tuple[int, int]:
    """(extents, extents flagged shared) as ``filefrag -v`` reports them."""
    out = subprocess.run(["filefrag", "-v", path], capture_output=True, text=True,
                         check=True).stdout
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit() and ":" in line]
    return len(rows), sum("shared" in line for line in rows)


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def run_with_tty_stderr(args: list[str]) -> tuple[int, str, str]:
    master, slave = os.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "imagestore.cli.main", *args],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif p.poll() is not None:
            break
    out = p.stdout.read().decode()
    p.wait()
    os.close(master)
    return p.returncode, out, b"".join(chunks).decode(errors="replace")


def damage_index(path: str, how: str) -> None:
    """Damage a chunk index the way disks and people do: ``header`` zeroes the b-tree page
    header of the chunks table's root page, ``truncate`` cuts the file to half its pages,
    ``delete`` removes it (with its -wal/-shm)."""
    import sqlite3

    for suffix in ("-wal", "-shm"):
        assert not os.path.exists(path + suffix), f"{path}{suffix}: still open somewhere"
    if how == "delete":
        os.unlink(path)
        return
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='chunks'").fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        if how == "header":
            f.seek((root - 1) * page)
            f.write(bytes(12))
        elif how == "truncate":
            f.truncate(page * (pages // 2))
        else:
            raise ValueError(how)


def fill_disk(directory: str, leave: int = 0) -> str:
    """Fill the filesystem of ``directory`` to the last block this user may allocate (but
    ``leave`` bytes), with a file there; returns its path (remove it to give the space
    back)."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (MiB, 64 << 10, 4096, 1024, 512):
            block = bytes(size)
            try:
                while os.write(fd, block):
                    pass
            except OSError:
                pass
        try:
            os.fsync(fd)
        except OSError:
            pass
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
            os.fsync(fd)
    finally:
        os.close(fd)
    return path
