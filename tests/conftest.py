"""Shared fixtures: a fresh store, a CLI runner, tools, and generated images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from imagestore.cli.main import cli


def need(tool: str) -> str:
    """A tool the suite requires; .ci/run installs it, so a missing one fails loudly."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"required tool '{tool}' is not installed (run .ci/run or see README)")
    return path


@pytest.fixture
def qemu_tools() -> None:
    need("qemu-img")
    need("qemu-io")


class Cli:
    def __init__(self, store: str) -> None:
        self.store = store
        self.runner = CliRunner()

    def __call__(self, *args: str, store: bool = True):
        argv = (["--store", self.store] if store else []) + [str(a) for a in args]
        return self.runner.invoke(cli, argv, catch_exceptions=False)

    def json(self, *args: str):
        r = self(*args)
        assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
        return json.loads(r.stdout)


@pytest.fixture
def store_dir(tmp_path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def run(store_dir) -> Cli:
    return Cli(store_dir)


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


@pytest.fixture(scope="session")
def ext4_image(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("ext4")
    return make_ext4(str(d / "v1.raw"), "256M", "/usr/share/doc")


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
