"""What one disk content occupies in a blob store: its chunks' records and the packs holding them.

Used by benchmarks and tools that compare a replication against copying files: the stored
bytes are what a copy of the disk's chunks must move, the pack files what ``cp`` would copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import index
from .cas import BlobStore
from .packs import REC


@dataclass(frozen=True)
class Footprint:
    digest: str
    #: distinct chunks the manifest references
    chunks: int
    #: bytes of their pack records, 32-byte headers included (padding records not counted)
    stored_bytes: int
    #: the pack files holding at least one of them (absolute paths, sorted)
    pack_paths: tuple[str, ...]


def manifest_footprint(store: BlobStore, digest: str) -> Footprint:
    """The records and pack files of the distinct chunks manifest ``digest`` references.

    Raises NotFound when there is no such manifest and IntegrityError when it is damaged;
    chunks missing from the index are not counted (``store verify`` reports them).
    """
    m = store.load_manifest(digest)
    locs = index.lookup_many(store.con, m.ids())
    names = index.pack_names(store.con)
    stored = sum(REC.size + loc[3] for loc in locs.values())
    packs = sorted({os.path.join(store.packs_dir, names[loc[0]]) for loc in locs.values()})
    return Footprint(store.check_digest(digest), len(locs), stored, tuple(packs))
