"""Capture intents: what tells a manifest a killed capture left behind from one a user
published on purpose (``store ingest``).

A capture (image version, snapshot, managed image, a worker's queued capture) publishes its
manifests before the row that references them. Just before it publishes a manifest new to
the store, it commits a ``capture_intents`` row naming the digest, the region and its own
process (host id as the worker lease spells it, pid); the transaction that commits the
resource's rows deletes the intent, and a capture that fails removes its manifests and then
the intent. A kill in between leaves the intent behind: :func:`resume_abandoned` (run by
``store gc`` and by the worker) removes, for every intent whose process is gone, the
manifests it names that no row references, and then the intent — one transaction, so a kill
during it leaves the intent to the next run. The manifests' chunks are garbage for the same
gc. A manifest without an intent is never touched.

Which intents a store acts on: those of its own ``local`` region (the intent records the
capturing store's root: stores sharing a PostgreSQL gallery each have their own ``local``)
and those of shared regions. Whose process is gone: on this host, the pid no longer runs (a
zombie counts as gone); an intent of another host is abandoned once it is older than
:data:`FOREIGN_TTL` by the database's clock — a pid means nothing there, and a capture does
not heartbeat. Should a capture outlive that, its commit finds the manifest gone and fails
cleanly ("run the command again"), as it does after a concurrent deletion.
"""

from __future__ import annotations

import json
import os
import re

from ..errors import ImagestoreError, NotFound
from ..fsutil import pid_alive
from ..home import DEFAULT_REGION
from .placement import Placement
from .repository import CaptureIntentRow, Repository

#: an intent of another host is abandoned after this many seconds (database clock)
FOREIGN_TTL = 24 * 3600.0


def hostname() -> str:
    """This host's id, as the worker lease spells it (``$IMAGESTORE_HOST_ID`` or the name)."""
    from ..worker.lease import hostname as lease_host  # the lease owns the definition

    return lease_host()


class CaptureIntent(list):
    """The digests one capture published (a list, as the capture functions fill it) and the
    intent row that names them while they are not referenced yet."""

    def __init__(self, repo: Repository, placement: Placement, region: str) -> None:
        super().__init__()
        self.repo = repo
        self.region = region
        self.root = os.path.realpath(placement.home.root)
        self.id: int | None = None

    def before_publish(self, digest: str) -> None:
        """Record ``digest`` in the intent (committed) before its manifest is published."""
        if digest in self:
            return
        names = json.dumps([*self, digest])
        with self.repo.transaction():
            if self.id is None:
                self.id = self.repo.insert_capture_intent(hostname(), os.getpid(), self.region,
                                                          self.root, names)
            else:
                self.repo.set_capture_intent_digests(self.id, names)
        self.append(digest)

    def end(self) -> None:
        """(In a transaction: the one committing the rows that reference the digests.) The
        capture is done; its intent goes."""
        if self.id is not None:
            self.repo.delete_capture_intent(self.id)

    def abandon(self, store) -> None:  # noqa: ANN001 - a BlobStore
        """The capture failed: remove the manifests it published that nothing references,
        then the intent. When the database cannot be written now, both stay for
        :func:`resume_abandoned` (this process will be gone by then)."""
        try:
            with self.repo.transaction():
                for d in self:
                    if not self.repo.digest_referenced(d):
                        store.remove_manifest(d)
                self.end()
        except (ImagestoreError, OSError):
            return
        self.id = None


_DIGEST = re.compile(r"[0-9a-f]{32}")


def _names(doc: str) -> list[str]:
    try:
        names = json.loads(doc)
    except ValueError:
        return []
    return [d for d in names if isinstance(d, str)] if isinstance(names, list) else []


def _abandoned(repo: Repository, root: str, row: CaptureIntentRow) -> bool:
    """Whether the intent's process is gone, and this store can reach what it published:
    a ``local`` region is the capturing store's own directory."""
    if row["region"].lower() == DEFAULT_REGION and row["store"] != root:
        return False
    if row["host"] == hostname():
        return not pid_alive(int(row["pid"]))
    return repo.now() - float(row["created"]) > FOREIGN_TTL


def resume_abandoned(repo: Repository, placement: Placement, *,
                     dry_run: bool = False) -> list[str]:
    """Remove what the captures of dead processes published and no row references, and
    their intents; returns the digests removed (``dry_run``: that would be, removing
    nothing)."""
    removed: list[str] = []
    root = os.path.realpath(placement.home.root)
    for r in repo.capture_intents():
        if not _abandoned(repo, root, r):
            continue
        # a malformed entry (never written by a capture) is skipped, not fatal to gc
        digests = [d for d in _names(r["digests"]) if _DIGEST.fullmatch(d)]
        try:
            store, close = placement.open_source_store(r["region"])
        except NotFound:  # the region was deleted, its data with it
            if not dry_run:
                with repo.transaction():
                    repo.delete_capture_intent(r.id)
            continue
        if dry_run:
            try:
                removed += [d for d in digests
                            if not repo.digest_referenced(d) and store.has_manifest(d)]
            finally:
                if close:
                    store.close()
            continue
        try:
            with repo.transaction():
                for d in digests:
                    if not repo.digest_referenced(d) and store.remove_manifest(d):
                        removed.append(d)
                repo.delete_capture_intent(r.id)
        finally:
            if close:
                store.close()
    return removed
