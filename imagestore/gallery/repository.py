"""The gallery repository: every SQL statement and every state change of the gallery database
(``gallery.sqlite``, or PostgreSQL with ``IMAGESTORE_DATABASE_URL``).

Nothing else in the package talks to the database. The SQL is written once, in SQLite's style
(``?`` placeholders); :mod:`.backends` runs it on either backend. The services above it (:mod:`.galleries`,
:mod:`.definitions`, :mod:`.versions`, :mod:`.disks`, :mod:`.replication`) and the worker
(:mod:`imagestore.worker`) get typed rows (frozen dataclasses) and name states by Enum.

**Transactions.** A method that changes rows runs inside the caller's
:meth:`Repository.transaction` (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any
exception), so a service composes several changes into one atomic step. Reads run outside one
(WAL: a consistent snapshot per statement).

**States** are stored as the strings of the Enums below (the values are the stored strings,
``Queued`` included, so databases written by earlier versions read unchanged).

**Layout.** The SQL lives in :mod:`.repo`, one module per aggregate (galleries and
definitions, versions, soft-delete markers, version disks, version regions, disks, linked
parents, snapshots and managed images, capture intents, jobs and the worker lease,
operations, compute, resource groups); the typed rows in :mod:`.repo.rows`, the Enums in :mod:`.repo.states`. This
module is the facade: :class:`Repository` composes the parts, and every name callers imported
from here before the split still imports from here.

**Why mixins, not delegation.** The parts are not separate objects: they share one connection
and one transaction (a service runs ``repo.insert_version(…)`` and ``repo.queue_version_job(…)``
inside the same ``with repo.transaction()``), and some call each other (deleting a version
cancels its queued jobs; failing a region settles the version's provisioning state). As
mixins over :class:`~.repo.base.RepositoryBase` each part is a plain class whose methods use
``self.con``, a dependency between parts is a base class (``VersionsMixin(JobsMixin)``), and
``repo.method()`` keeps working for every caller with no forwarding layer. Delegation would
need a forwarding method per public method (118) or a ``__getattr__`` that hides them
from readers and tools.
"""

from __future__ import annotations

from .repo.artifacts import ArtifactsMixin
from .repo.base import RepositoryBase
from .repo.capture_intents import CaptureIntentsMixin
from .repo.compute import ComputeMixin
from .repo.disks import DisksMixin
from .repo.galleries import DefinitionsMixin, GalleriesMixin
from .repo.jobs import JobsMixin
from .repo.linked_parents import LinkedParentsMixin
from .repo.operations import OperationsMixin
from .repo.regions import VersionRegionsMixin
from .repo.resource_groups import ResourceGroupsMixin
from .repo.rows import (
    CaptureIntentRow,
    DefinitionRow,
    DiskRow,
    GalleryRow,
    JobRow,
    LeaseRow,
    LinkedParentRow,
    ManagedImageDisk,
    ManagedImageRow,
    OperationRow,
    ResourceGroupRow,
    SnapshotRow,
    VersionDisk,
    VersionRegion,
    VersionRow,
    VmRow,
    VmssRow,
    dumps,
)
from .repo.soft_deleted import SoftDeletedMixin
from .repo.states import JobKind, JobState, ProvisioningState, ReplicationState
from .repo.version_disks import VersionDisksMixin
from .repo.versions import VersionsMixin

__all__ = [
    "CaptureIntentRow", "DefinitionRow", "DiskRow", "GalleryRow", "JobKind", "JobRow", "JobState", "LeaseRow",
    "LinkedParentRow", "ManagedImageDisk", "ManagedImageRow", "OperationRow",
    "ProvisioningState", "ReplicationState", "Repository", "ResourceGroupRow", "SnapshotRow",
    "VersionDisk", "VersionRegion", "VersionRow", "VmRow", "VmssRow", "dumps",
]

class Repository(
    ResourceGroupsMixin,
    DefinitionsMixin,
    GalleriesMixin,
    VersionRegionsMixin,
    VersionDisksMixin,
    SoftDeletedMixin,
    VersionsMixin,
    JobsMixin,
    OperationsMixin,
    DisksMixin,
    LinkedParentsMixin,
    ArtifactsMixin,
    ComputeMixin,
    CaptureIntentsMixin,
    RepositoryBase,
):
    """The gallery database of one store, opened and migrated: ``db_path`` is the SQLite file
    (``<store>/gallery.sqlite``) or a ``postgresql://`` URL (see :func:`.backends.locate`).
    Every method comes from one part in :mod:`.repo`; see the module docstring."""
