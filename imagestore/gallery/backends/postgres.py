"""The PostgreSQL backend (psycopg 3): one gallery shared by several imagestore processes on
several hosts, ``IMAGESTORE_DATABASE_URL=postgresql://user[:password]@host[:port]/db``.

- **SQL**: the repository's SQLite-style statements, translated once each (:mod:`.dialect`);
  rows behave like ``sqlite3.Row``; ``cursor.lastrowid`` is ``lastval()`` (the id the INSERT
  just drew), read only when asked for.
- **In the database** (created under the migration lock, before the migrations): the ICU
  collation ``nocase`` (case-insensitive, so ``COLLATE NOCASE`` columns and unique keys
  behave as on SQLite) and the SQL functions ``json_extract(text, text)`` and
  ``datetime(text)`` that SQLite has built in.
- **Transactions**: autocommit for single statements (as SQLite's); a write transaction is
  ``BEGIN`` (READ COMMITTED) followed by ``pg_advisory_xact_lock(WRITE_LOCK)``: writers run one
  at a time, exactly like ``BEGIN IMMEDIATE``, so every read-check-write the services do inside
  a transaction (the version that must not exist yet, the oldest queued job, the lease) sees
  the result of every writer before it; readers are never blocked (MVCC). Locks wait
  ``lock_timeout`` (30 s, SQLite's busy timeout) and then fail as StoreBusy (exit 9).
- **Migrations** run under the session advisory lock ``MIGRATION_LOCK``: processes opening a
  fresh database at the same moment migrate it once.
- **Errors**: an unreachable server, a refused login or a dropped connection is
  DatabaseUnavailable (exit 13) naming the URL without its password; a unique violation is
  Conflict (exit 5); a serialization failure or deadlock is retried for a single statement
  and StoreBusy (exit 9) inside a transaction (which cannot be replayed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...errors import Conflict, DatabaseUnavailable, ImagestoreError, InvalidArgument, StoreBusy
from . import ENV_URL
from .dialect import to_postgres

#: advisory lock keys (64-bit, per database): the writer lock and the migration lock
WRITE_LOCK = 0x696D6773_77726974  # "imgswrit"
MIGRATION_LOCK = 0x696D6773_6D696772  # "imgsmigr"
LOCK_TIMEOUT = "30s"
CONNECT_TIMEOUT = 10
_RETRIES = 5

_SETUP = [
    # case-insensitive comparison and unique keys, as SQLite's NOCASE
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'nocase' AND "
    "collnamespace = current_schema()::regnamespace) THEN CREATE COLLATION nocase "
    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false); END IF; END $$",
    "CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text "
    "LANGUAGE sql IMMUTABLE AS $f$ SELECT (doc::jsonb) #>> "
    "string_to_array(regexp_replace(path, '^\\$\\.?', ''), '.') $f$",
    "CREATE OR REPLACE FUNCTION datetime(what text) RETURNS text LANGUAGE sql STABLE AS "
    "$f$ SELECT to_char(CASE WHEN what = 'now' THEN now() ELSE what::timestamptz END "
    "AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') $f$",
]


def masked(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_url(url: str) -> None:
    """InvalidArgument (exit 3, naming the variable) for a URL that is not PostgreSQL's."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise InvalidArgument(f"{ENV_URL}: '{masked(url)}': unsupported database URL scheme "
                              f"'{scheme}' (use postgresql://user@host:port/database)",
                              target=ENV_URL)
    try:
        urlsplit(url).port  # noqa: B018 - validates the port
    except ValueError as e:
        raise InvalidArgument(f"{ENV_URL}: '{masked(url)}': {e}", target=ENV_URL) from None


