"""A throwaway PostgreSQL cluster for the tests: Debian's binaries (``/usr/lib/postgresql/*/bin``,
apt ``postgresql``), a data directory and a Unix socket under a temp directory, no TCP
(``listen_addresses=''``), durability off (nothing in it outlives the session).

PostgreSQL refuses to run as root: when the tests run as root, ``initdb`` and the server run
as ``nobody`` (``setpriv``), the directory chowned to it. Superuser ``postgres`` logs in
without a password over the socket; role ``pwuser`` (password ``PASSWORD``) must give its
password (the wrong-password test).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid

PASSWORD = "s3cret-pw"
PORT = 5439
NOBODY = 65534


def find_bin(tool: str) -> str | None:
    """Debian's ``tool`` (newest major version first), or one on PATH."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                    reverse=True):
        if os.access(os.path.join(d, tool), os.X_OK):
            return os.path.join(d, tool)
    return shutil.which(tool)


def missing_reason() -> str | None:
    """Why no cluster can be started here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if find_bin(tool) is None:
            return f"PostgreSQL's {tool} not found (apt install postgresql; scripts/setup.sh)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]'; scripts/setup.sh)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "running as root and setpriv (util-linux) is missing: cannot run PostgreSQL"
    return None


class Cluster:
    """One PostgreSQL server for the test session."""

    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="imagestore-pg-")
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.log = os.path.join(self.base, "server.log")
        self.port = PORT
        self._template: str | None = None
        os.mkdir(self.sock)
        self.as_nobody = os.geteuid() == 0
        if self.as_nobody:
            for p in (self.base, self.sock):
                os.chown(p, NOBODY, NOBODY)

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        cmd = list(argv)
        if self.as_nobody:
            cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=self.base,
                           env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
        if r.returncode != 0:
            log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr}{log}")
        return r

    def start(self) -> Cluster:
        self._run(find_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all pwuser scram-sha-256\nlocal all all trust\n")
        opts = (f"-k {self.sock} -p {self.port} -c listen_addresses='' -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                f"-c shared_buffers=32MB")
        self._run(find_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", self.data,
                  "-l", self.log, "-o", opts)
        self.sql("postgres", f"CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'")
        return self

    def stop(self) -> None:
        try:
            self._run(find_bin("pg_ctl"), "stop", "-D", self.data, "-m", "immediate", "-w")
        except RuntimeError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, db: str, user: str = "postgres", password: str | None = None) -> str:
        cred = user if password is None else f"{user}:{password}"
        return f"postgresql://{cred}@/{db}?host={self.sock}&port={self.port}"

    def sql(self, db: str, *statements: str) -> list[tuple]:
        import psycopg

        out: list[tuple] = []
        with psycopg.connect(self.url(db), autocommit=True) as con:
            for s in statements:
                cur = con.execute(s)
                if cur.description is not None:
                    out = cur.fetchall()
        return out

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database (a copy of a migrated template unless ``migrated`` is False);
        returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        if migrated:
            if self._template is None:
                from imagestore.gallery import db

                self.sql("postgres", "CREATE DATABASE imagestore_template")
                db.connect(self.url("imagestore_template")).close()
                self._template = "imagestore_template"
            self.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {self._template} "
                                 f"STRATEGY FILE_COPY")
        else:
            self.sql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)


def in_ci() -> bool:
    """CI (``CI=1`` or ``IMAGESTORE_CI=1``): a missing service fails instead of skipping."""
    return any(os.environ.get(v, "").strip() not in ("", "0", "false")
               for v in ("CI", "IMAGESTORE_CI"))


#: ``IMAGESTORE_TEST_DATABASE=postgres`` runs the gallery tests (tests/gallery) against a fresh
#: PostgreSQL database each instead of the store's gallery.sqlite
ENV_TEST_DATABASE = "IMAGESTORE_TEST_DATABASE"


def gallery_tests_on_postgres() -> bool:
    return os.environ.get(ENV_TEST_DATABASE, "sqlite").strip().lower() in ("postgres",
                                                                           "postgresql")
