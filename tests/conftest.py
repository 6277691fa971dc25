"""Shared fixtures: a fresh store, a CLI runner, tools, and generated images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from imagestore.cli.main import cli

from .helpers import MiB, make_ext4, need, umount


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

    def definition(self, *gallery_flags: str) -> None:
        """Gallery ``g`` (created with ``gallery_flags``) holding Linux definition ``d``."""
        self.json("sig", "create", "-r", "g", *gallery_flags)
        self.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f",
                  "O", "-s", "S", "--os-type", "Linux")


@pytest.fixture
def store_dir(tmp_path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def run(store_dir) -> Cli:
    return Cli(store_dir)


@pytest.fixture(scope="session")
def ext4_image(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("ext4")
    return make_ext4(str(d / "v1.raw"), "256M", "/usr/share/doc")


@pytest.fixture(scope="module")
def xfs(tmp_path_factory) -> str:
    """A mounted XFS filesystem with reflink support; unmounted at the end of the module."""
    mkfs = need("mkfs.xfs")
    need("filefrag")
    if os.geteuid() != 0:
        pytest.skip(f"mounting an XFS loop image needs root; running as uid {os.geteuid()}")
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) on this machine: cannot loop-mount an XFS image")
    if not os.path.exists("/dev/loop-control") and not os.path.exists("/dev/loop0"):
        pytest.skip("no loop devices (/dev/loop-control, /dev/loop0): cannot mount an image")
    base = tmp_path_factory.mktemp("xfs")
    img = str(base / "x.img")
    mnt = str(base / "mnt")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(512 * MiB)
    subprocess.run([mkfs, "-q", "-m", "reflink=1", img], check=True)
    r = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"loop-mounting an XFS image is impossible here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        umount(mnt)


@pytest.fixture
def small_fs(tmp_path) -> str:
    """A mounted 40 MiB ext4 filesystem (1 KiB blocks, as mkfs.ext4 makes them on small
    disks, where SQLite's WAL index file has holes); unmounted afterwards."""
    need("mkfs.ext4")
    if os.geteuid() != 0:
        pytest.skip(f"mounting a loop image needs root; running as uid {os.geteuid()}")
    if not os.path.exists("/dev/loop-control") and not os.path.exists("/dev/loop0"):
        pytest.skip("no loop devices (/dev/loop-control, /dev/loop0): cannot mount an image")
    img = str(tmp_path / "small.img")
    mnt = str(tmp_path / "small")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(40 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "1024", "-m", "0", img], check=True)
    r = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"loop-mounting an ext4 image is impossible here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        umount(mnt)


# -- Azure Blob Storage (Azurite) -------------------------------------------------------------


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """A running Azurite blob service (fails in CI when it is not installed, else skips)."""
    from .azurite import start_azurite

    az = start_azurite(str(tmp_path_factory.mktemp("azurite")))
    try:
        yield az
    finally:
        az.stop()


@pytest.fixture
def blob_proxy(azurite):
    """A byte-counting TCP relay in front of Azurite."""
    from .azurite import CountingProxy

    p = CountingProxy(azurite.port)
    try:
        yield p
    finally:
        p.close()


# -- PostgreSQL (gallery metadata on a database server) --------------------------------------


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (tests/pg.py); skips outside CI when
    PostgreSQL is not installed, fails in CI."""
    from . import pg

    reason = pg.missing_reason()
    if reason is not None:
        (pytest.fail if pg.in_ci() else pytest.skip)(reason)
    cluster = pg.Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The URL of a fresh, migrated gallery database on the session's server."""
    return pg_cluster.new_database()
