"""The gallery's metadata schema as ordered, named migrations recorded in
``schema_migrations``, the same on both backends (SQLite by default, PostgreSQL with
``IMAGESTORE_DATABASE_URL``; see :mod:`.backends`).

Every change goes through :func:`transaction` (``BEGIN IMMEDIATE`` … ``COMMIT`` on SQLite, a
writer-serialising transaction on PostgreSQL; rolled back on any exception), so a failed
command leaves the metadata exactly as it was. Migrations are written in SQLite's DDL;
PostgreSQL runs them translated (:mod:`.backends.dialect`). A database that records a
migration this imagestore does not know (written by a newer one), or that holds tables but no
``schema_migrations`` (another application's), is refused untouched (exit 8).
"""

from __future__ import annotations

import sqlite3  # noqa: F401 - a migration typed ``sqlite3.Connection`` still lints; use Database
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from ..errors import NotAStore
from . import backends
from .backends import Database


def _script(con: Database, sql: str) -> None:
    """Run DDL statements inside the current transaction (executescript would COMMIT)."""
    for stmt in sql.split(";"):
        if stmt.strip():
            con.execute(stmt)


def _m0001_initial(con: Database) -> None:
    _script(
        con,
        """
        CREATE TABLE regions (
            name        TEXT PRIMARY KEY COLLATE NOCASE,
            created     TEXT NOT NULL
        );
        CREATE TABLE galleries (
            id          INTEGER PRIMARY KEY,
            rg          TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            created     TEXT NOT NULL,
            UNIQUE (rg, name)
        );
        CREATE TABLE images (
            id          INTEGER PRIMARY KEY,
            gallery_id  INTEGER NOT NULL REFERENCES galleries(id) ON DELETE RESTRICT,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            publisher   TEXT NOT NULL COLLATE NOCASE,
            offer       TEXT NOT NULL COLLATE NOCASE,
            sku         TEXT NOT NULL COLLATE NOCASE,
            created     TEXT NOT NULL,
            UNIQUE (gallery_id, name),
            UNIQUE (gallery_id, publisher, offer, sku)
        );
        CREATE TABLE versions (
            id          INTEGER PRIMARY KEY,
            image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
            name        TEXT NOT NULL,
            major       INTEGER NOT NULL,
            minor       INTEGER NOT NULL,
            patch       INTEGER NOT NULL,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            provisioning_state TEXT NOT NULL,
            source_version_id  TEXT,
            created     TEXT NOT NULL,
            UNIQUE (image_id, major, minor, patch)
        );
        -- one row per disk image of a version, lun -1 being the OS disk
        CREATE TABLE version_disks (
            version_id  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
            lun         INTEGER NOT NULL,
            digest      TEXT NOT NULL,
            virtual_size INTEGER NOT NULL,
            allocated_bytes INTEGER NOT NULL,
            data_bytes  INTEGER NOT NULL,
            stored_bytes INTEGER NOT NULL,
            host_caching TEXT NOT NULL,
            source_uri  TEXT,
            source_format TEXT,
            PRIMARY KEY (version_id, lun)
        );
        CREATE INDEX version_disks_digest ON version_disks(digest);
        -- replication state of a version per target region (the replication work updates it)
        CREATE TABLE version_regions (
            version_id  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
            region      TEXT NOT NULL COLLATE NOCASE,
            state       TEXT NOT NULL,
            progress    INTEGER NOT NULL,
            details     TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (version_id, region)
        );
        CREATE TABLE disks (
            id          INTEGER PRIMARY KEY,
            rg          TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            path        TEXT NOT NULL,
            format      TEXT NOT NULL,
            created     TEXT NOT NULL,
            UNIQUE (rg, name)
        );
        """
    )
    con.execute(
        "INSERT INTO regions(name, created) VALUES ('local', ?)",
        (datetime.now(UTC).isoformat(),),
    )


