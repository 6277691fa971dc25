"""The typed rows the repository returns (frozen dataclasses), and :func:`dumps`, the JSON
of the ``props``/``tags``/``payload`` columns."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from .. import ids
from .states import JobKind, ProvisioningState, ReplicationState


class Row:
    """Typed row; ``row["column"]`` also works, for the JSON shaping in :mod:`..resources`."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def keys(self) -> list[str]:
        """The column names."""
        return [f.name for f in fields(self)]  # type: ignore[arg-type]

    @classmethod
    def from_sql(cls, row: Any):  # noqa: ANN206 - the subclass
        """The typed row of a database row (columns it does not have are ignored)."""
        names = set(row.keys())
        if "subscription" in names and row["subscription"] is None:
            names.discard("subscription")  # a resource group without a row: the local one
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in names})  # type: ignore[arg-type]


class ResourceRow(Row):
    """A row of an ARM resource: its properties are stored as JSON in ``props``."""

    props: str

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class GalleryRow(ResourceRow):
    """A gallery."""
    id: int
    rg: str
    name: str
    location: str
    tags: str
    props: str
    created: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class DefinitionRow(ResourceRow):
    """An image definition, joined with its gallery (``rg``, ``gallery``)."""

    id: int
    gallery_id: int
    name: str
    location: str
    tags: str
    props: str
    publisher: str
    offer: str
    sku: str
    created: str
    rg: str
    gallery: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class VersionRow(ResourceRow):
    """An image version, joined with its definition and gallery."""

    id: int
    image_id: int
    name: str
    major: int
    minor: int
    patch: int
    location: str
    tags: str
    props: str
    provisioning_state: str
    source_version_id: str | None
    created: str
    rg: str
    gallery: str
    image: str
    image_props: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION

    @property
    def definition_properties(self) -> dict:
        """The stored ``props`` JSON of the version's definition."""
        return json.loads(self.image_props)

    @property
    def state(self) -> ProvisioningState:
        """provisioningState as an Enum."""
        return ProvisioningState(self.provisioning_state)

    @property
    def label(self) -> str:
        """``gallery/definition/version``, as messages name it."""
        return f"{self.gallery}/{self.image}/{self.name}"


@dataclass(frozen=True)
class VersionDisk(Row):
    """One disk image of a version; ``lun`` -1 is the OS disk. ``digest`` is empty for a
    shallow disk (``shallow_path`` and ``fingerprint`` are set instead)."""

    lun: int
    digest: str
    virtual_size: int
    allocated_bytes: int
    data_bytes: int
    stored_bytes: int
    host_caching: str
    source_uri: str | None
    source_format: str | None
    shallow_path: str | None = None
    fingerprint: str | None = None
    version_id: int | None = None
    #: the snapshot (ARM id) this disk image was made from, if any
    source_id: str | None = None


@dataclass(frozen=True)
class VersionRegion(Row):
    """The replication state of a version in one target region."""

    version_id: int
    region: str
    state: str
    progress: int
    details: str
    gen: int
    bytes_done: int
    bytes_total: int
    bytes_sent: int
    updated: str | None

    @property
    def replication_state(self) -> ReplicationState:
        """The state as an Enum."""
        return ReplicationState(self.state)


@dataclass(frozen=True)
class DiskRow(ResourceRow):
    """A disk resource (a file created from a version)."""
    id: int
    rg: str
    name: str
    location: str
    tags: str
    props: str
    path: str
    format: str
    created: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class LinkedParentRow(Row):
    """A read-only materialized copy of a version disk (manifest ``digest``) in a region, the
    parent (backing file) of linked disks."""
    id: int
    location: str
    digest: str
    format: str
    path: str
    virtual_size: int
    created: str


@dataclass(frozen=True)
class SnapshotRow(ResourceRow):
    """A snapshot: one disk's bytes at one moment, captured as manifest ``digest`` into copy 0
    of its region; ``source_id`` is the ARM id of the disk (or snapshot) it was taken from."""
    id: int
    rg: str
    name: str
    location: str
    tags: str
    props: str
    digest: str
    virtual_size: int
    allocated_bytes: int
    data_bytes: int
    stored_bytes: int
    source_format: str | None
    source_id: str
    created: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class ManagedImageRow(ResourceRow):
    """A managed image (``Microsoft.Compute/images``); its disks are :class:`ManagedImageDisk`."""
    id: int
    rg: str
    name: str
    location: str
    tags: str
    props: str
    created: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class ManagedImageDisk(Row):
    """One disk of a managed image (``lun`` -1: the OS disk): manifest ``digest``, and the
    resource it came from (``source_kind`` ``snapshot`` or ``managedDisk``, ``source_id``)."""
    lun: int
    digest: str
    virtual_size: int
    allocated_bytes: int
    data_bytes: int
    stored_bytes: int
    source_format: str | None
    source_kind: str
    source_id: str
    image_id: int | None = None


@dataclass(frozen=True)
class JobRow(Row):
    """A queued or running job."""
    id: int
    kind: str
    version_id: int | None
    payload: str
    state: str
    attempts: int
    worker_pid: int | None
    error: str | None
    created: str
    started: str | None

    @property
    def job_kind(self) -> JobKind:
        """The kind as an Enum."""
        return JobKind(self.kind)

    @property
    def data(self) -> dict:
        """The payload JSON."""
        return json.loads(self.payload or "{}")


@dataclass(frozen=True)
class LeaseRow(Row):
    """The worker lease as stored."""
    pid: int
    host: str
    heartbeat: float
    started: str


@dataclass(frozen=True)
class OperationRow(Row):
    """A long-running operation of the REST API (its status resource)."""
    id: str
    kind: str
    resource_id: str
    location: str
    version_id: int | None
    status: str
    error: str | None
    created: str
    ended: str | None

    @property
    def error_json(self) -> dict | None:
        """The stored ARM error object, or None."""
        return json.loads(self.error) if self.error else None


@dataclass(frozen=True)
class VmRow(ResourceRow):
    """A virtual machine (or, with ``vmss_id``, a scale set instance): ARM properties and its
    local facts in ``props``."""
    id: int
    rg: str
    name: str
    location: str
    tags: str
    props: str
    vmss_id: int | None
    instance_id: int | None
    created: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class VmssRow(ResourceRow):
    """A virtual machine scale set."""
    id: int
    rg: str
    name: str
    location: str
    tags: str
    props: str
    created: str
    #: the subscription of the resource group (the local one when it has no row)
    subscription: str = ids.SUBSCRIPTION


@dataclass(frozen=True)
class ResourceGroupRow(Row):
    """A resource group with a row (migration ``0008_resource_groups``): its name is unique
    in the store; ``subscription_id`` is the subscription it (and all it holds) belongs to."""
    id: int
    subscription_id: str
    name: str
    location: str
    tags: str
    created: str



@dataclass(frozen=True)
class CaptureIntentRow(Row):
    """The manifests (``digests``, a JSON list) a capture by ``pid`` on ``host`` publishes in
    ``region`` of the store at ``store`` before the rows that reference them exist;
    ``created`` is the database clock's epoch seconds."""
    id: int
    host: str
    pid: int
    region: str
    store: str
    digests: str
    created: float


def dumps(obj: Any) -> str:
    """JSON as stored in the ``props``/``tags``/``payload`` columns."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=False)
