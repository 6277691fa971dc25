"""Capture: the source files of an image version -> disk records (manifests in a blob store,
or, for a Shallow version, the source path and its fingerprint).

A capture publishes manifests before the version's rows exist; the caller passes a
``published`` list that collects the digests new to the store, and removes them again when
the version is not committed (see :meth:`.versions.Versions.create`). When that list is a
:class:`.capture_intents.CaptureIntent`, each digest is recorded in the database before its
manifest is published, so that ``store gc`` removes what a killed capture left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from ..formats import open_disk
from ..store.cas import BlobStore
from ..store.domains import HOME_DOMAIN, Domain
from ..store.ingest import IngestResult, ingest
from . import resources, shallow
from .capture_intents import CaptureIntent
from .progress import Observer, TaskKind, TaskProgress
from .repository import VersionDisk, dumps

OS_LUN = -1


def source_uri(path: str) -> str:
    """What a version records as a disk's source: a ``file://`` URI, or a blob's URL without
    its query string (a SAS signature is a secret)."""
    if path.lower().startswith(("https://", "http://")):
        return path.split("?", 1)[0]
    return resources.file_uri(path)


def source_path(uri: str) -> str:
    """A path or ``file://`` URI -> a path (a blob URL stays a URL)."""
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    return uri


@dataclass(frozen=True)
class Source:
    """One disk source of a version: its LUN (-1 for the OS disk), the URI as given, the path."""

    lun: int
    uri: str
    path: str

    @property
    def label(self) -> str:
        """``os disk`` or ``data disk lun N`` (progress subjects)."""
        return "os disk" if self.lun < 0 else f"data disk lun {self.lun}"

    def to_json(self) -> list:
        """As stored in a queued capture job's payload."""
        return [self.lun, self.uri, self.path]

    @classmethod
    def from_json(cls, item: list) -> Source:
        """A source as stored in a job payload."""
        lun, uri, path = item
        return cls(int(lun), str(uri), str(path))


def host_caching(lun: int) -> str:
    """The default hostCaching of a disk image: ReadWrite for the OS disk, None for data."""
    return "ReadWrite" if lun < 0 else "None"


def check_sources(sources: list[Source], allow_parent_dir: str | None,
                  source_format: str = "auto") -> None:
    """Open every source as a disk (header checks only), for a capture that runs later.
    ``source_format``: "auto" (detect, refuse non-disks) or "raw" (see ``open_disk``)."""
    for s in sources:
        open_disk(s.path, allow_parent_dir=allow_parent_dir, source_format=source_format).close()


def shallow_disks(sources: list[Source], allow_parent_dir: str | None,
                  source_format: str = "auto") -> list[VersionDisk]:
    """Disk records of a Shallow version: sizes and formats read from the headers, and each
    source's fingerprint; nothing is copied."""
    out = []
    for s in sources:
        if s.path.lower().startswith(("https://", "http://")):
            from ..errors import InvalidArgument

            raise InvalidArgument(f"{s.uri.split('?', 1)[0]}: Shallow replication references a "
                                  f"local file; a blob source needs Full", target="replicationMode")
        r = open_disk(s.path, allow_parent_dir=allow_parent_dir, source_format=source_format)
        try:
            vsize, fmt = r.virtual_size, r.format
        finally:
            r.close()
        real = os.path.realpath(s.path)
        out.append(VersionDisk(
            lun=s.lun, digest="", virtual_size=vsize, allocated_bytes=0, data_bytes=0,
            stored_bytes=0, host_caching=host_caching(s.lun),
            source_uri=resources.file_uri(s.path), source_format=fmt, shallow_path=real,
            fingerprint=dumps(shallow.fingerprint(real))))
    return out


def _recorder(published: list[str]) -> Callable[[str], None] | None:
    """What ingest calls before publishing a new manifest: a capture intent records the
    digest there (:mod:`.capture_intents`); a plain list records nothing."""
    return published.before_publish if isinstance(published, CaptureIntent) else None


def capture(store: BlobStore, sources: list[Source], *, threads: int,
            observer: Observer | None, allow_parent_dir: str | None,
            published: list[str], source_format: str = "auto",
            domain: Domain = HOME_DOMAIN) -> list[VersionDisk]:
    """Ingest every source into ``store`` in the dedup ``domain`` of the target's tenant
    (:mod:`.dedup`); digests new to the store are appended to ``published``. Every source is
    opened (and checked) before the first byte is stored."""
    before = set(store.list_manifests())
    out: list[VersionDisk] = []
    with ExitStack() as stack:
        readers = []
        for s in sources:
            r = open_disk(s.path, allow_parent_dir=allow_parent_dir, source_format=source_format)
            stack.callback(r.close)
            readers.append((s, r))
        for s, r in readers:
            task = TaskProgress(observer, TaskKind.CAPTURE, s.label)
            try:
                res: IngestResult = ingest(store, r, threads=threads, progress=task,
                                           domain=domain, before_publish=_recorder(published))
            finally:
                task.close()
            if res.digest not in before and res.digest not in published:
                published.append(res.digest)
            out.append(VersionDisk(
                lun=s.lun, digest=res.digest, virtual_size=res.virtual_size,
                allocated_bytes=res.allocated_bytes, data_bytes=res.data_bytes,
                stored_bytes=res.stored_bytes, host_caching=host_caching(s.lun),
                source_uri=source_uri(s.path), source_format=res.source_format))
    return out


def capture_file(store: BlobStore, path: str, *, source_format: str, label: str,
                 threads: int, observer: Observer | None, published: list[str],
                 allow_parent_dir: str | None = None,
                 domain: Domain = HOME_DOMAIN) -> IngestResult:
    """Ingest one disk file as it is now (a snapshot or managed image of a disk), in the
    dedup ``domain`` of the target's tenant (:mod:`.dedup`); its digest is appended to ``published`` when it is new to the store. A file that changes while it is
    read publishes nothing (``SourceChanged``)."""
    before = set(store.list_manifests())
    r = open_disk(path, allow_parent_dir=allow_parent_dir, source_format=source_format)
    try:
        task = TaskProgress(observer, TaskKind.CAPTURE, label)
        try:
            res = ingest(store, r, threads=threads, progress=task, domain=domain,
                         before_publish=_recorder(published))
        finally:
            task.close()
    finally:
        r.close()
    if res.digest not in before and res.digest not in published:
        published.append(res.digest)
    return res
