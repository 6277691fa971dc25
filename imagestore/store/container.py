"""A blob store whose packs and manifests are blobs in an Azure Blob Storage container.

Container layout (one copy slot of a blob region)::

    cas.json                   the store header (chunk size, hash, compression), as on disk
    packs/pack-<id>.pack       block blob: the same self-describing chunk records as a pack file
    packs/pack-<id>.idx        block blob: the index rows of that pack (written after it)
    manifests/<digest>.mf      block blob: the zstd-compressed manifest

and on this machine, in the region's directory of the store root::

    regions/<name>/cache/<hash of the container URL>/index.sqlite   chunk id -> location
    regions/<name>/cache/<…>/lock                                   flock, as for a local slot

**Order of writes** (the disk's write-then-publish order, with blob primitives):

1. records are appended to a pack held in memory and cut into 4 MiB blocks, each staged with
   *Put Block* (several in flight) under a block id derived from its offset and content;
2. *Put Block List* commits the blocks: only now does the pack blob exist, whole (a blob is
   never visible half-written);
3. the pack's ``.idx`` blob is uploaded (one *Put Blob*, atomic);
4. the rows are published in the local index cache (one SQLite transaction);
5. the manifest blob is uploaded last: the disk exists in the container only when all its
   chunks are there.

**Resume after a kill.** A pack's name is derived from the disk digest and its first chunk, so
a re-run of the same replication writes the same bytes under the same name; blocks a killed
run staged (uncommitted blocks survive, Azure keeps them for a week) carry the same ids and
are not sent again (*Get Block List*). A pack committed but not indexed (killed between 2 and
4) is found by :meth:`ContainerStore.sync` and indexed from its ``.idx`` blob (or, without
one, by reading the pack's records).

**The index** is a local SQLite cache of the rows in the ``.idx`` blobs -- the same schema and
code as a directory slot, so lookups, ``verify``, ``repair`` and the replicate engine's
planning work unchanged. It is derived data: :meth:`ContainerStore.sync` (run on every open:
one *List Blobs*) adds packs another host committed and drops packs that are gone; a missing
or damaged cache is rebuilt from the container. See docs/architecture.md for why the index
is not a blob with leases.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import xxhash

from ..azblob import AccountUrl, Credential, container_client, service_errors
from ..errors import Conflict, IntegrityError, NotAStore, NotFound, from_oserror
from . import index, manifest
from .cas import BlobStore
from .layout import CasConfig, config_bytes, make_config
from .lock import StoreLock
from .packs import REC, REC_MAGIC, decode_record

#: bytes per staged block of a pack blob
BLOCK_SIZE = 4 << 20
#: blocks in flight per pack writer
STAGE_THREADS = 4
#: a replication commits (and publishes) its pack every this many bytes
COMMIT_EVERY = 64 << 20
IDX_MAGIC = b"ISIX1\n"
IDX_ROW = struct.Struct("<16sQIIBq")


def cache_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:20]


def encode_idx(rows: Iterable[index.Row]) -> bytes:
    body = b"".join(IDX_ROW.pack(c, o, r, s, f, p if p is not None else -1)
                    for c, o, r, s, f, p in rows)
    return IDX_MAGIC + body + xxhash.xxh3_64_digest(body)


def decode_idx(data: bytes, where: str) -> list[index.Row]:
    body = data[len(IDX_MAGIC):-8]
    if (not data.startswith(IDX_MAGIC) or len(body) % IDX_ROW.size
            or xxhash.xxh3_64_digest(body) != data[-8:]):
        raise IntegrityError(f"{where}: damaged pack index blob")
    out = []
    for c, o, r, s, f, p in IDX_ROW.iter_unpack(body):
        out.append((c, o, r, s, f, None if p == -1 else p))
    return out


class ContainerStore(BlobStore):
    """A copy slot in a container; ``root`` is the container URL (no secrets)."""

    backend = "azure-blob"
    commit_every = COMMIT_EVERY

    def __init__(self, url: str, cfg: CasConfig, client, cache_dir: str) -> None:
        super().__init__(cache_dir, cfg)
        self.root = url
        self.url = url
        self.cache_dir = cache_dir
        self.packs_dir = f"{url}/packs"
        self.manifests_dir = f"{url}/manifests"
        self.client = client
        self._blob_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def probe(cls, account: AccountUrl, container: str, cred: Credential, cfg: CasConfig, *,
              create: bool = True, make_container: bool = False):
        """(client, config) of the slot in ``container``: reads its ``cas.json``; with
        ``create`` writes one where there is none (``make_container``: also creates the
        container). A missing container is NotFound, refused credentials AccessDenied, a
        store with another chunk size Conflict."""
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        url = account.container_url(container)
        client = container_client(account, container, cred)
        header = client.get_blob_client("cas.json")
        with service_errors(url):
            try:
                raw = header.download_blob().readall()
            except ResourceNotFoundError as e:
                missing_container = getattr(e, "error_code", "") == "ContainerNotFound"
                if missing_container and not make_container:
                    raise NotFound(f"{url}: container not found") from None
                if not create:
                    raise NotFound(f"{url}: no copy here") from None
                if missing_container:
                    try:
                        client.create_container()
                    except ResourceExistsError:
                        pass
                try:
                    header.upload_blob(config_bytes(cfg), overwrite=False)
                    return client, cfg
                except ResourceExistsError:
                    raw = header.download_blob().readall()
        have = _read_config(raw, url)
        if create and have.chunk_size != cfg.chunk_size or have.hash != cfg.hash:
            raise Conflict(f"{url}: a blob store with chunk size {have.chunk_size}, but this "
                           f"store uses {cfg.chunk_size}")
        return client, have

    @classmethod
    def attach(cls, account: AccountUrl, container: str, cred: Credential, cache_dir: str,
               cfg: CasConfig, *, create: bool, make_container: bool = False) -> ContainerStore:
        """Open the slot in ``container`` (see :meth:`probe`) and bring its index cache up to
        date."""
        client, have = cls.probe(account, container, cred, cfg, create=create,
                                 make_container=make_container)
        try:
            os.makedirs(cache_dir, exist_ok=True)
        except OSError as e:
            raise from_oserror(e, cache_dir) from None
        store = cls(account.container_url(container), have, client, cache_dir)
        store.sync()
        return store

    def lock(self, *, exclusive: bool = False, timeout: float = 600.0) -> StoreLock:
        return StoreLock(self.lock_path, exclusive=exclusive, timeout=timeout)

    # -- the index cache -----------------------------------------------------------------

    def _ensure_cache(self) -> None:
        if index.problem(self.index_path) is None:
            return
        self.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.index_path + suffix)
            except FileNotFoundError:
                pass
        con = index.connect(self.index_path)
        try:
            index.create(con)
        finally:
            con.close()

    def pack_blobs(self) -> dict[str, int]:
        """Committed pack blobs of the container: name -> size."""
        out: dict[str, int] = {}
        self.idx_blobs: set[str] = set()
        with service_errors(self.url):
            for b in self.client.list_blobs(name_starts_with="packs/"):
                n = b.name[len("packs/"):]
                if n.endswith(".pack"):
                    out[n] = b.size
                elif n.endswith(".idx"):
                    self.idx_blobs.add(n[:-4] + ".pack")
        return out

    def sync(self) -> dict:
        """Make the local index cache match the container: index packs committed since (by
        another host, or by a run killed before it published), drop rows of packs that are
        gone. A missing or damaged cache is rebuilt. Returns what changed."""
        self._ensure_cache()
        blobs = self.pack_blobs()
        con = self.con
        known = {name: pid for pid, name in index.pack_names(con).items()}
        added = dropped = 0
        for name, pid in known.items():
            if name not in blobs:
                con.execute("BEGIN IMMEDIATE")
                con.execute("DELETE FROM chunks WHERE pack=?", (pid,))
                con.execute("DELETE FROM packs WHERE id=?", (pid,))
                con.execute("COMMIT")
                dropped += 1
        for name, size in sorted(blobs.items()):
            if name in known:
                continue
            rows = self._pack_rows(name, size)
            if rows:
                index.publish(con, name, rows)
            else:  # an empty pack blob still gets a packs row, so it is not re-read
                index.publish(con, name, [])
            added += 1
        self._local.pack_names = None
        return {"packsAdded": added, "packsDropped": dropped}

    def _pack_rows(self, name: str, size: int) -> list[index.Row]:
        if name in getattr(self, "idx_blobs", set()):
            where = f"{self.packs_dir}/{name[:-5]}.idx"
            with service_errors(where):
                data = self.client.get_blob_client(f"packs/{name[:-5]}.idx").download_blob().readall()
            try:
                return decode_idx(data, where)
            except IntegrityError:
                pass  # read the pack itself
        return self._scan_rows(name, size)

    def _scan_rows(self, name: str, size: int) -> list[index.Row]:
        """Index rows of the good records of a pack blob (read whole)."""
        data = self._download(f"packs/{name}")
        rows: list[index.Row] = []
        off = 0
        while off + REC.size <= len(data):
            magic, flags, raw_len, stored_len, rid = REC.unpack_from(data, off)
            if magic != REC_MAGIC or off + REC.size + stored_len > len(data):
                break
            rec = data[off: off + REC.size + stored_len]
            try:
                decode_record(rec, rid, f"{self.packs_dir}/{name}@{off}")
                rows.append((rid, off, raw_len, stored_len, flags,
                             index.payload_sum(memoryview(rec)[REC.size:])))
            except IntegrityError:
                pass
            off += REC.size + stored_len
        return rows

    def rebuild_cache(self) -> dict:
        """Throw the local index away and rebuild it from the container."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.index_path + suffix)
            except FileNotFoundError:
                pass
        out = self.sync()
        chunks = self.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return {"store": self.url, "packs": out["packsAdded"], "chunks": chunks}

    # -- reading -------------------------------------------------------------------------

    def _download(self, blob: str, offset: int | None = None, length: int | None = None) -> bytes:
        where = f"{self.url}/{blob}"
        with service_errors(where):
            return self.client.get_blob_client(blob).download_blob(
                offset=offset, length=length, max_concurrency=1).readall()

    def pack_fd(self, pack_id: int):  # no descriptors: packs are read by range
        raise IntegrityError(f"{self.url}: packs of a blob container have no file descriptor")

    def payload_fd(self, loc: index.Location):
        raise IntegrityError(f"{self.url}: packs of a blob container cannot share blocks")

    def pack_name(self, pack_id: int) -> str:
        names = getattr(self._local, "pack_names", None)
        if names is None or pack_id not in names:
            names = index.pack_names(self.con)
            self._local.pack_names = names
        name = names.get(pack_id)
        if name is None:
            raise IntegrityError(f"{self.url}: index names pack #{pack_id} which is unknown")
        return name

    def read_pack_span(self, pack_id: int, offset: int, n: int) -> tuple[bytes, str]:
        name = self.pack_name(pack_id)
        try:
            return self._download(f"packs/{name}", offset, n), name
        except NotFound:
            raise IntegrityError(f"{self.packs_dir}/{name}: pack blob missing") from None

    def read_chunk(self, cid: bytes, loc: index.Location | None = None) -> bytes:
        if loc is None:
            loc = index.lookup(self.con, cid)
            if loc is None:
                raise IntegrityError(f"chunk {cid.hex()} is missing from {self.url}")
        pack_id, off, _raw, stored_len, _flags = loc
        buf, name = self.read_pack_span(pack_id, off, REC.size + stored_len)
        return decode_record(buf, cid, f"{self.packs_dir}/{name}@{off}")

    def read_record_raw(self, cid: bytes, loc: index.Location) -> bytes:
        return self.read_pack_span(loc[0], loc[1], REC.size + loc[3])[0]

    # -- writing packs -------------------------------------------------------------------

    def new_pack_writer(self, hint: bytes | None = None) -> ContainerPackWriter:
        """A writer for a new pack; ``hint`` (the first chunk it will hold, with the caller's
        context) makes the name deterministic, so a re-run resumes the same blob."""
        if hint is None:
            name = f"pack-{os.urandom(10).hex()}.pack"
        else:
            name = f"pack-{xxhash.xxh3_128_hexdigest(self.url.encode() + hint)[:20]}.pack"
        return ContainerPackWriter(self, name)

    # -- manifests -----------------------------------------------------------------------

    def manifest_path(self, digest: str) -> str:
        return f"{self.manifests_dir}/{digest}.mf"

    def has_manifest(self, digest: str) -> bool:
        with service_errors(self.manifest_path(digest)):
            return self.client.get_blob_client(f"manifests/{digest}.mf").exists()

    def load_manifest(self, digest: str) -> manifest.Manifest:
        digest = self.check_digest(digest)
        where = self.manifest_path(digest)
        try:
            data = self._download(f"manifests/{digest}.mf")
        except NotFound:
            raise NotFound(f"manifest {digest}: no such disk content in {self.url}") from None
        m = manifest.decode(manifest.decompress(data, where), where)
        if m.digest() != digest:
            raise IntegrityError(f"{where}: manifest content does not match its digest")
        return m

    def write_manifest(self, digest: str, data: bytes) -> None:
        """Publish (or replace) a manifest blob: one Put Blob, all or nothing."""
        with service_errors(self.manifest_path(digest)):
            self.client.get_blob_client(f"manifests/{digest}.mf").upload_blob(
                data, overwrite=True)

    def publish_manifest(self, m: manifest.Manifest,
                         before_new: Callable[[str], None] | None = None) -> str:
        digest = m.digest()
        if not self.has_manifest(digest):
            if before_new is not None:
                before_new(digest)
            self.write_manifest(digest, manifest.compress(m.encode()))
        return digest

    def remove_manifest(self, digest: str) -> bool:
        digest = self.check_digest(digest)
        from azure.core.exceptions import ResourceNotFoundError

        with service_errors(self.manifest_path(digest)):
            try:
                self.client.delete_blob(f"manifests/{digest}.mf")
                return True
            except ResourceNotFoundError:
                return False

    def list_manifests(self) -> list[str]:
        with service_errors(self.manifests_dir):
            names = [b.name for b in self.client.list_blobs(name_starts_with="manifests/")]
        return sorted(n[len("manifests/"):-3] for n in names if n.endswith(".mf"))

    def cleanup_temps(self) -> int:
        return 0

    def delete_pack(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        for blob in (f"packs/{name}", f"packs/{name[:-5]}.idx"):
            with service_errors(f"{self.url}/{blob}"):
                try:
                    self.client.delete_blob(blob)
                except ResourceNotFoundError:
                    pass


def _read_config(raw: bytes, url: str) -> CasConfig:
    import json

    try:
        doc = json.loads(raw)
        return make_config(int(doc["chunkSize"]), str(doc["compression"]))
    except Exception as e:  # noqa: BLE001 - any damage is one message
        raise NotAStore(f"{url}/cas.json: bad store header ({e})") from None


class ContainerPackWriter:
    """Builds one pack blob from staged blocks; the :class:`~imagestore.store.packs.PackWriter`
    interface (append, sync, close, discard) used by the replicate engine's RecordSink."""

    def __init__(self, store: ContainerStore, name: str) -> None:
        self.store = store
        self.name = name
        self.path = f"{store.packs_dir}/{name}"
        self.blob = store.client.get_blob_client(f"packs/{name}")
        self.buf = bytearray()
        self.size = 0
        self.block_start = 0
        self.blocks: list[str] = []
        self.rows: list[index.Row] = []
        self.pending: list[Future] = []
        self.pool = ThreadPoolExecutor(max_workers=STAGE_THREADS)
        self.bytes_staged = 0
        self.bytes_resumed = 0
        from azure.core.exceptions import ResourceNotFoundError

        with service_errors(self.path):
            try:
                _c, staged = self.blob.get_block_list("uncommitted")
                self.existing = {b.id: b.size for b in staged}
            except ResourceNotFoundError:
                self.existing = {}

    def append(self, cid: bytes, raw_len: int, payload: bytes | memoryview, flags: int) -> int:
        off = self.size
        self.buf += REC.pack(REC_MAGIC, flags, raw_len, len(payload), cid)
        self.buf += payload
        self.size += REC.size + len(payload)
        self.rows.append((cid, off, raw_len, len(payload), flags, index.payload_sum(payload)))
        while len(self.buf) >= BLOCK_SIZE:
            self._stage(bytes(self.buf[:BLOCK_SIZE]))
            del self.buf[:BLOCK_SIZE]
        return off

    def _stage(self, data: bytes) -> None:
        bid = f"{self.block_start:016x}{xxhash.xxh3_64_hexdigest(data)}"
        self.blocks.append(bid)
        self.block_start += len(data)
        if self.existing.get(bid) == len(data):
            self.bytes_resumed += len(data)
            return
        while len(self.pending) >= STAGE_THREADS * 2:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._put_block, bid, data))

    def _put_block(self, bid: str, data: bytes) -> None:
        with service_errors(self.path):
            self.blob.stage_block(bid, data, length=len(data))
        self.bytes_staged += len(data)

    def sync(self) -> None:
        """Commit the pack (all blocks staged first), then write its ``.idx`` blob."""
        from azure.storage.blob import BlobBlock

        if self.buf:
            self._stage(bytes(self.buf))
            self.buf = bytearray()
        for f in self.pending:
            f.result()
        self.pending = []
        with service_errors(self.path):
            self.blob.commit_block_list([BlobBlock(block_id=b) for b in self.blocks])
            self.store.client.get_blob_client(f"packs/{self.name[:-5]}.idx").upload_blob(
                encode_idx(self.rows), overwrite=True)

    def close(self) -> None:
        for f in self.pending:
            f.cancel()
        self.pool.shutdown(wait=True)

    def discard(self) -> None:
        """Nothing was committed: staged blocks are never visible and expire by themselves."""
        self.close()


def block_id_bytes(bid: str) -> bytes:
    return base64.b64encode(bid.encode())