def _m0002_replication(con: Database) -> None:
    """Regions come from the region registry (``regions/<name>/region.json``), no longer from
    a table; per-region replication progress in bytes and a generation counter; shallow
    sources on version disks; the job queue and the worker lease."""
    _script(
        con,
        """
        DROP TABLE regions;
        ALTER TABLE version_regions ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE version_regions ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE version_regions ADD COLUMN bytes_total INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE version_regions ADD COLUMN bytes_sent INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE version_regions ADD COLUMN updated TEXT;
        ALTER TABLE version_disks ADD COLUMN shallow_path TEXT;
        ALTER TABLE version_disks ADD COLUMN fingerprint TEXT;
        -- work for the background worker. version_id has no foreign key: a job may outlive
        -- its version (the worker then cleans up what it had written)
        CREATE TABLE jobs (
            id          INTEGER PRIMARY KEY,
            kind        TEXT NOT NULL,
            version_id  INTEGER,
            payload     TEXT NOT NULL DEFAULT '{}',
            state       TEXT NOT NULL,
            attempts    INTEGER NOT NULL DEFAULT 0,
            worker_pid  INTEGER,
            error       TEXT,
            created     TEXT NOT NULL,
            started     TEXT
        );
        CREATE INDEX jobs_state ON jobs(state, id);
        -- at most one worker at a time holds the lease: its pid and a heartbeat
        CREATE TABLE worker_lease (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            pid         INTEGER NOT NULL,
            host        TEXT NOT NULL,
            heartbeat   REAL NOT NULL,
            started     TEXT NOT NULL
        );
        UPDATE version_regions SET state = 'Queued', details = ''
            WHERE state = 'Replicating' AND details = 'queued for replication';
        INSERT INTO jobs(kind, version_id, state, created)
            SELECT DISTINCT 'version', version_id, 'queued', datetime('now')
            FROM version_regions WHERE state = 'Queued'
        """
    )


def _m0003_snapshots_images(con: Database) -> None:
    """Snapshots (``Microsoft.Compute/snapshots``: one captured disk each) and managed images
    (``Microsoft.Compute/images``: an OS disk and data disks by LUN), both holding manifest
    digests; and the source resource (snapshot) a version disk image was made from."""
    _script(
        con,
        """
        CREATE TABLE snapshots (
            id          INTEGER PRIMARY KEY,
            rg          TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            digest      TEXT NOT NULL,
            virtual_size INTEGER NOT NULL,
            allocated_bytes INTEGER NOT NULL,
            data_bytes  INTEGER NOT NULL,
            stored_bytes INTEGER NOT NULL,
            source_format TEXT,
            source_id   TEXT NOT NULL,
            created     TEXT NOT NULL,
            UNIQUE (rg, name)
        );
        CREATE INDEX snapshots_digest ON snapshots(digest);
        CREATE TABLE managed_images (
            id          INTEGER PRIMARY KEY,
            rg          TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            created     TEXT NOT NULL,
            UNIQUE (rg, name)
        );
        -- one row per disk of a managed image, lun -1 being the OS disk
        CREATE TABLE managed_image_disks (
            image_id    INTEGER NOT NULL REFERENCES managed_images(id) ON DELETE CASCADE,
            lun         INTEGER NOT NULL,
            digest      TEXT NOT NULL,
            virtual_size INTEGER NOT NULL,
            allocated_bytes INTEGER NOT NULL,
            data_bytes  INTEGER NOT NULL,
            stored_bytes INTEGER NOT NULL,
            source_format TEXT,
            source_kind TEXT NOT NULL,
            source_id   TEXT NOT NULL,
            PRIMARY KEY (image_id, lun)
        );
        CREATE INDEX managed_image_disks_digest ON managed_image_disks(digest);
        ALTER TABLE version_disks ADD COLUMN source_id TEXT
        """
    )


def _m0004_operations(con: Database) -> None:
    """Long-running operations of the REST API (``Azure-AsyncOperation`` status resources):
    durable, so a poller re-created after a server restart finds its operation."""
    _script(
        con,
        """
        CREATE TABLE operations (
            id          TEXT PRIMARY KEY,
            kind        TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            location    TEXT NOT NULL,
            version_id  INTEGER,
            status      TEXT NOT NULL,
            error       TEXT,
            created     TEXT NOT NULL,
            ended       TEXT
        );
        CREATE INDEX operations_status ON operations(status)
        """
    )


