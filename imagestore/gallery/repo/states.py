"""The states the gallery database stores, as Enums (the values are the stored strings,
``Queued`` included, so databases written by earlier versions read unchanged)."""

from __future__ import annotations

from enum import StrEnum


class ProvisioningState(StrEnum):
    """``properties.provisioningState`` of an image version."""

    CREATING = "Creating"
    UPDATING = "Updating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ReplicationState(StrEnum):
    """The replication state of a version in one target region, as stored.

    ``Queued`` is imagestore's own state (work not started yet); the ARM JSON renders it in
    the SDK's vocabulary (see :mod:`..resources`)."""

    QUEUED = "Queued"
    REPLICATING = "Replicating"
    COMPLETED = "Completed"
    FAILED = "Failed"

    @property
    def pending(self) -> bool:
        """Work for this region is still to be done."""
        return self in (ReplicationState.QUEUED, ReplicationState.REPLICATING)


class JobKind(StrEnum):
    """What a queued job does: bring a version's regions to their copies, or reclaim space."""

    VERSION = "version"
    GC = "gc"
    #: a deleted version's manifests still to unpublish (version_data.unreference)
    UNREFERENCE = "unreference"


class JobState(StrEnum):
    """A job waits in the queue, or a worker runs it."""
    QUEUED = "queued"
    RUNNING = "running"
