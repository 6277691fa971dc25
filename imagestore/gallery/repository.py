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
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from ..errors import NotFound
from . import db, ids
from .backends import Database
from .validate import iso, now_utc

# -- states --------------------------------------------------------------------------------


class ProvisioningState(StrEnum):
    """``properties.provisioningState`` of an image version."""

    CREATING = "Creating"
    UPDATING = "Updating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ReplicationState(StrEnum):
    """The replication state of a version in one target region, as stored.

    ``Queued`` is imagestore's own state (work not started yet); the ARM JSON renders it in
    the SDK's vocabulary (see :mod:`.resources`)."""

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


# -- rows ----------------------------------------------------------------------------------


class _Row:
    """Typed row; ``row["column"]`` also works, for the JSON shaping in :mod:`.resources`."""

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


@dataclass(frozen=True)
class GalleryRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class DefinitionRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class VersionRow(_Row):
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
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)

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
class VersionDisk(_Row):
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
class VersionRegion(_Row):
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
class DiskRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class LinkedParentRow(_Row):
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
class SnapshotRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class ManagedImageRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class ManagedImageDisk(_Row):
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
class JobRow(_Row):
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
class LeaseRow(_Row):
    """The worker lease as stored."""
    pid: int
    host: str
    heartbeat: float
    started: str


@dataclass(frozen=True)
class OperationRow(_Row):
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
class VmRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class VmssRow(_Row):
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

    @property
    def properties(self) -> dict:
        """The stored ``props`` JSON."""
        return json.loads(self.props)


@dataclass(frozen=True)
class ResourceGroupRow(_Row):
    """A resource group with a row (migration ``0008_resource_groups``): its name is unique
    in the store; ``subscription_id`` is the subscription it (and all it holds) belongs to."""
    id: int
    subscription_id: str
    name: str
    location: str
    tags: str
    created: str


def dumps(obj: Any) -> str:
    """JSON as stored in the ``props``/``tags``/``payload`` columns."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=False)


def _sub_of(table: str) -> str:
    """A select column: the subscription of ``table``'s resource group (NULL without a row)."""
    return (f"(SELECT r.subscription_id FROM resource_groups r WHERE r.name = {table}.rg) "
            f"AS subscription")


def _select(table: str) -> str:
    """``SELECT`` every column of ``table`` and its subscription ``FROM table``."""
    return f"SELECT {table}.*, {_sub_of(table)} FROM {table} "


_G_SQL = _select("galleries")
_I_SQL = (
    f"SELECT i.*, g.rg AS rg, g.name AS gallery, {_sub_of('g')} FROM images i "
    "JOIN galleries g ON g.id = i.gallery_id "
)
_V_SQL = (
    "SELECT v.*, g.rg AS rg, g.name AS gallery, i.name AS image, i.props AS image_props, "
    f"{_sub_of('g')} "
    "FROM versions v JOIN images i ON i.id = v.image_id JOIN galleries g ON g.id = i.gallery_id "
)
_V_ORDER = " ORDER BY g.rg, g.name, i.name, v.major, v.minor, v.patch"
#: soft-deleted versions with the time they were deleted (``sd_deleted``)
_SD_SQL = (_V_SQL.replace(" FROM versions v ", ", s.deleted AS sd_deleted FROM versions v ", 1)
           + "JOIN soft_deleted_versions s ON s.version_id = v.id ")
#: leaves soft-deleted versions out (a condition on ``versions v``)
_ACTIVE = " AND NOT EXISTS (SELECT 1 FROM soft_deleted_versions s WHERE s.version_id = v.id)"
_PENDING = (ReplicationState.QUEUED.value, ReplicationState.REPLICATING.value)


