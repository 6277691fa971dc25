"""One gallery on PostgreSQL shared by several "hosts": imagestore processes with different
store directories (their own local regions) and different host ids, one database server
(a throwaway cluster, tests/pg.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from imagestore.errors import Conflict, DatabaseUnavailable, NotAStore, StoreBusy
from imagestore.gallery import backends, db
from imagestore.gallery.repository import Repository
from imagestore.gallery.service import GalleryService
from imagestore.home import Home
from imagestore.worker import lease as lease_mod
from tests.helpers import make_random, run_imagestore, store_tree_snapshot

pytestmark = pytest.mark.one_pass

CONFLICT, NOT_A_STORE, INVALID, DB_DOWN = 5, 8, 3, 15


def host_env(url: str, host: str) -> dict:
    return {**os.environ, "IMAGESTORE_DATABASE_URL": url, "IMAGESTORE_HOST_ID": host,
            "IMAGESTORE_AUTOSTART_WORKER": "0"}


class Host:
    """An imagestore "host": its own store directory and host id, the shared database."""

    def __init__(self, tmp_path, name: str, url: str, *, init: bool = True) -> None:
        self.name = name
        self.store = str(tmp_path / f"store-{name}")
        self.env = host_env(url, name)
        if init:
            run_imagestore("--store", self.store, "init", env=self.env)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_imagestore("--store", self.store, *args, check=check, env=self.env)

    def json(self, *args: str):
        return json.loads(self(*args).stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "imagestore.cli.main", "--store",
                                 self.store, *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


DEF = ["-p", "P", "-f", "O", "-s", "S", "--os-type", "Linux"]


def test_two_hosts_see_each_others_galleries_and_versions(pg_url, tmp_path):
    a, b = Host(tmp_path, "a", pg_url), Host(tmp_path, "b", pg_url)
    src_a = make_random(str(tmp_path / "a.raw"), 4, seed=1)
    src_b = make_random(str(tmp_path / "b.raw"), 4, seed=2)
    a.json("sig", "create", "-r", "g")
    assert [g["name"] for g in b.json("sig", "list")] == ["g"]
    b.json("sig", "image-definition", "create", "-r", "G", "-i", "d", *DEF)  # NOCASE names
    assert [d["name"] for d in a.json("sig", "image-definition", "list", "-r", "g")] == ["d"]
    va = a.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
                "--os-vhd-uri", src_a)
    vb = b.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "2.0.0",
                "--os-vhd-uri", src_b)
    for h in (a, b):
        got = h.json("sig", "image-version", "list", "-r", "g", "-i", "d")
        assert [(v["id"], v["properties"]["provisioningState"]) for v in got] == [
            (va["id"], "Succeeded"), (vb["id"], "Succeeded")]
    # the bytes stay in each host's own local region: a disk from a's version works on a
    # and on b only once b can reach the data (shared or replicated regions)
    out = str(tmp_path / "disk-a.raw")
    a("disk", "create", "-n", "da", "--gallery-image-reference", "g/d/1.0.0", "--path", out)
    assert open(out, "rb").read() == open(src_a, "rb").read()
    r = b("disk", "create", "-n", "db", "--gallery-image-reference", "g/d/1.0.0", "--path",
          str(tmp_path / "disk-b.raw"), check=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(a.store, "gallery.sqlite"))
    assert not os.path.exists(os.path.join(b.store, "gallery.sqlite"))
    assert vb["location"] == "local"


def test_concurrent_creates_of_one_version_one_wins(pg_url, tmp_path):
    a, b = Host(tmp_path, "a", pg_url), Host(tmp_path, "b", pg_url)
    a.json("sig", "create", "-r", "g")
    a.json("sig", "image-definition", "create", "-r", "g", "-i", "d", *DEF)
    srcs = [make_random(str(tmp_path / f"s{i}.raw"), 16, seed=10 + i) for i in range(2)]
    procs = [h.popen("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
                     "--os-vhd-uri", s) for h, s in zip((a, b), srcs, strict=True)]
    res = [(p.wait(120), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in res)
    assert codes == [0, CONFLICT], res
    loser = next(r for r in res if r[0] == CONFLICT)
    assert loser[2].startswith("error: ") and "already exists" in loser[2], loser[2]
    assert len(loser[2].strip().splitlines()) == 1
    winner = json.loads(next(r for r in res if r[0] == 0)[1])
    for h in (a, b):
        got = h.json("sig", "image-version", "list", "-r", "g", "-i", "d")
        assert [v["id"] for v in got] == [winner["id"]]


def test_writer_lock_serialises_read_check_write_and_unique_is_conflict(pg_url):
    """What ``BEGIN IMMEDIATE`` gives on SQLite: a second writer's transaction starts after
    the first commits, so its existence check sees the first one's row."""
    r1, r2 = Repository(pg_url), Repository(pg_url)
    held, seen, since = threading.Event(), [], []
    try:
        def first() -> None:
            with r1.transaction():
                r1.insert_gallery("rg", "g", "local", {}, {})
                since.append(time.monotonic())
                held.set()
                time.sleep(0.5)

        t = threading.Thread(target=first)
        t.start()
        held.wait(10)
        with r2.transaction():
            seen.append(r2.find_gallery("RG", "G"))
        waited = time.monotonic() - since[0]  # from when the lock was held, not when we woke
        t.join()
        assert seen[0] is not None and seen[0].name == "g"
        assert waited >= 0.45
        with pytest.raises(Conflict), r2.transaction():  # the unique key, as a backstop
            r2.insert_gallery("Rg", "G", "local", {}, {})
        assert [g.name for g in r1.list_galleries()] == ["g"]
    finally:
        r1.close()
        r2.close()


