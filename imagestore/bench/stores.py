"""Stores for benchmarks, through the public store API (Home, ingest, materialize)."""

from __future__ import annotations

from ..formats import open_disk
from ..home import Home
from ..store.cas import BlobStore
from ..store.ingest import IngestResult, ingest
from ..store.layout import make_config
from ..store.materialize import MaterializeResult, materialize
from .tools import rm


def new_store(root: str, chunk_size: str | int | None = None,
              compression: str | None = None) -> tuple[Home, BlobStore]:
    """A fresh store at ``root`` (removed first); returns (Home, its local BlobStore)."""
    rm(root)
    home = Home.open(root, cfg=make_config(chunk_size, compression))
    return home, home.blob_store()


def ingest_path(store: BlobStore, path: str, threads: int) -> IngestResult:
    """Capture the disk image at ``path`` into ``store``."""
    reader = open_disk(path)
    try:
        return ingest(store, reader, threads=threads)
    finally:
        reader.close()


def ingest_file(root: str, path: str, threads: int, *, fresh: bool = True,
                chunk_size: str | int | None = None) -> IngestResult:
    """Capture ``path`` into the store at ``root`` (a new one when ``fresh``)."""
    home = new_store(root, chunk_size)[0] if fresh else Home.open(root)
    try:
        return ingest_path(home.blob_store(), path, threads)
    finally:
        home.close()


def materialize_file(root: str, digest: str, out: str, fmt: str, threads: int) -> MaterializeResult:
    """Write disk ``digest`` of the store at ``root`` to ``out`` (replaced if it exists)."""
    home = Home.open(root, create=False)
    try:
        return materialize(home.blob_store(), digest, out, fmt=fmt, overwrite=True, threads=threads)
    finally:
        home.close()


def packs_dir(root: str) -> str:
    """The pack directory of the local region of the store at ``root`` (what is read when a
    disk is created, so what a cold run drops from the cache)."""
    home = Home.open(root, create=False)
    try:
        return home.blob_store().packs_dir
    finally:
        home.close()