class Repository:
    """The gallery database of one store, opened and migrated: ``db_path`` is the SQLite file
    (``<store>/gallery.sqlite``) or a ``postgresql://`` URL (see :func:`.backends.locate`)."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.con: Database = db.connect(db_path)

    @classmethod
    def open_readonly(cls, db_path: str) -> Repository:
        """The database opened read-only and not migrated (for reports such as ``store
        verify``). A SQLite file must exist."""
        repo = cls.__new__(cls)
        repo.db_path = db_path
        repo.con = db.open_readonly(db_path)
        return repo

    @classmethod
    def on(cls, con: Database) -> Repository:
        """A repository over a connection someone else opened (and closes)."""
        repo = cls.__new__(cls)
        repo.db_path = con.label
        repo.con = con
        return repo

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.con.backend

    def now(self) -> float:
        """The database's clock in epoch seconds (the same for every host sharing it)."""
        return self.con.now()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[Repository]:
        """One write transaction: everything inside is committed together, or nothing."""
        with db.transaction(self.con):
            yield self

    def _one(self, sql: str, args: tuple = ()) -> Any:
        return self.con.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[Any]:
        return self.con.execute(sql, args).fetchall()

    # -- subscriptions and resource groups (issue 15) ---------------------------------------

    def subscription_id(self, sub: str) -> str | None:
        """The subscription's id as stored (ids compare case-insensitively), or None when the
        directory has no such subscription."""
        row = self._one("SELECT id FROM ad_subscriptions WHERE lower(id) = lower(?)", (sub,))
        return row[0] if row else None

    def subscription_of(self, rg: str) -> str:
        """The subscription resource group ``rg`` belongs to: its row's, or the local one
        when it has none (implicit groups, every store made before rows existed)."""
        row = self._one("SELECT subscription_id FROM resource_groups WHERE name = ?", (rg,))
        return row[0] if row else ids.SUBSCRIPTION

    def find_resource_group(self, name: str) -> ResourceGroupRow | None:
        """The resource group's row (names are unique in the store), or None."""
        row = self._one("SELECT * FROM resource_groups WHERE name = ?", (name,))
        return ResourceGroupRow.from_sql(row) if row else None

    def list_resource_groups(self, subscription: str | None = None) -> list[ResourceGroupRow]:
        """The resource groups with rows (of one subscription, or all), by name."""
        if subscription is None:
            rows = self._all("SELECT * FROM resource_groups ORDER BY name")
        else:
            rows = self._all("SELECT * FROM resource_groups WHERE lower(subscription_id) = "
                             "lower(?) ORDER BY name", (subscription,))
        return [ResourceGroupRow.from_sql(r) for r in rows]

    def insert_resource_group(self, subscription: str, name: str, location: str,
                              tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute(
            "INSERT INTO resource_groups(subscription_id, name, location, tags, created) "
            "VALUES (?,?,?,?,?)", (subscription, name, location, dumps(tags), iso(now_utc())))

    def update_resource_group(self, pk: int, location: str, tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE resource_groups SET location = ?, tags = ? WHERE id = ?",
                         (location, dumps(tags), pk))

    def delete_resource_group(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM resource_groups WHERE id = ?", (pk,))

    #: the tables whose rows live in a resource group (``rg`` column)
    _RG_TABLES = ("galleries", "disks", "snapshots", "managed_images", "compute_vms",
                  "compute_vmss")

    def resource_group_in_use(self, rg: str) -> bool:
        """Whether any resource lives in resource group ``rg``."""
        union = " UNION ALL ".join(f"SELECT 1 FROM {t} WHERE rg = ?" for t in self._RG_TABLES)
        return self._one(f"SELECT 1 FROM ({union}) u LIMIT 1",
                         (rg,) * len(self._RG_TABLES)) is not None

    def implicit_resource_groups(self) -> list[str]:
        """Names of the resource groups that hold resources but have no row (the local
        subscription's implicit groups), by name; one spelling per group."""
        union = " UNION ".join(f"SELECT rg FROM {t}" for t in self._RG_TABLES)
        seen: dict[str, str] = {}
        for (rg,) in self._all(f"SELECT rg FROM ({union}) u WHERE NOT EXISTS (SELECT 1 FROM "
                               f"resource_groups r WHERE r.name = u.rg) ORDER BY rg"):
            seen.setdefault(rg.lower(), rg)
        return sorted(seen.values(), key=str.lower)

    # -- galleries -------------------------------------------------------------------------

    def find_gallery(self, rg: str, name: str) -> GalleryRow | None:
        """The gallery, or None."""
        row = self._one(_G_SQL + "WHERE rg = ? AND name = ?", (rg, name))
        return GalleryRow.from_sql(row) if row else None

    def gallery(self, rg: str, name: str) -> GalleryRow:
        """The gallery; NotFound when there is none."""
        row = self.find_gallery(rg, name)
        if row is None:
            raise NotFound(f"gallery '{name}' not found in resource group '{rg}'",
                           target="galleryName")
        return row

    def list_galleries(self, rg: str | None = None) -> list[GalleryRow]:
        """Galleries of a resource group (all when ``rg`` is None), by name."""
        if rg is None:
            rows = self._all(_G_SQL + "ORDER BY rg, name")
        else:
            rows = self._all(_G_SQL + "WHERE rg = ? ORDER BY name", (rg,))
        return [GalleryRow.from_sql(r) for r in rows]

    def insert_gallery(self, rg: str, name: str, location: str, tags: dict, props: dict) -> None:
        """(In a transaction.) A new gallery row."""
        self.con.execute(
            "INSERT INTO galleries(rg, name, location, tags, props, created) VALUES (?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), iso(now_utc())))

    def update_gallery(self, pk: int, props: dict, tags: dict) -> None:
        """(In a transaction.) New properties and tags."""
        self.con.execute("UPDATE galleries SET props = ?, tags = ? WHERE id = ?",
                         (dumps(props), dumps(tags), pk))

    def delete_gallery(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM galleries WHERE id = ?", (pk,))

    # -- image definitions -------------------------------------------------------------------

    def find_definition(self, gallery: GalleryRow, name: str) -> DefinitionRow | None:
        """The gallery's definition ``name``, or None."""
        row = self._one(_I_SQL + "WHERE i.gallery_id = ? AND i.name = ?", (gallery.id, name))
        return DefinitionRow.from_sql(row) if row else None

    def definition(self, rg: str, gallery: str, name: str) -> DefinitionRow:
        """The definition; NotFound naming the gallery or the definition."""
        g = self.gallery(rg, gallery)
        row = self.find_definition(g, name)
        if row is None:
            raise NotFound(f"image definition '{gallery}/{name}' not found in resource group "
                           f"'{rg}'", target="galleryImageName")
        return row

    def list_definitions(self, gallery: GalleryRow) -> list[DefinitionRow]:
        """The gallery's definitions, by name."""
        rows = self._all(_I_SQL + "WHERE i.gallery_id = ? ORDER BY i.name", (gallery.id,))
        return [DefinitionRow.from_sql(r) for r in rows]

    def definition_names(self, gallery_pk: int) -> list[str]:
        """Names of the gallery's definitions."""
        return [r[0] for r in self._all(
            "SELECT name FROM images WHERE gallery_id = ? ORDER BY name", (gallery_pk,))]

    def definition_with_identifier(self, gallery_pk: int, publisher: str, offer: str,
                                   sku: str) -> str | None:
        """Name of the gallery's definition with this publisher/offer/sku, if any."""
        row = self._one("SELECT name FROM images WHERE gallery_id = ? AND publisher = ? AND "
                        "offer = ? AND sku = ?", (gallery_pk, publisher, offer, sku))
        return row[0] if row else None

    def insert_definition(self, gallery_pk: int, name: str, location: str, tags: dict,
                          props: dict) -> None:
        """(In a transaction.) ``props["identifier"]`` gives publisher, offer and sku."""
        ident = props["identifier"]
        self.con.execute(
            "INSERT INTO images(gallery_id, name, location, tags, props, publisher, offer, sku, "
            "created) VALUES (?,?,?,?,?,?,?,?,?)",
            (gallery_pk, name, location, dumps(tags), dumps(props), ident["publisher"],
             ident["offer"], ident["sku"], iso(now_utc())))

    def update_definition(self, pk: int, props: dict, tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE images SET props = ?, tags = ? WHERE id = ?",
                         (dumps(props), dumps(tags), pk))

    def delete_definition(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM images WHERE id = ?", (pk,))

    # -- image versions ----------------------------------------------------------------------

    def find_version(self, definition: DefinitionRow, major: int, minor: int,
                     patch: int) -> VersionRow | None:
        """The definition's version ``major.minor.patch``, or None."""
        row = self._one(_V_SQL + "WHERE v.image_id = ? AND v.major = ? AND v.minor = ? AND "
                        "v.patch = ?", (definition.id, major, minor, patch))
        return VersionRow.from_sql(row) if row else None

    def version_by_pk(self, pk: int) -> VersionRow | None:
        """The version with this row id, or None (deleted)."""
        row = self._one(_V_SQL + "WHERE v.id = ?", (pk,))
        return VersionRow.from_sql(row) if row else None

    def list_versions(self, definition: DefinitionRow, *, newest_first: bool = False,
                      limit: int | None = None, offset: int = 0,
                      active_only: bool = False) -> list[VersionRow]:
        """The definition's versions by Major.Minor.Patch; ``limit``/``offset`` take one page
        of that order (``latest`` reads the newest few, not the whole history);
        ``active_only`` leaves soft-deleted versions out."""
        order = "DESC" if newest_first else "ASC"
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        active = _ACTIVE if active_only else ""
        rows = self._all(_V_SQL + f"WHERE v.image_id = ?{active} ORDER BY v.major {order}, "
                         f"v.minor {order}, v.patch {order}{page}", (definition.id,))
        return [VersionRow.from_sql(r) for r in rows]

    def version_names(self, definition_pk: int, *, active_only: bool = False) -> list[str]:
        """Names of the definition's versions (``active_only``: not soft-deleted ones)."""
        active = _ACTIVE if active_only else ""
        return [r[0] for r in self._all(
            f"SELECT v.name FROM versions v WHERE v.image_id = ?{active} "
            "ORDER BY v.major, v.minor, v.patch", (definition_pk,))]

    def insert_version(self, definition_pk: int, name: str, parts: tuple[int, int, int],
                       location: str, tags: dict, props: dict, state: ProvisioningState,
                       source_version_id: str | None, created: str) -> int:
        """(In a transaction.) A new version row; returns its row id."""
        cur = self.con.execute(
            "INSERT INTO versions(image_id, name, major, minor, patch, location, tags, props, "
            "provisioning_state, source_version_id, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (definition_pk, name, *parts, location, dumps(tags), dumps(props), state.value,
             source_version_id, created))
        return int(cur.lastrowid)

    def update_version(self, pk: int, props: dict, tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE versions SET props = ?, tags = ? WHERE id = ?",
                         (dumps(props), dumps(tags), pk))

    def set_provisioning_state(self, pk: int, state: ProvisioningState) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE versions SET provisioning_state = ? WHERE id = ?",
                         (state.value, pk))

    def delete_version(self, pk: int) -> None:
        """(In a transaction.) The version with its disks and region rows (cascade) and its
        queued version jobs."""
        self.con.execute("DELETE FROM versions WHERE id = ?", (pk,))
        self.cancel_version_jobs(pk)

    def versions_targeting(self, region: str) -> list[VersionRow]:
        """Every version that has ``region`` among its target regions."""
        rows = self._all(_V_SQL + "WHERE EXISTS (SELECT 1 FROM version_regions r WHERE "
                         "r.version_id = v.id AND r.region = ?)" + _V_ORDER, (region,))
        return [VersionRow.from_sql(r) for r in rows]

    def versions_with_only_copy_in(self, region: str) -> list[VersionRow]:
        """Versions whose only Completed copy is in ``region``."""
        done = ReplicationState.COMPLETED.value
        rows = self._all(
            _V_SQL + "WHERE EXISTS (SELECT 1 FROM version_regions r WHERE r.version_id = v.id "
            "AND r.region = ? AND r.state = ?) AND NOT EXISTS (SELECT 1 FROM "
            "version_regions r WHERE r.version_id = v.id AND r.region <> ? AND "
            "r.state = ?)" + _V_ORDER, (region, done, region, done))
        return [VersionRow.from_sql(r) for r in rows]

    # -- soft-deleted versions (issue 15; see soft_delete.py) ---------------------------------

    def soft_deleted_time(self, version_pk: int) -> str | None:
        """When the version was soft-deleted (ISO time), or None when it is not."""
        row = self._one("SELECT deleted FROM soft_deleted_versions WHERE version_id = ?",
                        (version_pk,))
        return row[0] if row else None

    def soft_deleted_in(self, definition_pk: int) -> list[tuple[VersionRow, str]]:
        """(version, soft-deleted time) of the definition's soft-deleted versions, by
        Major.Minor.Patch."""
        rows = self._all(
            _SD_SQL + "WHERE v.image_id = ? ORDER BY v.major, v.minor, v.patch",
            (definition_pk,))
        return [(VersionRow.from_sql(r), r["sd_deleted"]) for r in rows]

    def all_soft_deleted(self) -> list[tuple[VersionRow, str]]:
        """(version, soft-deleted time) of every soft-deleted version of the store."""
        rows = self._all(_SD_SQL + _V_ORDER)
        return [(VersionRow.from_sql(r), r["sd_deleted"]) for r in rows]

    def mark_soft_deleted(self, version_pk: int, when: str) -> None:
        """(In a transaction.)"""
        self.con.execute("INSERT INTO soft_deleted_versions(version_id, deleted) VALUES (?,?)",
                         (version_pk, when))

    def unmark_soft_deleted(self, version_pk: int) -> None:
        """(In a transaction.) The version is active again."""
        self.con.execute("DELETE FROM soft_deleted_versions WHERE version_id = ?", (version_pk,))

    # -- version disks ---------------------------------------------------------------------

    def disks_of(self, version_pk: int) -> list[VersionDisk]:
        """The version's disk images, OS disk (LUN -1) first."""
        rows = self._all("SELECT * FROM version_disks WHERE version_id = ? ORDER BY lun",
                         (version_pk,))
        return [VersionDisk.from_sql(r) for r in rows]

    def insert_disks(self, version_pk: int, disks: list[VersionDisk]) -> None:
        """(In a transaction.)"""
        for d in disks:
            self.con.execute(
                "INSERT INTO version_disks(version_id, lun, digest, virtual_size, "
                "allocated_bytes, data_bytes, stored_bytes, host_caching, source_uri, "
                "source_format, shallow_path, fingerprint, source_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (version_pk, d.lun, d.digest, d.virtual_size, d.allocated_bytes, d.data_bytes,
                 d.stored_bytes, d.host_caching, d.source_uri, d.source_format, d.shallow_path,
                 d.fingerprint, d.source_id))

    def digest_referenced(self, digest: str) -> bool:
        """Whether any version disk, snapshot or managed image disk uses manifest ``digest``
        (what keeps a manifest published)."""
        return self._one(
            "SELECT 1 FROM version_disks WHERE digest = ? UNION ALL "
            "SELECT 1 FROM snapshots WHERE digest = ? UNION ALL "
            "SELECT 1 FROM managed_image_disks WHERE digest = ? LIMIT 1",
            (digest, digest, digest)) is not None

    def versions_using_digest(self, digest: str) -> list[tuple[VersionRow, int]]:
        """(version, LUN) of every disk image whose content is manifest ``digest``."""
        rows = self._all(
            "SELECT d.version_id AS vid, d.lun AS lun FROM version_disks d WHERE d.digest = ? "
            "ORDER BY d.version_id, d.lun", (digest,))
        out = []
        for r in rows:
            v = self.version_by_pk(r["vid"])
            if v is not None:
                out.append((v, r["lun"]))
        return out

    def disk_images_by_digest(self) -> list[tuple[str, str, str, str, str, int]]:
        """(digest, resource group, gallery, definition, version, LUN) of every captured
        disk image, by gallery, definition, version and LUN."""
        rows = self._all(
            "SELECT vd.digest, g.rg, g.name, i.name, v.name, vd.lun FROM version_disks vd "
            "JOIN versions v ON v.id = vd.version_id JOIN images i ON i.id = v.image_id "
            "JOIN galleries g ON g.id = i.gallery_id WHERE vd.digest != '' "
            "ORDER BY g.rg, g.name, i.name, v.major, v.minor, v.patch, vd.lun")
        return [tuple(r) for r in rows]

    def copies_needed(self, digest: str, region: str, exclude_version: int | None) -> int:
        """How many copies of ``digest`` the versions (other than ``exclude_version``) that
        target ``region`` need there."""
        rows = self._all(
            "SELECT v.props AS props FROM version_disks d JOIN versions v ON v.id = d.version_id "
            "JOIN version_regions r ON r.version_id = v.id "
            "WHERE d.digest = ? AND r.region = ? AND v.id IS NOT ?",
            (digest, region, exclude_version))
        need = 0
        for r in rows:
            for t in json.loads(r["props"])["publishingProfile"]["targetRegions"]:
                if t["name"].lower() == region.lower():
                    need = max(need, int(t.get("regionalReplicaCount") or 1))
        if need == 0 and self._one(
                "SELECT 1 FROM snapshots WHERE digest = ? AND location = ? COLLATE NOCASE "
                "UNION ALL SELECT 1 FROM managed_image_disks d JOIN managed_images i ON "
                "i.id = d.image_id WHERE d.digest = ? AND i.location = ? COLLATE NOCASE LIMIT 1",
                (digest, region, digest, region)):
            need = 1  # a snapshot or managed image lives in copy 0 of its region
        return need

    # -- version regions (replication state) -----------------------------------------------

    def regions_of(self, version_pk: int) -> list[VersionRegion]:
        """The version's target regions in the order they were added."""
        rows = self._all("SELECT * FROM version_regions WHERE version_id = ? ORDER BY rowid",
                         (version_pk,))
        return [VersionRegion.from_sql(r) for r in rows]

    def region_of(self, version_pk: int, region: str) -> VersionRegion | None:
        """The version's row for ``region``, or None when it does not target it."""
        row = self._one("SELECT * FROM version_regions WHERE version_id = ? AND region = ?",
                        (version_pk, region))
        return VersionRegion.from_sql(row) if row else None

    def add_region(self, version_pk: int, region: str, state: ReplicationState) -> None:
        """(In a transaction.) A new target region, Completed (100 %) or Queued (0 %)."""
        done = state == ReplicationState.COMPLETED
        self.con.execute(
            "INSERT INTO version_regions(version_id, region, state, progress, details, updated) "
            "VALUES (?,?,?,?,?,?)",
            (version_pk, region, state.value, 100 if done else 0, "", iso(now_utc())))

    def remove_region(self, version_pk: int, region: str) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM version_regions WHERE version_id = ? AND region = ?",
                         (version_pk, region))

    def requeue_region(self, version_pk: int, region: str) -> None:
        """(In a transaction.) Queue the region again under a new generation, so a worker
        finishing an outdated pass cannot mark it Completed."""
        self.con.execute(
            "UPDATE version_regions SET state = ?, progress = 0, details = '', bytes_done = 0, "
            "gen = gen + 1, updated = ? WHERE version_id = ? AND region = ?",
            (ReplicationState.QUEUED.value, iso(now_utc()), version_pk, region))

    def mark_capturing(self, version_pk: int, region: str, details: str) -> None:
        """(In a transaction.) The source region, while a queued capture runs."""
        self.con.execute(
            "UPDATE version_regions SET state = ?, details = ?, updated = ? "
            "WHERE version_id = ? AND region = ? AND state = ?",
            (ReplicationState.REPLICATING.value, details, iso(now_utc()), version_pk, region,
             ReplicationState.QUEUED.value))

    _GEN = "WHERE version_id = ? AND region = ? AND gen = ?"

    def begin_replication(self, version_pk: int, region: str, gen: int, total: int) -> None:
        """(In a transaction.) Generation ``gen`` of the region starts copying ``total`` bytes."""
        self.con.execute(
            f"UPDATE version_regions SET state = ?, progress = 0, details = '', bytes_done = 0, "
            f"bytes_total = ?, updated = ? {self._GEN}",
            (ReplicationState.REPLICATING.value, total, iso(now_utc()), version_pk, region, gen))

    def record_progress(self, version_pk: int, region: str, gen: int, percent: int,
                        done: int) -> None:
        """(In a transaction.)"""
        self.con.execute(
            f"UPDATE version_regions SET progress = ?, bytes_done = ?, updated = ? {self._GEN} "
            f"AND state = ?",
            (percent, done, iso(now_utc()), version_pk, region, gen,
             ReplicationState.REPLICATING.value))

    def complete_replication(self, version_pk: int, region: str, gen: int, total: int,
                             sent: int) -> bool:
        """(In a transaction.) Mark generation ``gen`` Completed; False when the row changed
        meanwhile (re-queued, removed, or the version deleted)."""
        cur = self.con.execute(
            f"UPDATE version_regions SET state = ?, progress = 100, details = '', "
            f"bytes_done = ?, bytes_sent = bytes_sent + ?, updated = ? {self._GEN}",
            (ReplicationState.COMPLETED.value, total, sent, iso(now_utc()), version_pk, region,
             gen))
        return cur.rowcount > 0

    def fail_replication(self, version_pk: int, region: str, gen: int, details: str) -> None:
        """(In a transaction.)"""
        self.con.execute(
            f"UPDATE version_regions SET state = ?, details = ?, updated = ? {self._GEN}",
            (ReplicationState.FAILED.value, details, iso(now_utc()), version_pk, region, gen))

    def fail_unfinished(self, version_pk: int, details: str) -> None:
        """(In a transaction.) Every queued or replicating region of the version fails, and
        the version's provisioning state follows."""
        self.con.execute(
            "UPDATE version_regions SET state = ?, details = ?, updated = ? WHERE "
            "version_id = ? AND state IN (?, ?)",
            (ReplicationState.FAILED.value, details, iso(now_utc()), version_pk, *_PENDING))
        self.settle_version(version_pk)

    def settle_version(self, version_pk: int) -> None:
        """(In a transaction.) provisioningState from the regions' states, once no region is
        pending: Failed if any failed, else Succeeded."""
        states = [ReplicationState(r[0]) for r in self._all(
            "SELECT state FROM version_regions WHERE version_id = ?", (version_pk,))]
        if any(s.pending for s in states):
            return  # re-queued meanwhile: another job follows
        failed = any(s == ReplicationState.FAILED for s in states)
        self.set_provisioning_state(
            version_pk, ProvisioningState.FAILED if failed else ProvisioningState.SUCCEEDED)

    # -- disks -------------------------------------------------------------------------------

    def find_disk(self, rg: str, name: str) -> DiskRow | None:
        """The disk resource, or None."""
        row = self._one(_select("disks") + "WHERE rg = ? AND name = ?", (rg, name))
        return DiskRow.from_sql(row) if row else None

    def disk_at_path(self, path: str) -> bool:
        """Whether a disk row records the file ``path``."""
        return self._one("SELECT 1 FROM disks WHERE path = ?", (path,)) is not None

    def disk(self, rg: str, name: str) -> DiskRow:
        """The disk resource; NotFound when there is none."""
        row = self.find_disk(rg, name)
        if row is None:
            raise NotFound(f"disk '{name}' not found in resource group '{rg}'", target="diskName")
        return row

    def list_disks(self, rg: str | None = None) -> list[DiskRow]:
        """Disks of a resource group (all when ``rg`` is None)."""
        if rg is None:
            rows = self._all(_select("disks") + "ORDER BY rg, name")
        else:
            rows = self._all(_select("disks") + "WHERE rg = ? ORDER BY name", (rg,))
        return [DiskRow.from_sql(r) for r in rows]

    def insert_disk(self, rg: str, name: str, location: str, tags: dict, props: dict,
                    path: str, fmt: str) -> None:
        """(In a transaction.)"""
        self.con.execute(
            "INSERT INTO disks(rg, name, location, tags, props, path, format, created) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), path, fmt, iso(now_utc())))

    def delete_disk(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM disks WHERE id = ?", (pk,))

    def update_disk_props(self, pk: int, props: dict) -> None:
        """(In a transaction.) Replace a disk's stored properties (export grants, issue 12)."""
        self.con.execute("UPDATE disks SET props = ? WHERE id = ?", (dumps(props), pk))

    def disks_with_grant(self, grant_id: str) -> list[DiskRow]:
        """Disks whose stored properties mention ``grant_id`` (an export grant's random id;
        the caller checks the grant field itself)."""
        rows = self._all(_select("disks") + "WHERE props LIKE ?", (f"%{grant_id}%",))
        return [DiskRow.from_sql(r) for r in rows]

    # -- linked-clone parents ----------------------------------------------------------------

    def find_linked_parent(self, location: str, digest: str, fmt: str) -> LinkedParentRow | None:
        """The parent of ``digest`` in ``location`` in format ``fmt``, or None."""
        row = self._one("SELECT * FROM linked_parents WHERE location = ? AND digest = ? AND "
                        "format = ?", (location, digest, fmt))
        return LinkedParentRow.from_sql(row) if row else None

    def insert_linked_parent(self, location: str, digest: str, fmt: str, path: str,
                             virtual_size: int) -> int:
        """(In a transaction.)"""
        cur = self.con.execute(
            "INSERT INTO linked_parents(location, digest, format, path, virtual_size, created) "
            "VALUES (?,?,?,?,?,?)", (location, digest, fmt, path, virtual_size, iso(now_utc())))
        return int(cur.lastrowid)

    def list_linked_parents(self) -> list[tuple[LinkedParentRow, int]]:
        """Every parent with the number of disks linked to it."""
        rows = self._all(
            "SELECT p.*, (SELECT COUNT(*) FROM disk_links l WHERE l.parent_id = p.id) AS n "
            "FROM linked_parents p ORDER BY p.id")
        return [(LinkedParentRow.from_sql(r), int(r["n"])) for r in rows]

    def delete_linked_parent(self, pk: int) -> bool:
        """(In a transaction.) Remove a parent no disk links to; False when one does."""
        if self._one("SELECT 1 FROM disk_links WHERE parent_id = ?", (pk,)):
            return False
        self.con.execute("DELETE FROM linked_parents WHERE id = ?", (pk,))
        return True

    def link_disk(self, disk_pk: int, parent_pk: int) -> None:
        """(In a transaction.) Pin ``parent_pk`` for the disk."""
        self.con.execute("INSERT INTO disk_links(disk_id, parent_id) VALUES (?, ?)",
                         (disk_pk, parent_pk))

    def unlink_disk(self, disk_pk: int) -> None:
        """(In a transaction.) The disk no longer needs its parent."""
        self.con.execute("DELETE FROM disk_links WHERE disk_id = ?", (disk_pk,))

    def parent_of_disk(self, disk_pk: int) -> LinkedParentRow | None:
        """The parent a linked disk pins, or None."""
        row = self._one("SELECT p.* FROM linked_parents p JOIN disk_links l ON "
                        "l.parent_id = p.id WHERE l.disk_id = ?", (disk_pk,))
        return LinkedParentRow.from_sql(row) if row else None

    # -- snapshots ---------------------------------------------------------------------------

    def find_snapshot(self, rg: str, name: str) -> SnapshotRow | None:
        """The snapshot, or None."""
        row = self._one(_select("snapshots") + "WHERE rg = ? AND name = ?", (rg, name))
        return SnapshotRow.from_sql(row) if row else None

    def snapshot(self, rg: str, name: str) -> SnapshotRow:
        """The snapshot; NotFound when there is none."""
        row = self.find_snapshot(rg, name)
        if row is None:
            raise NotFound(f"snapshot '{name}' not found in resource group '{rg}'",
                           target="snapshotName")
        return row

    def list_snapshots(self, rg: str | None = None) -> list[SnapshotRow]:
        """Snapshots of a resource group (all when ``rg`` is None), by name."""
        if rg is None:
            rows = self._all(_select("snapshots") + "ORDER BY rg, name")
        else:
            rows = self._all(_select("snapshots") + "WHERE rg = ? ORDER BY name", (rg,))
        return [SnapshotRow.from_sql(r) for r in rows]

    def insert_snapshot(self, rg: str, name: str, location: str, tags: dict, props: dict, *,
                        digest: str, virtual_size: int, allocated_bytes: int, data_bytes: int,
                        stored_bytes: int, source_format: str | None, source_id: str) -> None:
        """(In a transaction.)"""
        self.con.execute(
            "INSERT INTO snapshots(rg, name, location, tags, props, digest, virtual_size, "
            "allocated_bytes, data_bytes, stored_bytes, source_format, source_id, created) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), digest, virtual_size,
             allocated_bytes, data_bytes, stored_bytes, source_format, source_id,
             iso(now_utc())))

    def delete_snapshot(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM snapshots WHERE id = ?", (pk,))

    # -- managed images ----------------------------------------------------------------------

    def find_managed_image(self, rg: str, name: str) -> ManagedImageRow | None:
        """The managed image, or None."""
        row = self._one(_select("managed_images") + "WHERE rg = ? AND name = ?", (rg, name))
        return ManagedImageRow.from_sql(row) if row else None

    def managed_image(self, rg: str, name: str) -> ManagedImageRow:
        """The managed image; NotFound when there is none."""
        row = self.find_managed_image(rg, name)
        if row is None:
            raise NotFound(f"image '{name}' not found in resource group '{rg}'",
                           target="imageName")
        return row

    def list_managed_images(self, rg: str | None = None) -> list[ManagedImageRow]:
        """Managed images of a resource group (all when ``rg`` is None), by name."""
        if rg is None:
            rows = self._all(_select("managed_images") + "ORDER BY rg, name")
        else:
            rows = self._all(_select("managed_images") + "WHERE rg = ? ORDER BY name", (rg,))
        return [ManagedImageRow.from_sql(r) for r in rows]

    def managed_image_disks(self, image_pk: int) -> list[ManagedImageDisk]:
        """The image's disks, OS disk (LUN -1) first."""
        rows = self._all("SELECT * FROM managed_image_disks WHERE image_id = ? ORDER BY lun",
                         (image_pk,))
        return [ManagedImageDisk.from_sql(r) for r in rows]

    def insert_managed_image(self, rg: str, name: str, location: str, tags: dict, props: dict,
                             disks: list[ManagedImageDisk]) -> int:
        """(In a transaction.) The image and its disks; returns its row id."""
        cur = self.con.execute(
            "INSERT INTO managed_images(rg, name, location, tags, props, created) "
            "VALUES (?,?,?,?,?,?)", (rg, name, location, dumps(tags), dumps(props),
                                     iso(now_utc())))
        pk = int(cur.lastrowid)
        for d in disks:
            self.con.execute(
                "INSERT INTO managed_image_disks(image_id, lun, digest, virtual_size, "
                "allocated_bytes, data_bytes, stored_bytes, source_format, source_kind, "
                "source_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (pk, d.lun, d.digest, d.virtual_size, d.allocated_bytes, d.data_bytes,
                 d.stored_bytes, d.source_format, d.source_kind, d.source_id))
        return pk

    def delete_managed_image(self, pk: int) -> None:
        """(In a transaction.) The image with its disks (cascade)."""
        self.con.execute("DELETE FROM managed_images WHERE id = ?", (pk,))

    def snapshots_and_images_in(self, region: str) -> list[tuple[str, str, str]]:
        """(kind ``snapshot``/``image``, resource group, name) of every snapshot and managed
        image whose data lives in ``region``."""
        rows = self._all(
            "SELECT 'snapshot', rg, name FROM snapshots WHERE location = ? COLLATE NOCASE "
            "UNION ALL SELECT 'image', rg, name FROM managed_images WHERE location = ? "
            "COLLATE NOCASE ORDER BY 1 DESC, 2, 3", (region, region))
        return [(r[0], r[1], r[2]) for r in rows]

    def owners_by_digest(self) -> list[tuple[str, str, str, str, int | None]]:
        """(digest, kind ``snapshot``/``image``, resource group, name, LUN or None) of every
        snapshot and managed image disk, by kind, resource group, name and LUN."""
        rows = self._all(
            "SELECT digest, 'snapshot', rg, name, NULL FROM snapshots UNION ALL "
            "SELECT d.digest, 'image', i.rg, i.name, d.lun FROM managed_image_disks d "
            "JOIN managed_images i ON i.id = d.image_id ORDER BY 2 DESC, 3, 4, 5")
        return [(r[0], r[1], r[2], r[3], None if r[4] is None or r[4] < 0 else r[4])
                for r in rows]

    # -- jobs ------------------------------------------------------------------------------

    def queue_version_job(self, version_pk: int, payload: dict) -> None:
        """(In a transaction.) Queue a version job; one already queued for the version absorbs
        it (payloads merged)."""
        row = self._one("SELECT id, payload FROM jobs WHERE kind = ? AND version_id = ? "
                        "AND state = ? ORDER BY id LIMIT 1",
                        (JobKind.VERSION.value, version_pk, JobState.QUEUED.value))
        if row is not None:
            merged = {**json.loads(row["payload"]), **payload}
            self.con.execute("UPDATE jobs SET payload = ? WHERE id = ?",
                             (json.dumps(merged), row["id"]))
            return
        self.con.execute("INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
                         "(?, ?, ?, ?, ?)", (JobKind.VERSION.value, version_pk,
                                             json.dumps(payload), JobState.QUEUED.value,
                                             iso(now_utc())))

    def queue_gc_job(self, region: str, version_pk: int | None = None) -> None:
        """(In a transaction.) Queue a gc of ``region`` unless one is queued already."""
        if self._one("SELECT 1 FROM jobs WHERE kind = ? AND state = ? AND "
                     "json_extract(payload, '$.region') = ? COLLATE NOCASE",
                     (JobKind.GC.value, JobState.QUEUED.value, region)):
            return
        self.con.execute("INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
                         "(?, ?, ?, ?, ?)", (JobKind.GC.value, version_pk,
                                             json.dumps({"region": region}),
                                             JobState.QUEUED.value, iso(now_utc())))

    def queue_unreference_job(self, payload: dict) -> int:
        """(In a transaction.) Queue the unreference of a deleted version's data; its id."""
        cur = self.con.execute(
            "INSERT INTO jobs(kind, version_id, payload, state, created) VALUES "
            "(?, NULL, ?, ?, ?)", (JobKind.UNREFERENCE.value, json.dumps(payload),
                                   JobState.QUEUED.value, iso(now_utc())))
        return int(cur.lastrowid)

    def queued_unreference_jobs(self) -> list[tuple[int, dict]]:
        """(id, payload) of the queued unreference jobs, oldest first."""
        return [(int(r["id"]), json.loads(r["payload"])) for r in self._all(
            "SELECT id, payload FROM jobs WHERE kind = ? AND state = ? ORDER BY id",
            (JobKind.UNREFERENCE.value, JobState.QUEUED.value))]

    def cancel_version_jobs(self, version_pk: int) -> None:
        """(In a transaction.) Drop the version's queued (not running) jobs."""
        self.con.execute("DELETE FROM jobs WHERE kind = ? AND version_id = ? AND state = ?",
                         (JobKind.VERSION.value, version_pk, JobState.QUEUED.value))

    def pending_jobs(self, version_pk: int | None = None) -> int:
        """Queued or running jobs (of one version, or all)."""
        states = (JobState.QUEUED.value, JobState.RUNNING.value)
        if version_pk is None:
            return self._one("SELECT count(*) FROM jobs WHERE state IN (?, ?)", states)[0]
        return self._one("SELECT count(*) FROM jobs WHERE state IN (?, ?) AND version_id = ?",
                         (*states, version_pk))[0]

    def claim_job(self, pid: int, only_version: int | None = None) -> JobRow | None:
        """(In a transaction.) The oldest queued job (of one version), now running for ``pid``;
        the row is returned as it was before the claim."""
        sql = "SELECT * FROM jobs WHERE state = ?"
        args: tuple = (JobState.QUEUED.value,)
        if only_version is not None:
            sql += " AND version_id = ?"
            args += (only_version,)
        row = self._one(sql + " ORDER BY id LIMIT 1", args)
        if row is None:
            return None
        self.con.execute("UPDATE jobs SET state = ?, worker_pid = ?, attempts = attempts + 1, "
                         "started = ? WHERE id = ?",
                         (JobState.RUNNING.value, pid, iso(now_utc()), row["id"]))
        return JobRow.from_sql(row)

    def delete_job(self, job_id: int) -> None:
        """(In a transaction.) A job that finished (or failed for good)."""
        self.con.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def requeue_running_jobs(self) -> None:
        """(In a transaction.) Jobs a dead worker was running go back to the queue."""
        self.con.execute("UPDATE jobs SET state = ?, worker_pid = NULL WHERE state = ?",
                         (JobState.QUEUED.value, JobState.RUNNING.value))

    # -- the worker lease --------------------------------------------------------------------

    def lease(self) -> LeaseRow | None:
        """The lease row as stored (live or not)."""
        row = self._one("SELECT pid, host, heartbeat, started FROM worker_lease WHERE id = 1")
        return LeaseRow.from_sql(row) if row else None

    def write_lease(self, pid: int, host: str, heartbeat: float) -> None:
        """(In a transaction.) ``pid`` on ``host`` holds the lease from now on."""
        self.con.execute(
            "INSERT INTO worker_lease(id, pid, host, heartbeat, started) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, "
            "heartbeat = excluded.heartbeat, started = excluded.started",
            (pid, host, heartbeat, iso(now_utc())))

    def beat(self, pid: int, host: str, heartbeat: float) -> bool:
        """Refresh the lease's heartbeat if ``pid`` on ``host`` still holds it (autocommit);
        False when it no longer does."""
        cur = self.con.execute(
            "UPDATE worker_lease SET heartbeat = ? WHERE id = 1 AND pid = ? AND host = ?",
            (heartbeat, pid, host))
        return cur.rowcount > 0

    def drop_lease(self, pid: int, host: str) -> None:
        """(In a transaction.) Release the lease if ``pid`` on ``host`` holds it."""
        self.con.execute("DELETE FROM worker_lease WHERE id = 1 AND pid = ? AND host = ?",
                         (pid, host))

    # -- long-running operations (REST API) --------------------------------------------------

    def insert_operation(self, op_id: str, kind: str, resource_id: str, location: str,
                         version_pk: int | None, status: str, error: dict | None = None) -> None:
        """(In a transaction.) Record an operation."""
        ended = None if status == "InProgress" else iso(now_utc())
        self.con.execute(
            "INSERT INTO operations(id, kind, resource_id, location, version_id, status, error,"
            " created, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (op_id, kind, resource_id, location, version_pk, status,
             dumps(error) if error else None, iso(now_utc()), ended))

    def operation(self, op_id: str) -> OperationRow | None:
        """The operation, or None."""
        row = self._one("SELECT * FROM operations WHERE id = ?", (op_id,))
        return OperationRow.from_sql(row) if row else None

    def finish_operation(self, op_id: str, status: str, error: dict | None = None) -> None:
        """(In a transaction.) An operation reached its end (only the first end counts)."""
        self.con.execute("UPDATE operations SET status = ?, error = ?, ended = ? "
                         "WHERE id = ? AND status = 'InProgress'",
                         (status, dumps(error) if error else None, iso(now_utc()), op_id))

    def operations_in_progress(self) -> list[OperationRow]:
        """Operations not finished yet (a restarted server resumes their work)."""
        return [OperationRow.from_sql(r) for r in
                self._all("SELECT * FROM operations WHERE status = 'InProgress' ORDER BY created")]

    # -- virtual machines and scale sets (the compute layer) ---------------------------------

    def find_vm(self, rg: str, name: str) -> VmRow | None:
        """The VM (or scale set instance) named ``name``, or None."""
        row = self._one(_select("compute_vms") + "WHERE rg = ? AND name = ?", (rg, name))
        return VmRow.from_sql(row) if row else None

    def list_vms(self, rg: str | None = None) -> list[VmRow]:
        """Standalone VMs (not scale set instances) of a resource group, all when None."""
        if rg is None:
            rows = self._all(_select("compute_vms") + "WHERE vmss_id IS NULL ORDER BY rg, name")
        else:
            rows = self._all(_select("compute_vms") + "WHERE vmss_id IS NULL AND rg = ? "
                             "ORDER BY name", (rg,))
        return [VmRow.from_sql(r) for r in rows]

    def insert_vm(self, rg: str, name: str, location: str, tags: dict, props: dict, *,
                  vmss_id: int | None = None, instance_id: int | None = None) -> int:
        """(In a transaction.) Returns the row id."""
        cur = self.con.execute(
            "INSERT INTO compute_vms(rg, name, location, tags, props, vmss_id, instance_id, "
            "created) VALUES (?,?,?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), vmss_id, instance_id,
             iso(now_utc())))
        return int(cur.lastrowid)

    def update_vm(self, pk: int, props: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE compute_vms SET props = ? WHERE id = ?", (dumps(props), pk))

    def delete_vm(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM compute_vms WHERE id = ?", (pk,))

    def find_vmss(self, rg: str, name: str) -> VmssRow | None:
        """The scale set, or None."""
        row = self._one(_select("compute_vmss") + "WHERE rg = ? AND name = ?", (rg, name))
        return VmssRow.from_sql(row) if row else None

    def list_vmss(self, rg: str | None = None) -> list[VmssRow]:
        """Scale sets of a resource group (all when None), by name."""
        if rg is None:
            rows = self._all(_select("compute_vmss") + "ORDER BY rg, name")
        else:
            rows = self._all(_select("compute_vmss") + "WHERE rg = ? ORDER BY name", (rg,))
        return [VmssRow.from_sql(r) for r in rows]

    def insert_vmss(self, rg: str, name: str, location: str, tags: dict, props: dict) -> int:
        """(In a transaction.) Returns the row id."""
        cur = self.con.execute(
            "INSERT INTO compute_vmss(rg, name, location, tags, props, created) "
            "VALUES (?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), iso(now_utc())))
        return int(cur.lastrowid)

    def update_vmss(self, pk: int, props: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE compute_vmss SET props = ? WHERE id = ?", (dumps(props), pk))

    def delete_vmss(self, pk: int) -> None:
        """(In a transaction; its instance rows go with it.)"""
        self.con.execute("DELETE FROM compute_vms WHERE vmss_id = ?", (pk,))
        self.con.execute("DELETE FROM compute_vmss WHERE id = ?", (pk,))

    def vmss_instances(self, vmss_pk: int) -> list[VmRow]:
        """The scale set's instances by instance id."""
        return [VmRow.from_sql(r) for r in self._all(
            _select("compute_vms") + "WHERE vmss_id = ? ORDER BY instance_id", (vmss_pk,))]
