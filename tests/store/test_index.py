"""The chunk index (SQLite): publish is insert-or-ignore (or replace) in one transaction,
lookups in batches of any size, the payload checksum, migration of an index without it."""

from __future__ import annotations

import sqlite3

import pytest
import xxhash

from imagestore.errors import IOFailure
from imagestore.store import index

PSUM_MASK = (1 << 63) - 1


def cid(i: int) -> bytes:
    return xxhash.xxh3_128_digest(b"chunk %d" % i)


def rows(n: int, start: int = 0, *, psum: bool = True) -> list[index.Row]:
    """(id, offset, raw_len, stored_len, flags, psum) of n records laid end to end."""
    out = []
    for i in range(start, start + n):
        ps = index.payload_sum(b"payload %d" % i) if psum else None
        out.append((cid(i), i * 1000, 4096 + i, 900 + i, i % 2, ps))
    return out


@pytest.fixture
def con(tmp_path):
    c = index.connect(str(tmp_path / "index.sqlite"))
    index.create(c)
    yield c
    c.close()


def test_published_rows_are_found_with_their_pack(con):
    index.publish(con, "pack-a.pack", rows(3))
    names = index.pack_names(con)
    assert list(names.values()) == ["pack-a.pack"]
    (pid,) = names
    assert index.lookup(con, cid(1)) == (pid, 1000, 4097, 901, 1)
    assert index.lookup(con, cid(99)) is None


def test_publish_is_insert_or_ignore_unless_replace(con):
    index.publish(con, "pack-a.pack", rows(4))
    # another writer stored chunks 2..5 too, in its own pack: the first rows win
    late = [(c, off + 7, rl, sl, fl, ps) for c, off, rl, sl, fl, ps in rows(4, 2)]
    index.publish(con, "pack-b.pack", late)
    names = {v: k for k, v in index.pack_names(con).items()}
    a, b = names["pack-a.pack"], names["pack-b.pack"]
    assert index.lookup(con, cid(2))[:2] == (a, 2000)
    assert index.lookup(con, cid(3))[:2] == (a, 3000)
    assert index.lookup(con, cid(4))[:2] == (b, 4007)  # new ones land
    # replace (gc compaction, repair) repoints the chunk at the new pack
    index.publish(con, "pack-b.pack", late[:1], replace=True)
    assert index.lookup(con, cid(2))[:2] == (b, 2007)
    assert len(index.pack_names(con)) == 2  # publishing to a known pack adds no pack row
    assert con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 6


def test_a_failed_publish_commits_nothing(con):
    index.publish(con, "pack-a.pack", rows(2))
    # the fourth row cannot be bound: the first three were inserted already and must go
    bad = rows(3, 10) + [(cid(20), object(), 1, 1, 0, None)]
    with pytest.raises(sqlite3.Error):
        index.publish(con, "pack-b.pack", bad)
    assert list(index.pack_names(con).values()) == ["pack-a.pack"]
    assert index.lookup(con, cid(10)) is None
    assert not con.in_transaction
    index.publish(con, "pack-b.pack", rows(3, 10))  # and the connection still works
    assert index.lookup(con, cid(12)) is not None


def test_committed_rows_are_seen_by_other_connections_and_a_readonly_one_refuses_writes(
        tmp_path, con):
    other = index.connect(str(tmp_path / "index.sqlite"))
    try:
        index.publish(con, "pack-a.pack", rows(1))
        assert index.lookup(other, cid(0)) is not None  # committed: seen at once
        reader = index.connect(str(tmp_path / "index.sqlite"), readonly=True)
        try:
            assert index.lookup(reader, cid(0)) is not None
            with pytest.raises(IOFailure, match="index.sqlite: cannot write"):
                index.publish(reader, "pack-x.pack", rows(1, 5))
            assert index.lookup(con, cid(5)) is None
        finally:
            reader.close()
    finally:
        other.close()


