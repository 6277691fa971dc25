"""``gc`` for a copy slot in a blob container (``store/container.py``).

Under this host's exclusive lock on the slot, after bringing the index cache up to date:

1. the live set is every chunk of every manifest blob;
2. a pack blob none of whose records is live is deleted (pack, then its ``.idx``), then its
   rows;
3. a pack blob whose live records are less than half of it is compacted: the live records are
   written to a new pack blob (staged, committed, ``.idx``), its rows replace the old ones in
   one transaction, and only then is the old pack deleted;
4. unindexed chunk rows are dropped.

Another host's replication into the same container is not covered by this host's lock: a
pack it committed moments ago but has not yet referenced by a manifest would look dead.
Pack blobs modified within ``GRACE_SECONDS`` (default one hour, environment
``IMAGESTORE_BLOB_GC_GRACE_SECONDS``) are therefore left alone, the way ``git gc`` keeps
recent loose objects.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from . import index
from .container import ContainerStore
from .maintenance import GcReport
from .packs import REC

GRACE_SECONDS = 3600.0


def _grace() -> float:
    try:
        return float(os.environ.get("IMAGESTORE_BLOB_GC_GRACE_SECONDS", GRACE_SECONDS))
    except ValueError:
        return GRACE_SECONDS


def gc_container(store: ContainerStore, *, timeout: float = 600.0,
                 dry_run: bool = False) -> GcReport:
    rep = GcReport(dry_run=dry_run)
    with store.lock(exclusive=True, timeout=timeout):
        store.sync()
        live: set[bytes] = set()
        for d in store.list_manifests():
            live.update(store.load_manifest(d).ids())
        con = store.con
        now = datetime.now(UTC)
        ages = {}
        for b in store.client.list_blobs(name_starts_with="packs/"):
            if b.name.endswith(".pack"):
                ages[b.name[len("packs/"):]] = (now - b.last_modified).total_seconds()
        grace = _grace()
        for pid, name in sorted(index.pack_names(con).items()):
            rows = [(bytes(r[0]), *r[1:]) for r in con.execute(
                "SELECT id, offset, raw_len, stored_len, flags, psum FROM chunks WHERE pack=?",
                (pid,))]
            total = sum(REC.size + r[3] for r in rows)
            keep = [r for r in rows if r[0] in live]
            kept = sum(REC.size + r[3] for r in keep)
            if ages.get(name, 0.0) < grace or (keep and kept * 2 >= total):
                continue
            rep.removed_chunks += len(rows) - len(keep)
            rep.freed_bytes += total - kept
            if keep:
                rep.rewritten_packs += 1
            else:
                rep.removed_packs += 1
            if dry_run:
                continue
            if keep:
                w = store.new_pack_writer()
                try:
                    new_rows = []
                    for cid, off, raw_len, stored_len, flags, _ps in keep:
                        rec = store.read_pack_span(pid, off, REC.size + stored_len)[0]
                        store.read_chunk(cid, (pid, off, raw_len, stored_len, flags))
                        payload = memoryview(rec)[REC.size:]
                        noff = w.append(cid, raw_len, payload, flags)
                        new_rows.append((cid, noff, raw_len, stored_len, flags,
                                         index.payload_sum(payload)))
                    w.sync()
                finally:
                    w.close()
                index.publish(con, w.name, new_rows, replace=True)
            store.delete_pack(name)
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM chunks WHERE pack=?", (pid,))
            con.execute("DELETE FROM packs WHERE id=?", (pid,))
            con.execute("COMMIT")
            store._local.pack_names = None
    return rep
