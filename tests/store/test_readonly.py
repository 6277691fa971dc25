"""A store the user cannot write: every read-only command works, every write fails with exit
10 naming the path, nothing changes. Two ways: a chmod'ed copy read by root without the
capabilities that bypass permissions (as an unprivileged user would, with this machine's
Python), and a read-only bind mount (EROFS). Also: read-only commands never create a store,
and errors name the user's path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import Cli
from tests.helpers import make_random, need, store_tree_snapshot, umount

DROP = "-dac_override,-dac_read_search,-fowner"
GALLERY = ["-r", "g", "-i", "d"]


def as_reader(store: str, *args: str) -> subprocess.CompletedProcess:
    """imagestore as a user who may read but not write the root-owned store."""
    cmd = [sys.executable, "-m", "imagestore.cli.main", "--store", store, *args]
    if os.geteuid() == 0:
        cmd = [need("setpriv"), f"--inh-caps={DROP}", f"--bounding-set={DROP}", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, IMAGESTORE_AUTOSTART_WORKER="0"))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """A store with a gallery, a version, a disk and a region."""
    base = tmp_path_factory.mktemp("ro")
    store = str(base / "store")
    os.environ["IMAGESTORE_AUTOSTART_WORKER"] = "0"
    try:
        run = Cli(store)
        run.json("sig", "create", "-r", "g")
        run.json("sig", "image-definition", "create", *GALLERY, "-p", "P", "-f", "O", "-s", "S",
                 "--os-type", "Linux")
        src = make_random(str(base / "src.raw"), 2, seed=1)
        v = run.json("sig", "image-version", "create", *GALLERY, "-e", "1.0.0",
                     "--os-vhd-uri", src)
        run.json("disk", "create", "-n", "d1", "--gallery-image-reference", v["id"],
                 "--path", str(base / "d1.raw"))
        run.json("region", "create", "west", "--path", str(base / "west"))
        digest = run.json("store", "ingest", src)["digest"]
    finally:
        del os.environ["IMAGESTORE_AUTOSTART_WORKER"]
    return {"base": str(base), "store": store, "src": src, "digest": digest, "version": v["id"]}


def read_commands(made: dict, out: str) -> list[list[str]]:
    return [
        ["store", "stats"], ["store", "verify"], ["store", "verify", "--region", "west"],
        ["store", "materialize", made["digest"], "--path", out],
        ["sig", "list"], ["sig", "show", "-r", "g"], ["sig", "image-definition", "list", "-r", "g"],
        ["sig", "image-version", "list", *GALLERY], ["sig", "image-version", "show", *GALLERY,
                                                      "-e", "1.0.0"],
        ["region", "list"], ["region", "show", "west"], ["disk", "list"], ["disk", "show", "-n", "d1"],
    ]


def check_read_only(store: str, made: dict, tmp_path, reason: str, files: str = "",
                    every: int = 1) -> None:
    """``files``: where the store's files can be inspected (default: the store itself);
    ``every``: run every n-th read command only (the second way needs no full list)."""
    files = files or store
    before = store_tree_snapshot(files)
    for args in read_commands(made, str(tmp_path / "out.raw"))[::every]:
        p = as_reader(store, *args)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        if args[1] == "materialize":
            subprocess.run(["cmp", made["src"], str(tmp_path / "out.raw")], check=True)
    assert json.loads(as_reader(store, "sig", "list").stdout)[0]["name"] == "g"
    other = make_random(str(tmp_path / "other.raw"), 1, seed=2)
    for args, path in (
        (["store", "ingest", other], os.path.join(store, "regions", "local")),
        (["sig", "create", "-r", "g2"], os.path.join(store, "gallery.sqlite")),
        (["store", "gc"], os.path.join(store, "regions", "local", "lock")),
        (["sig", "image-version", "create", *GALLERY, "-e", "1.0.1", "--os-vhd-uri", other],
         store),
    )[::every]:
        p = as_reader(store, *args)
        err = p.stderr.strip()
        assert p.returncode == 10, (args, p.returncode, err)
        assert err.startswith("error: ") and "\n" not in err and path in err, (args, err)
        assert reason in err or "cannot write" in err, (args, err)
    assert store_tree_snapshot(files) == before


def test_chmod_copy(made, tmp_path):
    store = str(tmp_path / "copy")
    shutil.copytree(made["store"], store)
    subprocess.run(["chmod", "-R", "a-w", store], check=True)
    try:
        check_read_only(store, made, tmp_path, "permission denied")
    finally:
        subprocess.run(["chmod", "-R", "u+w", store], check=True)


def test_read_only_mount(made, tmp_path):
    if os.geteuid() != 0:
        pytest.skip(f"a read-only bind mount needs root; running as uid {os.geteuid()}")
    store = str(tmp_path / "ro")
    os.mkdir(store)
    r = subprocess.run(["mount", "--bind", "-o", "ro", made["store"], store],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"a read-only bind mount is impossible here: {r.stderr.strip()}")
    try:
        assert not os.access(store, os.W_OK)
        check_read_only(store, made, tmp_path, "read-only file system", files=made["store"],
                        every=2)
    finally:
        umount(store)


@pytest.mark.parametrize("args", [["sig", "list"], ["store", "stats"], ["store", "verify"],
                                  ["region", "list"], ["disk", "list"], ["store", "gc"]])
def test_read_only_commands_never_create_a_store(tmp_path, args):
    typo = str(tmp_path / "typo")
    r = Cli(typo)(*args)
    assert r.exit_code == 8, (r.exit_code, r.stderr)
    assert r.stderr.strip() == (f"error: no imagestore store at {typo} (create one with "
                                f"'imagestore init' or any command that writes)")
    assert not os.path.exists(typo)


def test_disk_create_where_no_file_can_be_made_names_the_users_path(made):
    p = subprocess.run([sys.executable, "-m", "imagestore.cli.main", "--store", made["store"],
                        "store", "materialize", made["digest"], "--path", "/proc/nope.raw"],
                       capture_output=True, text=True)
    assert p.returncode == 10, p.stderr
    assert p.stderr.strip().startswith("error: /proc/nope.raw: "), p.stderr
    assert ".imagestore-" not in p.stderr