def _m0005_linked_parents(con: Database) -> None:
    """Linked clones (issue 13): one read-only materialized parent file per version disk
    (manifest digest), region and parent format, shared by every linked disk; a disk's link
    pins its parent (``ON DELETE RESTRICT``) and goes with the disk row (``CASCADE``)."""
    _script(
        con,
        """
        CREATE TABLE linked_parents (
            id          INTEGER PRIMARY KEY,
            location    TEXT NOT NULL COLLATE NOCASE,
            digest      TEXT NOT NULL,
            format      TEXT NOT NULL,
            path        TEXT NOT NULL UNIQUE,
            virtual_size INTEGER NOT NULL,
            created     TEXT NOT NULL,
            UNIQUE (location, digest, format)
        );
        CREATE TABLE disk_links (
            disk_id     INTEGER PRIMARY KEY REFERENCES disks(id) ON DELETE CASCADE,
            parent_id   INTEGER NOT NULL REFERENCES linked_parents(id) ON DELETE RESTRICT
        );
        CREATE INDEX disk_links_parent ON disk_links(parent_id)
        """
    )


def _m0006_compute(con: sqlite3.Connection) -> None:
    """Virtual machines (``Microsoft.Compute/virtualMachines``) and scale sets
    (``virtualMachineScaleSets``); a scale set's instances are VM rows with ``vmss_id`` set
    (their ``instance_id`` is the scale set's instance number)."""
    _script(
        con,
        """
        CREATE TABLE compute_vmss (
            id          INTEGER PRIMARY KEY,
            rg          TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            created     TEXT NOT NULL,
            UNIQUE (rg, name)
        );
        CREATE TABLE compute_vms (
            id          INTEGER PRIMARY KEY,
            rg          TEXT NOT NULL COLLATE NOCASE,
            name        TEXT NOT NULL COLLATE NOCASE,
            location    TEXT NOT NULL,
            tags        TEXT NOT NULL DEFAULT '{}',
            props       TEXT NOT NULL,
            vmss_id     INTEGER REFERENCES compute_vmss(id) ON DELETE CASCADE,
            instance_id INTEGER,
            created     TEXT NOT NULL,
            UNIQUE (rg, name)
        );
        CREATE INDEX compute_vms_vmss ON compute_vms(vmss_id, instance_id)
        """
    )


def _m0007_directory(con: Database) -> None:
    """The directory and RBAC (issue 15): tenants, subscriptions (one home tenant each),
    users, groups and their members (users, groups, service principals: whose secrets stay in
    ``identity/directory.sqlite``), role assignments. Role definitions are the built-ins in
    code (:mod:`imagestore.identity.roles`). The local tenant and subscription are seeded."""
    _script(
        con,
        """
        CREATE TABLE ad_tenants (
            id           TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            domain       TEXT NOT NULL UNIQUE COLLATE NOCASE,
            created      TEXT NOT NULL
        );
        CREATE TABLE ad_subscriptions (
            id           TEXT PRIMARY KEY,
            name         TEXT NOT NULL,
            tenant_id    TEXT NOT NULL REFERENCES ad_tenants(id) ON DELETE RESTRICT,
            created      TEXT NOT NULL
        );
        CREATE TABLE ad_users (
            object_id    TEXT PRIMARY KEY,
            tenant_id    TEXT NOT NULL REFERENCES ad_tenants(id) ON DELETE RESTRICT,
            upn          TEXT NOT NULL UNIQUE COLLATE NOCASE,
            display_name TEXT NOT NULL,
            created      TEXT NOT NULL
        );
        CREATE TABLE ad_groups (
            object_id    TEXT PRIMARY KEY,
            tenant_id    TEXT NOT NULL REFERENCES ad_tenants(id) ON DELETE RESTRICT,
            display_name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            mail_nickname TEXT NOT NULL,
            created      TEXT NOT NULL
        );
        CREATE TABLE ad_group_members (
            group_id     TEXT NOT NULL REFERENCES ad_groups(object_id) ON DELETE CASCADE,
            member_id    TEXT NOT NULL,
            member_type  TEXT NOT NULL,
            PRIMARY KEY (group_id, member_id)
        );
        CREATE INDEX ad_group_members_member ON ad_group_members(member_id);
        CREATE TABLE role_assignments (
            id             TEXT PRIMARY KEY,
            principal_id   TEXT NOT NULL,
            principal_type TEXT NOT NULL,
            role_id        TEXT NOT NULL,
            scope          TEXT NOT NULL,
            scope_key      TEXT NOT NULL,
            created        TEXT NOT NULL,
            created_by     TEXT NOT NULL,
            UNIQUE (principal_id, role_id, scope_key)
        );
        CREATE INDEX role_assignments_principal ON role_assignments(principal_id)
        """,
    )
    # the fixed local ids, as literals: a migration never changes (identity.account.TENANT,
    # ids.SUBSCRIPTION)
    tenant, subscription = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000000"
    now = datetime.now(UTC).isoformat()
    con.execute("INSERT INTO ad_tenants(id, display_name, domain, created) VALUES (?,?,?,?)",
                (tenant, "imagestore local", "imagestore.local", now))
    con.execute("INSERT INTO ad_subscriptions(id, name, tenant_id, created) VALUES (?,?,?,?)",
                (subscription, "imagestore local", tenant, now))