@pytest.mark.parametrize("n", [0, 1, 499, 500, 501, 1234])
def test_lookup_many_batches_any_number_of_ids(con, n):
    index.publish(con, "pack-a.pack", rows(1500))
    (pid,) = index.pack_names(con)
    wanted = [cid(i) for i in range(0, 2 * n, 2)]  # every other one
    wanted += [cid(10_000 + i) for i in range(n // 3)]  # not indexed
    wanted += wanted[: n // 2]  # duplicates
    got = index.lookup_many(con, wanted)
    expect = {cid(i): (pid, i * 1000, 4096 + i, 900 + i, i % 2)
              for i in range(0, 2 * n, 2) if i < 1500}
    assert got == expect
    sums = index.lookup_sums(con, wanted)
    assert sums == {cid(i): index.payload_sum(b"payload %d" % i) for i in range(0, 2 * n, 2) if i < 1500}


def test_lookup_sums_gives_none_for_rows_without_a_checksum(con):
    index.publish(con, "pack-a.pack", rows(2, psum=False) + rows(1, 5))
    assert index.lookup_sums(con, [cid(0), cid(1), cid(5), cid(9)]) == {
        cid(0): None, cid(1): None, cid(5): index.payload_sum(b"payload 5")}


def test_payload_sum_is_xxh3_64_without_the_top_bit_so_sqlite_can_store_it(con):
    payloads = [b"p%d" % i for i in range(200)]
    raw = [xxhash.xxh3_64_intdigest(p) for p in payloads]
    assert any(r >> 63 for r in raw)  # some need the top bit cleared
    sums = [index.payload_sum(p) for p in payloads]
    assert sums == [r & PSUM_MASK for r in raw]
    assert index.payload_sum(memoryview(payloads[0])) == sums[0]
    index.publish(con, "pack-a.pack", [(cid(i), i, 1, 1, 0, s) for i, s in enumerate(sums)])
    assert index.lookup_sums(con, [cid(i) for i in range(200)]) == {
        cid(i): s for i, s in enumerate(sums)}


def test_iter_all_lists_every_row_in_pack_order(con):
    index.publish(con, "pack-b.pack", list(reversed(rows(3, 10))))
    index.publish(con, "pack-a.pack", rows(3))
    names = index.pack_names(con)
    got = [(names[p], off) for _c, p, off, *_x in index.iter_all(con)]
    assert got == [("pack-b.pack", 10_000), ("pack-b.pack", 11_000), ("pack-b.pack", 12_000),
                   ("pack-a.pack", 0), ("pack-a.pack", 1000), ("pack-a.pack", 2000)]
    first = next(index.iter_all(con))
    assert bytes(first[0]) == cid(10) and first[6] == index.payload_sum(b"payload 10")


def test_an_index_without_the_payload_checksum_is_migrated_once(tmp_path):
    path = str(tmp_path / "old.sqlite")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE packs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE chunks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL REFERENCES packs(id),
            offset INTEGER NOT NULL, raw_len INTEGER NOT NULL, stored_len INTEGER NOT NULL,
            flags INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO packs VALUES (1, 'pack-old.pack');
    """)
    old.execute("INSERT INTO chunks VALUES (?, 1, 0, 10, 10, 0)", (cid(0),))
    old.commit()
    old.close()
    con = index.connect(path)
    try:
        index.migrate(con)
        index.migrate(con)  # idempotent
        cols = [r[1] for r in con.execute("PRAGMA table_info(chunks)")]
        assert cols.count("psum") == 1
        assert index.lookup(con, cid(0)) == (1, 0, 10, 10, 0)
        assert index.lookup_sums(con, [cid(0)]) == {cid(0): None}  # old rows: full check
        index.publish(con, "pack-new.pack", rows(1, 3))
        assert index.lookup_sums(con, [cid(3)])[cid(3)] == index.payload_sum(b"payload 3")
    finally:
        con.close()