def _reason(err: Exception, password: str | None) -> str:
    """libpq's message in one line, without the password."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    # the useful part of "connection failed: connection to server at … failed: REASON"
    text = re.sub(r"^connection failed: ", "", text)
    if password:
        text = text.replace(password, "***")
    return text


class Row:
    """A result row as ``sqlite3.Row`` has it: by index, by (case-insensitive) column name,
    ``keys()``, iteration and ``len``."""

    __slots__ = ("_values", "_names", "_index")

    def __init__(self, values: Sequence[Any], names: tuple[str, ...],
                 index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._names = names
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            i = self._index.get(key)
            if i is None:
                i = self._index.get(key.lower())
                if i is None:
                    raise IndexError(f"No item with that key: {key}")
            return self._values[i]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._names == other._names and self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    names = tuple(c.name for c in desc) if desc else ()
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        index.setdefault(n, i)
        index.setdefault(n.lower(), i)

    def make(values: Sequence[Any]) -> Row:
        return Row(values, names, index)

    return make


class PgCursor:
    """The result of one statement: rows (read at once), ``rowcount`` and ``lastrowid``."""

    def __init__(self, db: PostgresDatabase, rows: list[Row] | None, rowcount: int,
                 serial: int, insert: bool) -> None:
        self._db = db
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self._serial = serial
        self._insert = insert
        self.description = None if rows is None else ()

    @property
    def lastrowid(self) -> int | None:
        """The id the INSERT drew from its table's identity (``lastval()``); read it right
        after the INSERT, before the next statement on the connection."""
        if not self._insert:
            return None
        if self._db._serial != self._serial:
            raise RuntimeError("lastrowid must be read before the next statement runs")
        return int(self._db._raw_one("SELECT lastval()")[0])

    def fetchone(self) -> Row | None:
        if not self._rows or self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[Row]:
        if not self._rows:
            return []
        rest = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        while (r := self.fetchone()) is not None:
            yield r


class PostgresDatabase:
    """A gallery database on a PostgreSQL server."""

    backend = "postgresql"

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        import psycopg

        self.url = url
        self.label = masked(url)
        self.readonly = readonly
        self._password = urlsplit(url).password
        self._serial = 0
        self._psycopg = psycopg
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                       application_name="imagestore")
        except psycopg.ProgrammingError as e:  # a malformed URL (libpq's parser)
            raise InvalidArgument(f"{ENV_URL}: '{self.label}': {_reason(e, self._password)}",
                                  target=ENV_URL) from None
        except psycopg.Error as e:
            raise DatabaseUnavailable(f"gallery database {self.label}: "
                                      f"{_reason(e, self._password)}") from None
        _adapt_bool(self.raw)
        self._raw_exec(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        if readonly:
            self._raw_exec("SET default_transaction_read_only = on")

    # -- plumbing --------------------------------------------------------------------------

    def _translate(self, err: Exception) -> Exception:
        """The imagestore error for a psycopg error, or ``err`` itself (a bug)."""
        e = self._psycopg.errors
        why = _reason(err, self._password)
        if isinstance(err, e.UniqueViolation):
            return Conflict(f"gallery database {self.label}: {why} (created concurrently?)")
        if isinstance(err, (e.SerializationFailure, e.DeadlockDetected, e.LockNotAvailable)):
            return StoreBusy(f"gallery database {self.label} is busy (another imagestore is "
                             f"writing): {why}")
        if isinstance(err, e.ReadOnlySqlTransaction):
            return ImagestoreError(f"gallery database {self.label}: opened read-only: {why}")
        if isinstance(err, self._psycopg.OperationalError) and not isinstance(
                err, e.QueryCanceled):
            return DatabaseUnavailable(f"gallery database {self.label}: {why}")
        if isinstance(err, self._psycopg.InterfaceError) and self.raw.closed:
            return DatabaseUnavailable(f"gallery database {self.label}: connection closed")
        return err

    def _raw_exec(self, sql: str, args: Sequence[Any] | None = None) -> None:
        try:
            self.raw.execute(sql, args)
        except self._psycopg.Error as err:
            raise self._translate(err) from None

    def _raw_one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        try:
            return self.raw.execute(sql, args).fetchone()
        except self._psycopg.Error as err:
            raise self._translate(err) from None

    def _run(self, sql: str, args: Sequence[Any], many: bool) -> PgCursor:
        q = to_postgres(sql)
        attempts = 1 if self.in_transaction else _RETRIES
        for attempt in range(attempts):
            try:
                cur = self.raw.cursor(row_factory=_row_factory)
                if many:
                    cur.executemany(q, args)
                else:
                    cur.execute(q, tuple(args))
                rows = cur.fetchall() if cur.description is not None else None
                self._serial += 1
                return PgCursor(self, rows, cur.rowcount, self._serial,
                                q.lstrip()[:6].upper() == "INSERT")
            except (self._psycopg.errors.SerializationFailure,
                    self._psycopg.errors.DeadlockDetected) as err:
                if attempt + 1 >= attempts:
                    raise self._translate(err) from None
                time.sleep(0.01 * (attempt + 1))
            except self._psycopg.Error as err:
                raise self._translate(err) from None
        raise AssertionError("unreachable")

    # -- the Database interface ---------------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] = ()) -> PgCursor:
        return self._run(sql, args, False)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> PgCursor:
        return self._run(sql, [tuple(a) for a in seq], True)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE

    @contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        """``BEGIN``; the writer lock; … ``COMMIT`` (``ROLLBACK`` on any exception)."""
        if self.in_transaction:
            raise RuntimeError("a gallery transaction is already open on this connection")
        self._raw_exec("BEGIN")
        try:
            if not self.readonly:
                self._raw_exec("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield self
        except BaseException:
            if not self.raw.closed and self.in_transaction:
                try:
                    self.raw.execute("ROLLBACK")
                except self._psycopg.Error:
                    pass  # the connection is gone: the server rolled back
            raise
        self._raw_exec("COMMIT")

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """The session advisory lock ``MIGRATION_LOCK`` while migrating (also creates the
        collation and functions the translated SQL relies on)."""
        self._raw_exec("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            if not self.readonly:
                self._prepare()
            yield
        finally:
            if not self.raw.closed:
                try:
                    self.raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
                except self._psycopg.Error:
                    pass  # the connection is gone, and its session locks with it

    def _prepare(self) -> None:
        tables = {t.lower() for t in self.table_names()}
        if tables and "schema_migrations" not in tables:
            return  # another application's database: the schema check refuses it untouched
        have = self._raw_one("SELECT count(*) FROM pg_proc WHERE proname IN "
                             "('json_extract', 'datetime') AND pronamespace = "
                             "current_schema()::regnamespace")[0]
        coll = self._raw_one("SELECT count(*) FROM pg_collation WHERE collname = 'nocase' AND "
                             "collnamespace = current_schema()::regnamespace")[0]
        if have == 2 and coll == 1:
            return
        with self.transaction():
            for stmt in _SETUP:
                self._raw_exec(stmt)

    def table_names(self) -> list[str]:
        rows = self._run("SELECT table_name FROM information_schema.tables WHERE "
                         "table_schema = current_schema() AND table_type = 'BASE TABLE'",
                         (), False).fetchall()
        return [r[0] for r in rows]

    def now(self) -> float:
        """The server's clock: one clock for every host sharing the gallery."""
        return float(self._raw_one("SELECT extract(epoch FROM clock_timestamp())::float8")[0])

    def close(self) -> None:
        self.raw.close()


def _adapt_bool(con: Any) -> None:
    """Python booleans as 0/1 (SQLite has no boolean: the columns are integers)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    int8 = con.adapters.types["int8"].oid

    class BoolAsInt(Dumper):
        oid = int8
        format = Format.TEXT

        def dump(self, obj: bool) -> bytes:
            return b"1" if obj else b"0"

    con.adapters.register_dumper(bool, BoolAsInt)