def test_lock_timeout_is_store_busy(pg_url, monkeypatch):
    from imagestore.gallery.backends import postgres

    monkeypatch.setattr(postgres, "LOCK_TIMEOUT", "200ms")
    r1, r2 = Repository(pg_url), Repository(pg_url)
    try:
        with r1.transaction():
            with pytest.raises(StoreBusy, match="busy"), r2.transaction():
                pass
        with r2.transaction():  # and usable again afterwards
            r2.insert_gallery("rg", "g2", "local", {}, {})
    finally:
        r1.close()
        r2.close()


_LEASE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from imagestore.gallery.repository import Repository
    from imagestore.worker.lease import Lease
    url, want = sys.argv[1], int(sys.argv[2])
    repo = Repository(url)
    held = []
    end = time.time() + 60
    while len(held) < want and time.time() < end:
        lease = Lease(url)
        if lease.acquire(repo):
            t0 = repo.now()
            time.sleep(0.03)
            t1 = repo.now()
            lease.release(repo)
            held.append((t0, t1))
        time.sleep(0.005)
    print(json.dumps(held))
""")


def test_worker_lease_is_exclusive_across_hosts(pg_url, tmp_path):
    """Four processes on two "hosts" take and give back the lease five times each: the
    intervals in which each held it (database clock) never overlap."""
    procs = [subprocess.Popen([sys.executable, "-c", _LEASE_SCRIPT, pg_url, "5"],
                              env=host_env(pg_url, f"host{i % 2}"), stdout=subprocess.PIPE,
                              text=True) for i in range(4)]
    held = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [len(h) for h in held] == [5] * 4
    spans = sorted(s for h in held for s in h)
    for (_s0, e0), (s1, _e1) in zip(spans, spans[1:], strict=False):
        assert s1 >= e0, "two holders at once"


def test_same_pid_on_another_host_does_not_hold_the_lease(pg_url, monkeypatch):
    """A pid means nothing on another machine: the lease is held by (host, pid)."""
    repo = Repository(pg_url)
    try:
        monkeypatch.setenv("IMAGESTORE_HOST_ID", "host-a")
        la = lease_mod.Lease(pg_url)
        assert la.acquire(repo)
        monkeypatch.setenv("IMAGESTORE_HOST_ID", "host-b")
        lb = lease_mod.Lease(pg_url)  # same pid, another host
        assert not lb.acquire(repo)
        assert lease_mod.lease_holder(repo).host == "host-a"
        # host-a goes silent (its heartbeat stops): after the TTL host-b takes over and
        # host-a's heartbeat notices it lost the lease
        la._stop.set()
        la._thread.join()
        with repo.transaction():
            repo.con.execute("UPDATE worker_lease SET heartbeat = heartbeat - ?",
                             (lease_mod.LEASE_TTL + 1,))
        assert lease_mod.lease_holder(repo) is None
        assert lb.acquire(repo)
        assert not repo.beat(la.pid, "host-a", repo.now())
        lb.release(repo)
        assert repo.lease() is None
    finally:
        repo.close()


def test_each_queued_job_runs_once_across_hosts(pg_url, tmp_path):
    """Eight queued jobs, four workers started at once on two hosts: each job runs exactly
    once, and the queue ends empty."""
    hosts = [Host(tmp_path, f"h{i}", pg_url) for i in range(2)]
    repo = Repository(pg_url)
    try:
        with repo.transaction():
            for _ in range(8):
                repo.con.execute("INSERT INTO jobs(kind, payload, state, created) VALUES "
                                 "('gc', '{\"region\": \"local\"}', 'queued', 'x')")
        ids = [r[0] for r in repo.con.execute("SELECT id FROM jobs ORDER BY id")]
        procs = [subprocess.Popen([sys.executable, "-m", "imagestore.worker", "--store",
                                   hosts[i % 2].store, "--once"], env=hosts[i % 2].env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(4)]
        outs = [p.communicate(timeout=90) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        ran = [int(m.group(1)) for _o, err in outs
               for m in re.finditer(r" job (\d+) gc .*attempt=", err)]
        assert sorted(ran) == ids
        assert sum(json.loads(o)["ran"] for o, _e in outs) == 8
        assert repo.pending_jobs() == 0
    finally:
        repo.close()


def test_concurrent_first_use_migrates_once(pg_cluster, tmp_path):
    """Three hosts' first commands hit an empty database at once: it is migrated once and
    each one's write lands."""
    url = pg_cluster.new_database(migrated=False)
    hosts = [Host(tmp_path, f"h{i}", url, init=False) for i in range(3)]
    procs = [h.popen("sig", "create", "-r", f"g{i}") for i, h in enumerate(hosts)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    con = backends.connect(url)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY seq")]
        assert names == [n for n, _ in db.MIGRATIONS]
        assert [r[0] for r in con.execute("SELECT name FROM galleries ORDER BY name")] == [
            "g0", "g1", "g2"]
    finally:
        con.close()


def test_verify_reads_the_gallery_through_the_seam(pg_url, tmp_path, monkeypatch):
    """``store verify``'s read-only view of the gallery (versions by manifest) on PostgreSQL."""
    from imagestore.gallery.usage import versions_by_digest

    a = Host(tmp_path, "a", pg_url)
    src = make_random(str(tmp_path / "a.raw"), 2, seed=3)
    a.json("sig", "create", "-r", "g")
    a.json("sig", "image-definition", "create", "-r", "g", "-i", "d", *DEF)
    v = a.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
               "--os-vhd-uri", src)
    monkeypatch.setenv("IMAGESTORE_DATABASE_URL", pg_url)
    home = Home.open(a.store, create=False)
    try:
        usage = versions_by_digest(home)
        digest = v["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
        assert [str(x) for x in usage[digest]] == ["g/d/1.0.0 (OS disk)"]
    finally:
        home.close()


# -- hostile -----------------------------------------------------------------------------


def _fails(h: Host, code: int, *needles: str, secret: str | None = None) -> str:
    before = store_tree_snapshot(h.store)
    r = h("sig", "create", "-r", "g", check=False)
    assert r.returncode == code, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in err, err
    if secret is not None:
        assert secret not in err and secret not in r.stdout
    assert store_tree_snapshot(h.store) == before
    return err


@pytest.fixture
def stores(pg_cluster, tmp_path):
    """A store directory made beforehand (its tree must stay the same)."""
    return lambda url: Host(tmp_path, "h", url)


def test_hostile_urls(pg_cluster, stores):
    from tests import pg

    h = stores(pg_cluster.url("x"))
    for bad, needle in [("mysql://u@h/db", "unsupported database URL scheme 'mysql'"),
                        ("postgresql://u@h:notaport/db", "IMAGESTORE_DATABASE_URL"),
                        ("postgresql://u@/db?nonsense=1", "IMAGESTORE_DATABASE_URL")]:
        h.env["IMAGESTORE_DATABASE_URL"] = bad
        _fails(h, INVALID, needle)
    # nobody listening on that socket: refused, one line
    h.env["IMAGESTORE_DATABASE_URL"] = f"postgresql://postgres@/x?host={h.store}&port=1"
    _fails(h, DB_DOWN, "gallery database postgresql://postgres@/x")
    # a wrong password: refused, and the password is never printed
    wrong = "not-" + pg.PASSWORD
    h.env["IMAGESTORE_DATABASE_URL"] = pg_cluster.url("postgres", "pwuser", wrong)
    err = _fails(h, DB_DOWN, "password authentication failed", "pwuser:***@", secret=wrong)
    assert pg.PASSWORD not in err
    # a database that does not exist
    h.env["IMAGESTORE_DATABASE_URL"] = pg_cluster.url("no_such_db")
    _fails(h, DB_DOWN, 'database "no_such_db" does not exist')


def test_database_of_another_schema_is_refused_untouched(pg_cluster, stores):
    newer = pg_cluster.new_database()
    pg_cluster.sql(newer.split("/")[3].split("?")[0],
                   "INSERT INTO schema_migrations(seq, name, applied_at) VALUES "
                   "(999, '0999_from_the_future', 'x')")
    h = stores(newer)
    h.env["IMAGESTORE_DATABASE_URL"] = newer
    _fails(h, NOT_A_STORE, "schema migration '0999_from_the_future' is newer")
    with pytest.raises(NotAStore):
        Repository(newer)
    # another application's database: no schema_migrations, tables of its own
    other = pg_cluster.new_database(migrated=False)
    name = other.split("/")[3].split("?")[0]
    pg_cluster.sql(name, "CREATE TABLE customers (id int PRIMARY KEY, name text)")
    h.env["IMAGESTORE_DATABASE_URL"] = other
    _fails(h, NOT_A_STORE, "customers", "not an imagestore gallery")
    tables = pg_cluster.sql(name, "SELECT table_name FROM information_schema.tables WHERE "
                                  "table_schema = 'public'")
    assert tables == [("customers",)]
    funcs = pg_cluster.sql(name, "SELECT count(*) FROM pg_proc WHERE proname = 'json_extract'")
    assert funcs == [(0,)]


def test_server_gone_mid_session_is_one_line(pg_cluster, tmp_path, monkeypatch):
    """A connection the server drops (terminated backend) is DatabaseUnavailable."""
    url = pg_cluster.new_database()
    monkeypatch.setenv("IMAGESTORE_DATABASE_URL", url)
    home = Home.open(str(tmp_path / "s"))
    svc = GalleryService(home)
    try:
        pid = svc.con.execute("SELECT pg_backend_pid()").fetchone()[0]
        pg_cluster.sql("postgres", f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(DatabaseUnavailable, match="gallery database postgresql://"):
            svc.list_galleries()
    finally:
        svc.close()
        home.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_sql_runs_the_same_on_both_backends(backend, tmp_path, request):
    """The repository's SQLite-style SQL — DDL types, NOCASE, lastrowid, INSERT OR IGNORE,
    upsert, RETURNING, IS ?, json_extract, rowid order, booleans, BLOBs — gives the same
    answers on both backends."""
    target = (str(tmp_path / "x.sqlite") if backend == "sqlite"
              else request.getfixturevalue("pg_url"))
    con = backends.connect(target)
    try:
        assert con.backend == backend
        with con.transaction():
            con.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE "
                        "NOCASE UNIQUE, n INTEGER, f REAL, b BLOB, doc TEXT)")
            con.execute("CREATE TABLE pairs (a INTEGER NOT NULL, s TEXT NOT NULL, "
                        "PRIMARY KEY (a, s))")
        with con.transaction():
            ids = [con.execute("INSERT INTO kv(name, n, f, b, doc) VALUES (?, ?, ?, ?, ?)",
                               (f"Name{i}", 1 << 40, 1796216333.172534, bytes([0, 255, i]),
                                '{"region": "West"}')).lastrowid for i in range(3)]
            for a, s in ((2, "z"), (1, "y"), (3, "x")):
                con.execute("INSERT INTO pairs(a, s) VALUES (?, ?)", (a, s))
        assert ids == [1, 2, 3]
        assert con.execute("INSERT OR IGNORE INTO kv(name) VALUES (?)", ("NAME1",)).rowcount == 0
        with pytest.raises(Conflict):
            con.execute("INSERT INTO kv(name) VALUES (?)", ("name2",))
        row = con.execute("INSERT INTO kv(name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                          "SET n = excluded.n RETURNING id, n", ("NAME0", True)).fetchone()
        assert (row["id"], row[1]) == (1, 1)
        r = con.execute("SELECT name, n, f, b FROM kv WHERE name = ?", ("name1",)).fetchone()
        assert tuple(r) == ("Name1", 1 << 40, 1796216333.172534, bytes([0, 255, 1]))
        assert r.keys() == ["name", "n", "f", "b"]
        assert [x[0] for x in con.execute("SELECT id FROM kv WHERE id IS NOT ? ORDER BY id",
                                          (2,))] == [1, 3]
        assert con.execute("SELECT count(*) FROM kv WHERE n IS ?", (None,)).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM kv WHERE json_extract(doc, '$.region') = ? "
                           "COLLATE NOCASE", ("west",)).fetchone()[0] == 3
        assert [x[0] for x in con.execute("SELECT a FROM pairs ORDER BY rowid")] == [2, 1, 3]
        assert con.execute("SELECT name FROM kv WHERE name LIKE 'Name%' ORDER BY name DESC "
                           "LIMIT 1").fetchone()[0] == "Name2"
        assert con.execute("UPDATE kv SET n = 0 WHERE id > ?", (1,)).rowcount == 2
        assert con.execute("DELETE FROM kv WHERE id = -1").fetchone() is None
        with pytest.raises(RuntimeError), con.transaction():
            con.execute("DELETE FROM kv")
            raise RuntimeError("rolled back")
        assert con.execute("SELECT count(*) FROM kv").fetchone()[0] == 3
        assert abs(con.now() - time.time()) < 5
    finally:
        con.close()