def _m0011_custom_roles(con: Database) -> None:
    """Custom role definitions (issue 15): a GUID, a name unique in the store (any case),
    the permissions (actions, notActions, dataActions, notDataActions) and assignable scopes
    as JSON text; the built-in roles stay in code (:mod:`imagestore.identity.roles`)."""
    _script(
        con,
        """
        CREATE TABLE role_definitions (
            id                TEXT PRIMARY KEY,
            name              TEXT NOT NULL,
            name_key          TEXT NOT NULL UNIQUE,
            description       TEXT NOT NULL,
            permissions       TEXT NOT NULL,
            assignable_scopes TEXT NOT NULL,
            created           TEXT NOT NULL,
            created_by        TEXT NOT NULL,
            updated           TEXT NOT NULL,
            updated_by        TEXT NOT NULL
        )
        """,
    )


def _m0012_dedup_domains(con: Database) -> None:
    """Dedup domains (issue 15): the domain number each tenant other than the local one
    captures in (``store/domains.py``); a row is added on the tenant's first capture and
    never changes or goes (its number is in the ids of the tenant's chunks)."""
    _script(
        con,
        """
        CREATE TABLE dedup_domains (
            tenant_id  TEXT PRIMARY KEY,
            tag        INTEGER NOT NULL UNIQUE,
            created    TEXT NOT NULL
        )
        """,
    )


def _m0010_soft_delete(con: Database) -> None:
    """Soft-deleted image versions (issue 15): the version's rows stay (so its manifests and
    chunks stay), this row says since when it is deleted."""
    _script(
        con,
        """
        CREATE TABLE soft_deleted_versions (
            version_id  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
            deleted     TEXT NOT NULL,
            PRIMARY KEY (version_id)
        )
        """,
    )


def _m0008_resource_groups(con: Database) -> None:
    """Resource groups as rows (issue 15): each in one subscription. A name is unique in the
    store (not only in its subscription), so every table keyed by ``(rg, name)`` stays as it
    is and a resource's subscription is its group's. A name without a row belongs to the
    local subscription (stores made before this step keep working; nothing is backfilled)."""
    _script(
        con,
        """
        CREATE TABLE resource_groups (
            id              INTEGER PRIMARY KEY,
            subscription_id TEXT NOT NULL REFERENCES ad_subscriptions(id) ON DELETE RESTRICT,
            name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
            location        TEXT NOT NULL,
            tags            TEXT NOT NULL DEFAULT '{}',
            created         TEXT NOT NULL
        );
        CREATE INDEX resource_groups_subscription ON resource_groups(subscription_id)
        """,
    )


