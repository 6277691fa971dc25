"""The gallery layer: ARM-shaped galleries, image definitions, image versions and disks,
kept in SQLite beside the store.

:class:`GalleryService` is the library API (one service per resource type over
:class:`~.repository.Repository`); see docs/architecture.md, "Gallery".
"""

from .progress import ProgressEvent, TaskKind
from .repository import JobKind, JobState, ProvisioningState, ReplicationState, Repository
from .service import GalleryService

__all__ = [
    "GalleryService", "JobKind", "JobState", "ProgressEvent", "ProvisioningState",
    "ReplicationState", "Repository", "TaskKind",
]
