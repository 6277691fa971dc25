"""Crash points of the per-store keys created on first use (``identity/keyfile.create_new``;
the strace pattern of tests/store/test_kill_points.py): the first ``token create`` (the token
signing key) and the first ``disk grant-access`` (the SAS key) of a store are SIGKILLed at
each of their write-path system calls in turn. After every kill:

* the key file is absent or complete (never a truncated key that locks the store out);
* ``store verify`` exits 0;
* the retried command succeeds, keeps a key that was already published (same bytes), and
  the store's tokens / SAS URLs verify with it;
* after ``store gc`` no temp file of the key is left in ``identity/`` (the next creation
  also removes a dead process's).

The dedup key (``identity/dedup.key``) is created by the first capture in a second tenant:
tests/gallery/test_tenant_capture_kill_points.py kills that capture.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from imagestore.identity import sas, tokens
from tests.conftest import Cli
from tests.helpers import MiB
from tests.store.test_kill_points import enumerate_points, leftovers, make_source

pytestmark = [pytest.mark.one_pass,
              pytest.mark.sqlite_gallery("each kill point copies the store")]


def _key_state(path: str, nbytes: int = 32) -> bytes | None:
    """The key's bytes, None when there is none; a torn key fails the test."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        key = f.read()
    assert len(key) == nbytes, f"{path}: {len(key)} bytes"
    assert os.stat(path).st_mode & 0o777 == 0o600
    return key


def _no_temps(store: str) -> None:
    """After ``store gc`` no temp file of a key is left (one a kill left between publishing
    the key and removing its temp is a dead process's: gc removes it)."""
    r = Cli(store)("store", "gc")
    assert r.exit_code == 0, r.stderr
    d = os.path.join(store, "identity")
    assert leftovers(d) == [], leftovers(d)


@pytest.fixture(scope="module")
def with_disk(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("key-kp")
    src = make_source(str(d / "os.raw"), 13)
    with open(src, "r+b") as f:
        f.truncate(2 * MiB)
    run = Cli(str(d / "store"))
    run.definition()
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", src)
    run.json("disk", "create", "-n", "k", "--gallery-image-reference", "g/d/1.0.0")
    assert not os.path.exists(tokens.key_path(str(d / "store")))
    assert not os.path.exists(os.path.join(str(d / "store"), "identity", sas.KEY_FILE))
    return str(d / "store")


def _prepare(template: str):
    def prepare(d: str) -> str:
        store = os.path.join(d, "store")
        shutil.copytree(template, store, symlinks=True)
        return store
    return prepare


def test_token_key_kill_points(with_disk, tmp_path):
    def check(store: str) -> None:
        before = _key_state(tokens.key_path(store))
        run = Cli(store)
        r = run("store", "verify")
        assert r.exit_code == 0, r.stderr
        tok = run.json("token", "create")["accessToken"]
        key = _key_state(tokens.key_path(store))
        assert key is not None and (before is None or key == before)
        assert tokens.verify(store, tok).name
        _no_temps(store)

    enumerate_points("token-key", _prepare(with_disk),
                     lambda s: ["--store", s, "token", "create"], check, tmp_path)


def test_sas_key_kill_points(with_disk, tmp_path):
    def check(store: str) -> None:
        path = os.path.join(store, "identity", sas.KEY_FILE)
        before = _key_state(path)
        run = Cli(store)
        r = run("store", "verify")
        assert r.exit_code == 0, r.stderr
        r = run("disk", "grant-access", "-n", "k", "--duration-in-seconds", "600",
                "--only-show-errors")
        assert r.exit_code == 0, (r.exit_code, r.stderr)
        url = json.loads(r.stdout)["accessSAS"]
        key = _key_state(path)
        assert key is not None and (before is None or key == before)
        from urllib.parse import parse_qs, urlsplit

        query = urlsplit(url).query
        grant = parse_qs(query)["si"][0]
        disk_id = run.json("disk", "show", "-n", "k")["id"]
        assert sas.verify(store, grant, query, disk_id).grant_id == grant
        _no_temps(store)

    enumerate_points("sas-key", _prepare(with_disk),
                     lambda s: ["--store", s, "disk", "grant-access", "-n", "k",
                                "--duration-in-seconds", "600"], check, tmp_path)
