"""Store creation: a half-built store of ours is finished (even by a read-only command), a
foreign directory is refused and left alone, a dead creator's temp directory is removed, three
first uses racing end with one store; SQLite errors become one-line errors naming the file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from imagestore.errors import IntegrityError, IOFailure
from imagestore.store import sqlitedb
from tests.conftest import Cli
from tests.helpers import make_random

NOTE = "(create one with 'imagestore init' or any command that writes)"


def half_built(root: str) -> None:
    """What a creation killed before its header leaves (the layout earlier versions left)."""
    local = os.path.join(root, "regions", "local")
    for d in ("packs", "manifests"):
        os.makedirs(os.path.join(local, d))
    sqlite3.connect(os.path.join(local, "index.sqlite")).close()


def test_a_half_built_store_is_finished_by_the_next_command(tmp_path):
    store = str(tmp_path / "s")
    half_built(store)
    r = Cli(store)("store", "verify")  # read-only, and still it finishes our own store
    assert r.exit_code == 0, r.stderr
    assert sorted(os.listdir(store)) == ["imagestore.json", "regions"]
    src = make_random(str(tmp_path / "a.raw"), 1, seed=1)
    assert Cli(store).json("store", "ingest", src)["newChunks"] == 4


@pytest.mark.parametrize("extra", ["notes.txt", "regions/west/x", "regions/local/packs/p.pack"])
def test_a_foreign_directory_is_refused_and_untouched(tmp_path, extra):
    store = str(tmp_path / "s")
    half_built(store)
    path = os.path.join(store, extra)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("mine")
    before = sorted(os.walk(store))
    r = Cli(store)("store", "ingest", path)
    assert r.exit_code == 8, r.stderr
    assert "is not empty and is not an imagestore store" in r.stderr
    assert sorted(os.walk(store)) == before


def test_a_dead_creators_temp_directory_is_removed(tmp_path):
    host = os.uname().nodename.replace("-", "_")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".s.imagestore-new-{host}-{dead}-0badc0de"
    (stale / "regions").mkdir(parents=True)
    alive = tmp_path / f".s.imagestore-new-{host}-1-0badc0de"  # pid 1 lives: not ours to take
    alive.mkdir()
    Cli(str(tmp_path / "s")).json("init")
    assert not stale.exists() and alive.exists()


def test_a_missing_store_is_not_created_by_reading(tmp_path):
    r = Cli(str(tmp_path / "nope"))("region", "show", "local")
    assert r.exit_code == 8 and NOTE in r.stderr, r.stderr
    assert not (tmp_path / "nope").exists()


def test_three_first_uses_race(tmp_path):
    """Three processes using a new store at once: one creates it, the others open it."""
    src = make_random(str(tmp_path / "s.raw"), 1, seed=3)
    for i in range(3):
        store = str(tmp_path / f"store{i}")
        if i == 2:
            os.mkdir(store)  # an existing empty directory: built inside
        procs = [subprocess.Popen([sys.executable, "-m", "imagestore.cli.main", "--store", store,
                                   "store", "ingest", src], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
        assert len({json.loads(o[0])["digest"] for o in outs}) == 1
        assert sorted(os.listdir(store)) == ["imagestore.json", "regions"]
        assert [n for n in os.listdir(tmp_path) if "imagestore-new" in n] == []
        assert Cli(store).json("store", "verify")["clean"]


def test_sqlite_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is no database" * 300)
    with pytest.raises(IntegrityError, match=f"^{bad}: the database is damaged"):
        sqlitedb.connect(str(bad)).execute("SELECT * FROM sqlite_master").fetchall()
    good = tmp_path / "good.sqlite"
    sqlitedb.connect(str(good)).execute("CREATE TABLE t(x)")
    ro = sqlitedb.connect(str(good), readonly=True)
    with pytest.raises(IOFailure, match=f"^{good}: cannot write"):
        ro.execute("INSERT INTO t VALUES (1)")
    ro.close()
    with pytest.raises(IOFailure, match="^/nonexistent/x.sqlite: cannot open"):
        sqlitedb.connect("/nonexistent/x.sqlite")
    with pytest.raises(sqlite3.OperationalError):  # a bug stays a bug
        sqlitedb.connect(str(good)).execute("SELECT nope FROM t")