def _m0013_capture_intents(con: Database) -> None:
    """Capture intents (``gallery/capture_intents.py``): a capture names the manifests it is
    about to publish before the row that will reference them exists, so that those a kill
    leaves behind are told from a user's ``store ingest`` and removed by ``store gc``.
    ``store`` is the capturing store's root: its ``local`` region is that directory's own."""
    _script(
        con,
        """
        CREATE TABLE capture_intents (
            id       INTEGER PRIMARY KEY,
            host     TEXT NOT NULL,
            pid      INTEGER NOT NULL,
            region   TEXT NOT NULL,
            store    TEXT NOT NULL,
            digests  TEXT NOT NULL,
            created  REAL NOT NULL
        )
        """,
    )


#: ordered, named schema steps; append only, never edit a released step
MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_replication", _m0002_replication),
    ("0003_snapshots_images", _m0003_snapshots_images),
    ("0004_operations", _m0004_operations),
    ("0005_linked_parents", _m0005_linked_parents),
    ("0006_compute", _m0006_compute),
    ("0007_directory", _m0007_directory),  # tenants, principals, role assignments (issue 15)
    ("0011_custom_roles", _m0011_custom_roles),  # custom role definitions (issue 15)
    ("0012_dedup_domains", _m0012_dedup_domains),  # a dedup domain per tenant (issue 15)
    ("0010_soft_delete", _m0010_soft_delete),  # soft-deleted image versions (issue 15)
    ("0008_resource_groups", _m0008_resource_groups),  # rgs in subscriptions (issue 15)
    ("0013_capture_intents", _m0013_capture_intents),  # orphan manifests of killed captures
]


def connect(target: str) -> Database:
    """Open (creating if needed) and migrate the gallery database at ``target``: a SQLite
    path, or a ``postgresql://`` URL. A SQLite file this user may only read is opened
    read-only and not migrated."""
    con = backends.connect(target)
    if not getattr(con, "readonly", False):
        try:
            migrate(con)
        except BaseException:
            con.close()
            raise
    return con


def open_readonly(target: str) -> Database:
    """The database opened read-only and not migrated (reports such as ``store verify``)."""
    return backends.connect(target, readonly=True)


def applied(con: Database) -> list[str]:
    """Names of the migrations applied, in order."""
    return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY seq")]


def check_schema(con: Database) -> list[str]:
    """The migrations applied; NotAStore (nothing changed) for a database of another schema:
    tables but no ``schema_migrations``, or migrations this imagestore does not know."""
    tables = {t.lower() for t in con.table_names()}
    if "schema_migrations" not in tables:
        if tables:
            raise NotAStore(f"gallery database {con.label}: holds tables "
                            f"({', '.join(sorted(tables)[:3])}{', …' if len(tables) > 3 else ''})"
                            f" but no imagestore schema_migrations: not an imagestore gallery")
        return []
    done = applied(con)
    known = {name for name, _ in MIGRATIONS}
    unknown = [n for n in done if n not in known]
    if unknown:
        raise NotAStore(f"gallery database {con.label}: schema migration '{unknown[0]}' is "
                        f"newer than this imagestore knows (upgrade imagestore)")
    return done


def migrate(con: Database) -> None:
    """Apply the migrations not applied yet, each in its own transaction, under the
    backend's migration lock (several processes may open a fresh database at once)."""
    if len(check_schema(con)) == len(MIGRATIONS):
        return  # the common case: nothing to do, no lock taken
    with con.migration_lock():
        done = set(check_schema(con))
        if len(done) == len(MIGRATIONS):
            return
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
        )
        for seq, (name, step) in enumerate(MIGRATIONS, start=1):
            if name in done:
                continue
            with transaction(con):
                # re-check inside the write lock: another process may have migrated meanwhile
                if con.execute("SELECT 1 FROM schema_migrations WHERE name=?",
                               (name,)).fetchone():
                    continue
                step(con)
                con.execute(
                    "INSERT INTO schema_migrations(seq, name, applied_at) VALUES (?, ?, ?)",
                    (seq, name, datetime.now(UTC).isoformat()),
                )


@contextmanager
def transaction(con: Database) -> Iterator[Database]:
    """One write transaction: all of it is committed, or none of it."""
    with con.transaction():
        yield con
