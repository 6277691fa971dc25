"""The gallery library API: galleries, image definitions, image versions (and, in
:mod:`.disks`, disks made from them). The CLI is a thin layer over this.

Every change runs in one SQLite transaction. Image version capture writes its data to the
blob store first and inserts the version's rows only afterwards, so a failed capture leaves no
version behind (manifests it published are removed again; chunks it wrote are garbage for
``store gc``).

**Regions** come from the region registry (:mod:`imagestore.regions.registry`). A version is
captured into copy 0 of its source region (``location``; for ``local`` the store's own blob
store). Every target region, the source region included, has one ``version_regions`` row:
``Queued -> Replicating -> Completed | Failed`` with ``progress`` (percent), failure
``details`` and a generation counter ``gen`` (bumped when an update re-queues the region, so a
worker finishing an outdated pass never marks it Completed). The copying is done by
:mod:`.jobs` (a background worker, or inline for a synchronous command). ``provisioningState``
is ``Creating``/``Updating`` while regions are queued or replicating, then ``Succeeded`` when
every target region completed, ``Failed`` otherwise.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack

from ..errors import Conflict, IntegrityError, InvalidArgument, NotFound
from ..formats import open_disk
from ..home import DEFAULT_REGION, Home
from ..regions import replicas
from ..regions.registry import RegionRegistry
from ..store.cas import BlobStore
from ..store.ingest import IngestResult, ingest
from . import db, ids, patch, resources, shallow, validate
from .validate import iso, now_utc

#: a progress factory: label -> callable(done, total) with .close()
ProgressFactory = Callable[[str], object]

DEFAULT_LOCATION = DEFAULT_REGION

GALLERY_MUTABLE = ("tags", "properties.description")
IMAGE_MUTABLE = (
    "tags",
    "properties.recommended",
    "properties.description",
    "properties.endOfLifeDate",
    "properties.releaseNoteUri",
)
VERSION_MUTABLE = (
    "tags",
    "properties.publishingProfile.targetRegions",
    "properties.publishingProfile.replicaCount",
    "properties.publishingProfile.excludeFromLatest",
    "properties.publishingProfile.endOfLifeDate",
)
#: computed, read-only parts of a version's JSON that an update never sees
_VERSION_COMPUTED = ("replicationStatus",)

_G_SQL = "SELECT * FROM galleries WHERE rg = ? AND name = ?"
_I_SQL = (
    "SELECT i.*, g.rg AS rg, g.name AS gallery FROM images i "
    "JOIN galleries g ON g.id = i.gallery_id "
)
_V_SQL = (
    "SELECT v.*, g.rg AS rg, g.name AS gallery, i.name AS image, i.props AS image_props "
    "FROM versions v JOIN images i ON i.id = v.image_id JOIN galleries g ON g.id = i.gallery_id "
)


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False)


def source_path(uri: str) -> str:
    """A path or ``file://`` URI -> a path."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


#: region name -> its canonical name, or None when there is no such region
RegionLookup = Callable[[str], "str | None"]


class GalleryService:
    """``region_lookup`` overrides which regions exist (tests); by default the region
    registry of the store decides."""

    def __init__(self, home: Home, *, region_lookup: RegionLookup | None = None) -> None:
        self.home = home
        self.con: sqlite3.Connection = db.connect(home.db_path)
        self.registry = RegionRegistry(home)
        self.region_lookup = region_lookup

    def close(self) -> None:
        self.con.close()

    # -- regions: every existence check goes through _lookup_region ------------------------

    def _lookup_region(self, name: str) -> str | None:
        if self.region_lookup is not None:
            return self.region_lookup(name)
        r = self.registry.find(name)
        return r.name if r is not None else None

    def open_source_store(self, location: str) -> tuple[BlobStore, bool]:
        """Copy 0 of region ``location``, where captures go; the flag says whether the
        caller must close it (the home's cached ``local`` store is shared)."""
        if location.lower() == DEFAULT_REGION:
            return self.home.blob_store(DEFAULT_REGION), False
        region = self.registry.get(location, "--location")
        replicas.check_zones(region, [region.zones[0]])
        return replicas.open_slot(region.zones[0], self.home.config), True

    def region_copies(self, region_name: str, copies: int, sku: str) -> list[str]:
        """Slot directories of a version's copies in a region (placement order), followed by
        any other slot of the region (fail-over reads may use them too)."""
        region = self.registry.get(region_name, "--location")
        plan = replicas.plan_copies(region, copies, sku)
        return plan + [p for p in replicas.region_slots(region) if p not in plan]

    def region_exists(self, name: str) -> bool:
        return self._lookup_region(name) is not None

    def require_region(self, name: str, field: str = "--location") -> str:
        validate.region_name(name, field)
        canon = self._lookup_region(name)
        if canon is None:
            raise NotFound(f"{field}: region '{name}' not found (create it with 'imagestore region create')")
        return canon

    def holds_only_copy(self, region: str) -> list[str]:
        """Ids of the versions whose only Completed copy is in ``region`` (the region
        registry refuses to delete such a region)."""
        rows = self.con.execute(
            _V_SQL + "WHERE EXISTS (SELECT 1 FROM version_regions r WHERE r.version_id = v.id "
            "AND r.region = ? AND r.state = 'Completed') AND NOT EXISTS (SELECT 1 FROM "
            "version_regions r WHERE r.version_id = v.id AND r.region <> ? AND "
            "r.state = 'Completed') ORDER BY g.rg, g.name, i.name, v.major, v.minor, v.patch",
            (region, region),
        ).fetchall()
        return [ids.version_id(r["rg"], r["gallery"], r["image"], r["name"]) for r in rows]

    # -- row lookups -----------------------------------------------------------------------

    def _gallery_row(self, rg: str, name: str) -> sqlite3.Row:
        row = self.con.execute(_G_SQL, (rg, name)).fetchone()
        if row is None:
            raise NotFound(f"gallery '{name}' not found in resource group '{rg}'")
        return row

    def _image_row(self, rg: str, gallery: str, name: str) -> sqlite3.Row:
        self._gallery_row(rg, gallery)
        row = self.con.execute(
            _I_SQL + "WHERE g.rg = ? AND g.name = ? AND i.name = ?", (rg, gallery, name)
        ).fetchone()
        if row is None:
            raise NotFound(f"image definition '{gallery}/{name}' not found in resource group '{rg}'")
        return row

    def _version_row(self, rg: str, gallery: str, image: str, version: str,
                     field: str = "--gallery-image-version") -> sqlite3.Row:
        self._image_row(rg, gallery, image)
        major, minor, patch_ = validate.version_name(version, field)
        row = self.con.execute(
            _V_SQL + "WHERE g.rg = ? AND g.name = ? AND i.name = ? AND v.major = ? AND v.minor = ? "
            "AND v.patch = ?",
            (rg, gallery, image, major, minor, patch_),
        ).fetchone()
        if row is None:
            raise NotFound(f"image version '{gallery}/{image}/{version}' not found in resource group '{rg}'")
        return row

    def version_row_by_pk(self, version_pk: int) -> sqlite3.Row | None:
        return self.con.execute(_V_SQL + "WHERE v.id = ?", (version_pk,)).fetchone()

    def version_pk(self, rg: str, gallery: str, image: str, version: str) -> int:
        return self._version_row(rg, gallery, image, version)["id"]

    def _disks_of(self, version_pk: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT * FROM version_disks WHERE version_id = ? ORDER BY lun", (version_pk,)
        ).fetchall()

    def _regions_of(self, version_pk: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT * FROM version_regions WHERE version_id = ? ORDER BY rowid", (version_pk,)
        ).fetchall()

    def _version_json(self, row: sqlite3.Row, expand: bool = False) -> dict:
        return resources.version_json(
            row, self._disks_of(row["id"]), self._regions_of(row["id"]), expand_replication=expand
        )

    # -- galleries -------------------------------------------------------------------------

    def create_gallery(self, rg: str, name: str, *, location: str | None = None,
                       description: str | None = None, tags: dict | None = None) -> dict:
        validate.resource_group(rg)
        validate.gallery_name(name)
        location = self.require_region(location or DEFAULT_LOCATION)
        props = {}
        if description is not None:
            props["description"] = validate.text("--description", description)
        with db.transaction(self.con):
            if self.con.execute(_G_SQL, (rg, name)).fetchone():
                raise Conflict(f"gallery '{name}' already exists in resource group '{rg}'")
            self.con.execute(
                "INSERT INTO galleries(rg, name, location, tags, props, created) VALUES (?,?,?,?,?,?)",
                (rg, name, location, _dumps(tags or {}), _dumps(props), iso(now_utc())),
            )
        return self.show_gallery(rg, name)

    def show_gallery(self, rg: str, name: str) -> dict:
        return resources.gallery_json(self._gallery_row(rg, name))

    def list_galleries(self, rg: str | None = None) -> list[dict]:
        if rg is None:
            rows = self.con.execute("SELECT * FROM galleries ORDER BY rg, name").fetchall()
        else:
            rows = self.con.execute("SELECT * FROM galleries WHERE rg = ? ORDER BY name", (rg,)).fetchall()
        return [resources.gallery_json(r) for r in rows]

    def update_gallery(self, rg: str, name: str, *, description: str | None = None,
                       tags: dict | None = None, sets: Iterable[str] = ()) -> dict:
        cur = self.show_gallery(rg, name)
        new = copy.deepcopy(cur)
        if description is not None:
            new["properties"]["description"] = description
        if tags is not None:
            new["tags"] = tags
        for s in sets:
            patch.apply_set(new, s)
        self._check_changes(cur, new, GALLERY_MUTABLE)
        props = {}
        d = validate.text("properties.description", new["properties"].get("description"))
        if d is not None:
            props["description"] = d
        new_tags = validate.tags_value("tags", new.get("tags"))
        with db.transaction(self.con):
            row = self._gallery_row(rg, name)
            self.con.execute(
                "UPDATE galleries SET props = ?, tags = ? WHERE id = ?",
                (_dumps(props), _dumps(new_tags), row["id"]),
            )
        return self.show_gallery(rg, name)

    def delete_gallery(self, rg: str, name: str) -> None:
        with db.transaction(self.con):
            row = self._gallery_row(rg, name)
            imgs = [r[0] for r in self.con.execute(
                "SELECT name FROM images WHERE gallery_id = ? ORDER BY name", (row["id"],))]
            if imgs:
                raise Conflict(
                    f"gallery '{name}' still contains {len(imgs)} image definition(s): "
                    f"{', '.join(imgs)}; delete them first"
                )
            self.con.execute("DELETE FROM galleries WHERE id = ?", (row["id"],))

    # -- image definitions ------------------------------------------------------------------

    def create_image(
        self, rg: str, gallery: str, name: str, *, publisher: str, offer: str, sku: str,
        os_type: str, os_state: str | None = None, hyper_v_generation: str | None = None,
        architecture: str | None = None, features: list[str] | None = None,
        description: str | None = None, eula: str | None = None,
        privacy_statement_uri: str | None = None, release_note_uri: str | None = None,
        end_of_life_date: str | None = None, minimum_cpu_core: int | None = None,
        maximum_cpu_core: int | None = None, minimum_memory: int | None = None,
        maximum_memory: int | None = None, disallowed_disk_types: list[str] | None = None,
        plan_publisher: str | None = None, plan_name: str | None = None,
        plan_product: str | None = None, location: str | None = None, tags: dict | None = None,
    ) -> dict:
        validate.resource_group(rg)
        validate.gallery_name(gallery)
        validate.image_name(name)
        grow = self._gallery_row(rg, gallery)
        ident = {
            "publisher": validate.identifier_part("--publisher", publisher, 128),
            "offer": validate.identifier_part("--offer", offer, 64),
            "sku": validate.identifier_part("--sku", sku, 64),
        }
        if os_type is None:
            raise InvalidArgument("--os-type: required (Linux or Windows)")
        hvg = validate.enum("--hyper-v-generation", hyper_v_generation or "V1", validate.HYPER_V_GENERATIONS)
        props: dict = {
            "osType": validate.enum("--os-type", os_type, validate.OS_TYPES),
            "osState": validate.enum("--os-state", os_state or "Generalized", validate.OS_STATES),
            "hyperVGeneration": hvg,
            "identifier": ident,
            "architecture": validate.enum("--architecture", architecture or "x64", validate.ARCHITECTURES),
        }
        for key, field, value in (
            ("description", "--description", description),
            ("eula", "--eula", eula),
        ):
            if value is not None:
                props[key] = validate.text(field, value)
        for key, field, value in (
            ("privacyStatementUri", "--privacy-statement-uri", privacy_statement_uri),
            ("releaseNoteUri", "--release-note-uri", release_note_uri),
        ):
            if value is not None:
                props[key] = validate.uri(field, value)
        eol = validate.end_of_life("--end-of-life-date", end_of_life_date)
        if eol:
            props["endOfLifeDate"] = eol
        rec = {}
        cpu = validate.resource_range("--minimum-cpu-core/--maximum-cpu-core", minimum_cpu_core, maximum_cpu_core)
        mem = validate.resource_range("--minimum-memory/--maximum-memory", minimum_memory, maximum_memory)
        if cpu:
            rec["vCPUs"] = cpu
        if mem:
            rec["memory"] = mem
        if rec:
            props["recommended"] = rec
        dt = validate.disk_types("--disallowed-disk-types", disallowed_disk_types)
        if dt:
            props["disallowed"] = {"diskTypes": dt}
        if plan_publisher or plan_name or plan_product:
            if not plan_name:
                raise InvalidArgument("--plan-name: required with --plan-publisher/--plan-product")
            if not plan_publisher:
                raise InvalidArgument("--plan-publisher: required with --plan-name/--plan-product")
            plan = {"name": plan_name, "publisher": plan_publisher}
            if plan_product:
                plan["product"] = plan_product
            props["purchasePlan"] = plan
        feats = validate.features(features, hvg)
        if feats:
            props["features"] = feats
        location = self.require_region(location or grow["location"])
        with db.transaction(self.con):
            if self.con.execute(
                "SELECT 1 FROM images WHERE gallery_id = ? AND name = ?", (grow["id"], name)
            ).fetchone():
                raise Conflict(f"image definition '{gallery}/{name}' already exists in resource group '{rg}'")
            dup = self.con.execute(
                "SELECT name FROM images WHERE gallery_id = ? AND publisher = ? AND offer = ? AND sku = ?",
                (grow["id"], ident["publisher"], ident["offer"], ident["sku"]),
            ).fetchone()
            if dup:
                raise Conflict(
                    f"properties.identifier: publisher/offer/sku '{ident['publisher']}/"
                    f"{ident['offer']}/{ident['sku']}' is already used by image definition "
                    f"'{dup[0]}' in gallery '{gallery}'"
                )
            self.con.execute(
                "INSERT INTO images(gallery_id, name, location, tags, props, publisher, offer, sku, "
                "created) VALUES (?,?,?,?,?,?,?,?,?)",
                (grow["id"], name, location, _dumps(tags or {}), _dumps(props), ident["publisher"],
                 ident["offer"], ident["sku"], iso(now_utc())),
            )
        return self.show_image(rg, gallery, name)

    def show_image(self, rg: str, gallery: str, name: str) -> dict:
        return resources.image_json(self._image_row(rg, gallery, name))

    def list_images(self, rg: str, gallery: str) -> list[dict]:
        self._gallery_row(rg, gallery)
        rows = self.con.execute(
            _I_SQL + "WHERE g.rg = ? AND g.name = ? ORDER BY i.name", (rg, gallery)
        ).fetchall()
        return [resources.image_json(r) for r in rows]

    def update_image(
        self, rg: str, gallery: str, name: str, *, description: str | None = None,
        end_of_life_date: str | None = None, release_note_uri: str | None = None,
        minimum_cpu_core: int | None = None, maximum_cpu_core: int | None = None,
        minimum_memory: int | None = None, maximum_memory: int | None = None,
        tags: dict | None = None, sets: Iterable[str] = (),
    ) -> dict:
        cur = self.show_image(rg, gallery, name)
        new = copy.deepcopy(cur)
        p = new["properties"]
        if description is not None:
            p["description"] = description
        if end_of_life_date is not None:
            p["endOfLifeDate"] = end_of_life_date
        if release_note_uri is not None:
            p["releaseNoteUri"] = release_note_uri
        for key, which, value in (
            ("vCPUs", "min", minimum_cpu_core), ("vCPUs", "max", maximum_cpu_core),
            ("memory", "min", minimum_memory), ("memory", "max", maximum_memory),
        ):
            if value is not None:
                p.setdefault("recommended", {}).setdefault(key, {})[which] = value
        if tags is not None:
            new["tags"] = tags
        for s in sets:
            patch.apply_set(new, s)
        self._check_changes(cur, new, IMAGE_MUTABLE)
        p = new["properties"]
        props = {k: v for k, v in json.loads(self._image_row(rg, gallery, name)["props"]).items()}
        for key, f in (("description", validate.text), ("releaseNoteUri", validate.uri)):
            v = f(f"properties.{key}", p.get(key))
            if v is None:
                props.pop(key, None)
            else:
                props[key] = v
        if p.get("endOfLifeDate") != cur["properties"].get("endOfLifeDate"):
            eol = validate.end_of_life("properties.endOfLifeDate", p.get("endOfLifeDate"))
            if eol is None:
                props.pop("endOfLifeDate", None)
            else:
                props["endOfLifeDate"] = eol
        rec_in = p.get("recommended") or {}
        if not isinstance(rec_in, dict):
            raise InvalidArgument("properties.recommended: must be an object")
        rec = {}
        for key in rec_in:
            if key not in ("vCPUs", "memory"):
                raise Conflict(f"Changing property 'properties.recommended.{key}' is not allowed")
            r = rec_in[key] or {}
            if not isinstance(r, dict) or set(r) - {"min", "max"}:
                raise InvalidArgument(f"properties.recommended.{key}: must be an object with min and max")
            rr = validate.resource_range(f"properties.recommended.{key}", r.get("min"), r.get("max"))
            if rr:
                rec[key] = rr
        if rec:
            props["recommended"] = rec
        else:
            props.pop("recommended", None)
        new_tags = validate.tags_value("tags", new.get("tags"))
        with db.transaction(self.con):
            row = self._image_row(rg, gallery, name)
            self.con.execute(
                "UPDATE images SET props = ?, tags = ? WHERE id = ?",
                (_dumps(props), _dumps(new_tags), row["id"]),
            )
        return self.show_image(rg, gallery, name)

    def delete_image(self, rg: str, gallery: str, name: str) -> None:
        with db.transaction(self.con):
            row = self._image_row(rg, gallery, name)
            vs = [r[0] for r in self.con.execute(
                "SELECT name FROM versions WHERE image_id = ? ORDER BY major, minor, patch",
                (row["id"],))]
            if vs:
                raise Conflict(
                    f"image definition '{gallery}/{name}' still has {len(vs)} image version(s): "
                    f"{', '.join(vs)}; delete them first"
                )
            self.con.execute("DELETE FROM images WHERE id = ?", (row["id"],))

    # -- image versions ---------------------------------------------------------------------

    def _norm_target_regions(self, trs, replica_count: int, sat: str, location: str,
                             field: str) -> list[dict]:
        if not isinstance(trs, list) or not trs:
            raise InvalidArgument(f"{field}: must list at least one region")
        out: list[dict] = []
        seen: set[str] = set()
        for i, tr in enumerate(trs):
            if not isinstance(tr, dict) or not tr.get("name"):
                raise InvalidArgument(f"{field}[{i}]: must be an object with a name")
            extra = set(tr) - {"name", "regionalReplicaCount", "storageAccountType", "excludeFromLatest"}
            if extra:
                raise InvalidArgument(f"{field}[{i}]: unknown property '{sorted(extra)[0]}'")
            name = self.require_region(str(tr["name"]), field)
            if name.lower() in seen:
                raise InvalidArgument(f"{field}: region '{name}' is listed twice")
            seen.add(name.lower())
            d = {
                "name": name,
                "regionalReplicaCount": validate.replica_count(
                    f"{field}[{i}].regionalReplicaCount",
                    tr.get("regionalReplicaCount", replica_count)),
                "storageAccountType": validate.enum(
                    f"{field}[{i}].storageAccountType", tr.get("storageAccountType") or sat,
                    validate.STORAGE_ACCOUNT_TYPES),
            }
            if tr.get("excludeFromLatest") is not None:
                d["excludeFromLatest"] = validate.boolean(
                    f"{field}[{i}].excludeFromLatest", tr["excludeFromLatest"])
            if d["storageAccountType"] == "Standard_ZRS":
                region = self.registry.find(name) if self.region_lookup is None else None
                if region is not None and d["regionalReplicaCount"] > len(region.zones):
                    raise InvalidArgument(
                        f"{field}: region '{name}': Standard_ZRS keeps each of "
                        f"{d['regionalReplicaCount']} copies in a distinct zone, but the region "
                        f"has {len(region.zones)} zone(s)")
            out.append(d)
        if location.lower() not in seen:
            raise InvalidArgument(f"{field}: must include the source region '{location}'")
        total = sum(d["regionalReplicaCount"] for d in out)
        if total > validate.MAX_REPLICAS:
            raise InvalidArgument(
                f"{field}: {total} replicas in total; an image version has at most "
                f"{validate.MAX_REPLICAS} replicas over all its regions")
        return out

    def _source_rows_by_reference(self, ref_text: str, rg: str, img: sqlite3.Row) -> tuple[str, list[dict]]:
        ref = ids.parse_image_ref(ref_text, rg, field="--image-version")
        if ref.is_latest:
            src = self.latest_version_row(ref.rg, ref.gallery, ref.image)
        else:
            src = self._version_row(ref.rg, ref.gallery, ref.image, ref.version, "--image-version")
        sprops = json.loads(src["image_props"])
        tprops = json.loads(img["props"])
        for key in ("osType", "hyperVGeneration"):
            if sprops.get(key) != tprops.get(key):
                raise InvalidArgument(
                    f"--image-version: the source's {key} '{sprops.get(key)}' does not match "
                    f"image definition '{img['name']}' ({tprops.get(key)})"
                )
        if src["provisioning_state"] != "Succeeded":
            raise Conflict(f"--image-version: source version '{src['name']}' is {src['provisioning_state']}")
        disks = []
        for d in self._disks_of(src["id"]):
            row = dict(d)
            row["stored_bytes"] = 0  # copied by reference: no data written
            disks.append(row)
        sid = ids.version_id(src["rg"], src["gallery"], src["image"], src["name"])
        return sid, disks

    def create_version(
        self, rg: str, gallery: str, image: str, version: str, *,
        os_vhd_uri: str | None = None, data_vhds_uris: list[str] | tuple[str, ...] = (),
        data_vhds_luns: list[int] | tuple[int, ...] = (), image_version: str | None = None,
        location: str | None = None, target_regions: list[str] | None = None,
        replica_count: int | None = None, storage_account_type: str | None = None,
        replication_mode: str | None = None, exclude_from_latest: bool = False,
        end_of_life_date: str | None = None, block_deletion_before_end_of_life: bool = False,
        allow_deletion_of_replicated_locations: bool = False, tags: dict | None = None,
        progress: ProgressFactory | None = None, threads: int = 2,
        allow_parent_dir: str | None = None, no_wait: bool = False,
    ) -> dict:
        """Create a version. ``no_wait``: return at once (provisioningState Creating); the
        capture and the replication run in the background worker. Otherwise the capture runs
        here and any replication work is done before returning (a failed region raises
        Conflict; the version stays, Failed, as in Azure)."""
        # 1. validate everything before writing anything
        validate.resource_group(rg)
        img = self._image_row(rg, gallery, image)
        major, minor, patch_ = validate.version_name(version)
        if self._version_exists(img["id"], major, minor, patch_):
            raise Conflict(f"image version '{gallery}/{image}/{version}' already exists")
        location = self.require_region(location or DEFAULT_LOCATION)
        rc = validate.replica_count("--replica-count", replica_count) or 1
        sat = validate.enum("--storage-account-type", storage_account_type or "Standard_LRS",
                            validate.STORAGE_ACCOUNT_TYPES)
        mode = validate.enum("--replication-mode", replication_mode or "Full", validate.REPLICATION_MODES)
        trs = validate.parse_target_regions(target_regions) if target_regions else [{"name": location}]
        trs = self._norm_target_regions(trs, rc, sat, location, "--target-regions")
        eol = validate.end_of_life("--end-of-life-date", end_of_life_date)
        if block_deletion_before_end_of_life and not eol:
            raise InvalidArgument("--block-deletion-before-end-of-life: needs --end-of-life-date")
        data_vhds_uris = list(data_vhds_uris or ())
        data_vhds_luns = list(data_vhds_luns or ())
        if image_version and (os_vhd_uri or data_vhds_uris):
            raise InvalidArgument("--image-version: cannot be combined with --os-vhd-uri or --data-vhds-uris")
        if not image_version and not os_vhd_uri:
            raise InvalidArgument("--os-vhd-uri: required (or --image-version to copy an existing version)")
        if data_vhds_luns and len(data_vhds_luns) != len(data_vhds_uris):
            raise InvalidArgument(
                f"--data-vhds-luns: {len(data_vhds_luns)} LUN(s) given for "
                f"{len(data_vhds_uris)} --data-vhds-uris"
            )
        if not data_vhds_luns:
            data_vhds_luns = list(range(len(data_vhds_uris)))
        seen_luns: set[int] = set()
        for lun in data_vhds_luns:
            if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= validate.MAX_LUN:
                raise InvalidArgument(f"--data-vhds-luns: '{lun}' must be an integer from 0 to {validate.MAX_LUN}")
            if lun in seen_luns:
                raise InvalidArgument(f"--data-vhds-luns: LUN {lun} is used twice")
            seen_luns.add(lun)
        sources: list[tuple[int, str, str]] = []  # (lun or -1, uri as given, path)
        if os_vhd_uri:
            sources.append((-1, os_vhd_uri, source_path(os_vhd_uri)))
        for lun, u in zip(data_vhds_luns, data_vhds_uris, strict=True):
            sources.append((lun, u, source_path(u)))
        seen_src: dict[str, str] = {}
        for lun, u, p in sources:
            field = "--os-vhd-uri" if lun < 0 else "--data-vhds-uris"
            if "://" in u and not u.startswith("file://"):
                raise InvalidArgument(f"{field}: '{u}': only local paths and file:// URIs are supported")
            if not os.path.exists(p):
                raise NotFound(f"{field}: {p}: no such file")
            real = os.path.realpath(p)
            if real in seen_src:
                raise InvalidArgument(f"{field}: source '{u}' is used twice (also as {seen_src[real]})")
            seen_src[real] = u
        now = iso(now_utc())
        pp: dict = {
            "targetRegions": trs,
            "replicaCount": rc,
            "excludeFromLatest": bool(exclude_from_latest),
            "publishedDate": now,
            "storageAccountType": sat,
            "replicationMode": mode,
        }
        if eol:
            pp["endOfLifeDate"] = eol
        props = {
            "publishingProfile": pp,
            "safetyProfile": {
                "allowDeletionOfReplicatedLocations": bool(allow_deletion_of_replicated_locations),
                "blockDeletionBeforeEndOfLife": bool(block_deletion_before_end_of_life),
            },
        }
        # 2. the data
        shallow_mode = mode == "Shallow"
        if shallow_mode:
            others = [t["name"] for t in trs if t["name"].lower() != location.lower()]
            if others:
                raise InvalidArgument(
                    f"--target-regions: a Shallow version lives in its source region "
                    f"'{location}' only (it references the source file); remove {', '.join(others)}")
        store, close_store = self.open_source_store(location)
        published: list[str] = []  # manifests this call created (removed again on failure)
        source_id: str | None = None
        disk_rows: list[dict] = []
        capture_later = False
        try:
            if image_version:
                source_id, disk_rows = self._source_rows_by_reference(image_version, rg, img)
            elif shallow_mode:
                disk_rows = self._shallow_rows(sources, allow_parent_dir)
            elif no_wait:
                self._check_sources(sources, allow_parent_dir)  # header checks only
                capture_later = True
            else:
                disk_rows = self._capture(store, sources, threads=threads, progress=progress,
                                          allow_parent_dir=allow_parent_dir, published=published)
            # 3. the rows, all in one transaction
            with db.transaction(self.con):
                if self._version_exists(img["id"], major, minor, patch_):
                    raise Conflict(f"image version '{gallery}/{image}/{version}' already exists")
                for d in disk_rows:
                    if d["digest"] and not image_version and not store.has_manifest(d["digest"]):
                        raise IntegrityError(
                            f"manifest {d['digest']} is missing from region '{location}' (removed "
                            f"by a concurrent deletion?); run the command again"
                        )
                states = {}
                for t in trs:
                    if shallow_mode:
                        done = True
                    elif capture_later or t["name"].lower() != location.lower():
                        done = False
                    else:  # the source region: copy 0 is the captured data itself
                        done = (t["regionalReplicaCount"] == 1
                                and t["storageAccountType"] != "Premium_LRS"
                                and all(not d["digest"] or store.has_manifest(d["digest"])
                                        for d in disk_rows))
                    states[t["name"]] = done
                pending = not all(states.values())
                cur = self.con.execute(
                    "INSERT INTO versions(image_id, name, major, minor, patch, location, tags, props, "
                    "provisioning_state, source_version_id, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (img["id"], version, major, minor, patch_, location, _dumps(tags or {}),
                     _dumps(props), "Creating" if pending else "Succeeded", source_id, now),
                )
                vpk = cur.lastrowid
                self._insert_disks(vpk, disk_rows)
                for t in trs:
                    done = states[t["name"]]
                    self.con.execute(
                        "INSERT INTO version_regions(version_id, region, state, progress, details, "
                        "updated) VALUES (?,?,?,?,?,?)",
                        (vpk, t["name"], "Completed" if done else "Queued", 100 if done else 0, "",
                         now))
                if pending:
                    from . import jobs

                    payload = {}
                    if capture_later:
                        payload["capture"] = {
                            "sources": [[lun, u, p] for lun, u, p in sources],
                            "allowParentDir": allow_parent_dir, "threads": threads}
                    jobs.queue_version_job(self.con, vpk, payload)
        except BaseException:
            for digest in published:
                if not self._digest_referenced(digest):
                    store.remove_manifest(digest)
            raise
        finally:
            if close_store:
                store.close()
        if pending:
            self._after_queue(vpk, no_wait=no_wait, progress=progress)
        return self.show_version(rg, gallery, image, version)

    def _after_queue(self, vpk: int, *, no_wait: bool, progress: ProgressFactory | None) -> None:
        """Work was queued for the version: hand it to a background worker (``no_wait``) or
        do it now and report a failure as an error."""
        from . import jobs

        if no_wait:
            jobs.ensure_worker(self)
            return
        jobs.run_inline(self, vpk, progress=progress)
        self._raise_if_failed(vpk)

    def _raise_if_failed(self, vpk: int) -> None:
        row = self.version_row_by_pk(vpk)
        if row is None or row["provisioning_state"] != "Failed":
            return
        failed = [r for r in self._regions_of(vpk) if r["state"] == "Failed"]
        why = "; ".join(f"region '{r['region']}': {r['details']}" for r in failed[:3])
        raise Conflict(f"image version '{row['gallery']}/{row['image']}/{row['name']}': "
                       f"provisioning failed ({why or 'see the replication status'})")

    def _check_sources(self, sources, allow_parent_dir: str | None) -> None:
        for _lun, _u, p in sources:
            open_disk(p, allow_parent_dir=allow_parent_dir).close()

    def _shallow_rows(self, sources, allow_parent_dir: str | None) -> list[dict]:
        rows = []
        for lun, _u, p in sources:
            r = open_disk(p, allow_parent_dir=allow_parent_dir)
            try:
                vsize, fmt = r.virtual_size, r.format
            finally:
                r.close()
            real = os.path.realpath(p)
            rows.append({
                "lun": lun, "digest": "", "virtual_size": vsize, "allocated_bytes": 0,
                "data_bytes": 0, "stored_bytes": 0,
                "host_caching": "ReadWrite" if lun < 0 else "None",
                "source_uri": resources.file_uri(p), "source_format": fmt,
                "shallow_path": real, "fingerprint": _dumps(shallow.fingerprint(real)),
            })
        return rows

    def _capture(self, store: BlobStore, sources, *, threads: int,
                 progress: ProgressFactory | None, allow_parent_dir: str | None,
                 published: list[str]) -> list[dict]:
        """Ingest every source into ``store``; digests new to the store go to ``published``."""
        before = set(store.list_manifests())
        disk_rows: list[dict] = []
        with ExitStack() as stack:
            readers = []
            for lun, _u, p in sources:
                r = open_disk(p, allow_parent_dir=allow_parent_dir)
                stack.callback(r.close)
                readers.append((lun, p, r))
            for lun, p, r in readers:
                label = "capture os disk" if lun < 0 else f"capture data disk lun {lun}"
                bar = progress(label) if progress else None
                try:
                    res: IngestResult = ingest(store, r, threads=threads, progress=bar)
                finally:
                    if bar is not None:
                        bar.close()
                if res.digest not in before and res.digest not in published:
                    published.append(res.digest)
                disk_rows.append({
                    "lun": lun, "digest": res.digest, "virtual_size": res.virtual_size,
                    "allocated_bytes": res.allocated_bytes, "data_bytes": res.data_bytes,
                    "stored_bytes": res.stored_bytes,
                    "host_caching": "ReadWrite" if lun < 0 else "None",
                    "source_uri": resources.file_uri(p), "source_format": res.source_format,
                })
        return disk_rows

    def _insert_disks(self, vpk: int, disk_rows: list[dict]) -> None:
        for d in disk_rows:
            self.con.execute(
                "INSERT INTO version_disks(version_id, lun, digest, virtual_size, "
                "allocated_bytes, data_bytes, stored_bytes, host_caching, source_uri, "
                "source_format, shallow_path, fingerprint) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (vpk, d["lun"], d["digest"], d["virtual_size"], d["allocated_bytes"],
                 d["data_bytes"], d["stored_bytes"], d["host_caching"], d["source_uri"],
                 d["source_format"], d.get("shallow_path"), d.get("fingerprint")),
            )

    def _version_exists(self, image_pk: int, major: int, minor: int, patch_: int) -> bool:
        return self.con.execute(
            "SELECT 1 FROM versions WHERE image_id = ? AND major = ? AND minor = ? AND patch = ?",
            (image_pk, major, minor, patch_),
        ).fetchone() is not None

    def _digest_referenced(self, digest: str) -> bool:
        return self.con.execute(
            "SELECT 1 FROM version_disks WHERE digest = ? LIMIT 1", (digest,)
        ).fetchone() is not None

    def _sync_version_regions(self, version_pk: int, old_trs: list[dict],
                              target_regions: list[dict]) -> tuple[list[str], list[tuple[str, int]], bool]:
        """Update the version_regions rows for new target regions (inside the caller's
        transaction). New regions, more copies, another storage account type and Failed
        regions are (re-)queued with a new generation. Returns the regions removed, the
        regions whose copy count went down (name, new count) and whether work was queued."""
        rows = {r["region"].lower(): r for r in self._regions_of(version_pk)}
        old = {t["name"].lower(): t for t in old_trs}
        want = {t["name"].lower(): t for t in target_regions}
        now = iso(now_utc())
        removed = [rows[k]["region"] for k in rows if k not in want]
        for name in removed:
            self.con.execute("DELETE FROM version_regions WHERE version_id = ? AND region = ?",
                             (version_pk, name))
        fewer: list[tuple[str, int]] = []
        queued = False
        for key, t in want.items():
            r = rows.get(key)
            if r is None:
                self.con.execute(
                    "INSERT INTO version_regions(version_id, region, state, progress, details, "
                    "updated) VALUES (?,?,?,?,?,?)", (version_pk, t["name"], "Queued", 0, "", now))
                queued = True
                continue
            o = old.get(key, t)
            n_old, n_new = o["regionalReplicaCount"], t["regionalReplicaCount"]
            if n_new < n_old:
                fewer.append((r["region"], n_new))
            if (n_new > n_old or o["storageAccountType"] != t["storageAccountType"]
                    or r["state"] == "Failed"):
                self.con.execute(
                    "UPDATE version_regions SET state = 'Queued', progress = 0, details = '', "
                    "bytes_done = 0, gen = gen + 1, updated = ? WHERE version_id = ? AND region = ?",
                    (now, version_pk, r["region"]))
                queued = True
        return removed, fewer, queued

    def needed_copies(self, region: str, digest: str, exclude_version: int | None = None) -> int:
        """How many copies of ``digest`` the other versions targeting ``region`` need there."""
        rows = self.con.execute(
            "SELECT v.props AS props, r.region AS region FROM version_disks d "
            "JOIN versions v ON v.id = d.version_id JOIN version_regions r ON r.version_id = v.id "
            "WHERE d.digest = ? AND r.region = ? AND v.id IS NOT ?",
            (digest, region, exclude_version)).fetchall()
        need = 0
        for r in rows:
            for t in json.loads(r["props"])["publishingProfile"]["targetRegions"]:
                if t["name"].lower() == region.lower():
                    need = max(need, int(t.get("regionalReplicaCount") or 1))
        return need

    def drop_copies(self, region_name: str, digests: Iterable[str], keep: int,
                    exclude_version: int | None) -> list[str]:
        """Unpublish ``digests`` from the slots of a region beyond the first ``keep`` copies,
        keeping what other versions still need there. Returns the slots changed."""
        region = self.registry.find(region_name)
        if region is None:
            return []
        changed: list[str] = []
        for d in dict.fromkeys(x for x in digests if x):
            k = max(keep, self.needed_copies(region.name, d, exclude_version))
            changed += replicas.remove_copies(region, d, keep=k)
        return changed

    def show_version(self, rg: str, gallery: str, image: str, version: str, *,
                     expand: str | None = None) -> dict:
        exp = False
        if expand is not None:
            if expand.lower() != "replicationstatus":
                raise InvalidArgument(f"--expand: '{expand}' is not ReplicationStatus")
            exp = True
        return self._version_json(self._version_row(rg, gallery, image, version), exp)

    def list_versions(self, rg: str, gallery: str, image: str) -> list[dict]:
        self._image_row(rg, gallery, image)
        rows = self.con.execute(
            _V_SQL + "WHERE g.rg = ? AND g.name = ? AND i.name = ? ORDER BY v.major, v.minor, v.patch",
            (rg, gallery, image),
        ).fetchall()
        return [self._version_json(r) for r in rows]

    def update_version(
        self, rg: str, gallery: str, image: str, version: str, *,
        target_regions: list[str] | None = None, replica_count: int | None = None,
        exclude_from_latest: bool | str | None = None, end_of_life_date: str | None = None,
        tags: dict | None = None, sets: Iterable[str] = (), no_wait: bool = False,
        progress: ProgressFactory | None = None,
    ) -> dict:
        """Update the mutable fields. New regions and copies are replicated (in the background
        with ``no_wait``, else before returning); removed regions and copies are unpublished
        at once and their space reclaimed by a gc job of the region."""
        row = self._version_row(rg, gallery, image, version)
        cur = self._version_json(row)
        for k in _VERSION_COMPUTED:
            cur["properties"].pop(k, None)
        new = copy.deepcopy(cur)
        pp = new["properties"]["publishingProfile"]
        if replica_count is not None:
            pp["replicaCount"] = replica_count
        if target_regions is not None:
            pp["targetRegions"] = validate.parse_target_regions(target_regions)
        if exclude_from_latest is not None:
            pp["excludeFromLatest"] = validate.boolean("--exclude-from-latest", exclude_from_latest)
        if end_of_life_date is not None:
            pp["endOfLifeDate"] = end_of_life_date
        if tags is not None:
            new["tags"] = tags
        for s in sets:
            patch.apply_set(new, s)
        self._check_changes(cur, new, VERSION_MUTABLE)
        pp = new["properties"]["publishingProfile"]
        old_pp = cur["properties"]["publishingProfile"]
        rc = validate.replica_count("properties.publishingProfile.replicaCount", pp.get("replicaCount")) or 1
        field = "--target-regions" if target_regions is not None else "properties.publishingProfile.targetRegions"
        # regions given by --target-regions without a count take the (new) common count
        trs = self._norm_target_regions(pp.get("targetRegions"), rc, old_pp["storageAccountType"],
                                        row["location"], field)
        removed = sorted({t["name"].lower() for t in old_pp["targetRegions"]}
                         - {t["name"].lower() for t in trs})
        safety = json.loads(row["props"])["safetyProfile"]
        if removed and not safety.get("allowDeletionOfReplicatedLocations"):
            raise Conflict(
                f"{field}: removing region(s) {', '.join(removed)} is not allowed "
                f"(safetyProfile.allowDeletionOfReplicatedLocations is false)"
            )
        out_pp = dict(old_pp)
        out_pp["targetRegions"] = trs
        out_pp["replicaCount"] = rc
        out_pp["excludeFromLatest"] = bool(validate.boolean(
            "properties.publishingProfile.excludeFromLatest", pp.get("excludeFromLatest")))
        if pp.get("endOfLifeDate") != old_pp.get("endOfLifeDate"):
            eol = validate.end_of_life(
                "--end-of-life-date" if end_of_life_date is not None else
                "properties.publishingProfile.endOfLifeDate", pp.get("endOfLifeDate"))
            if eol is None:
                if json.loads(row["props"])["safetyProfile"].get("blockDeletionBeforeEndOfLife"):
                    raise InvalidArgument(
                        "properties.publishingProfile.endOfLifeDate: cannot be removed while "
                        "safetyProfile.blockDeletionBeforeEndOfLife is set")
                out_pp.pop("endOfLifeDate", None)
            else:
                out_pp["endOfLifeDate"] = eol
        if old_pp.get("replicationMode") == "Shallow":
            others = [t["name"] for t in trs if t["name"].lower() != row["location"].lower()]
            if others:
                raise InvalidArgument(
                    f"{field}: a Shallow version lives in its source region '{row['location']}' "
                    f"only; it cannot be replicated to {', '.join(others)}")
        props = json.loads(row["props"])
        props["publishingProfile"] = out_pp
        new_tags = validate.tags_value("tags", new.get("tags"))
        from . import jobs

        with db.transaction(self.con):
            row2 = self._version_row(rg, gallery, image, version)
            self.con.execute(
                "UPDATE versions SET props = ?, tags = ? WHERE id = ?",
                (_dumps(props), _dumps(new_tags), row2["id"]),
            )
            removed, fewer, queued = self._sync_version_regions(
                row2["id"], old_pp["targetRegions"], trs)
            if queued:
                if row2["provisioning_state"] != "Creating":
                    self.con.execute("UPDATE versions SET provisioning_state = 'Updating' "
                                     "WHERE id = ?", (row2["id"],))
                jobs.queue_version_job(self.con, row2["id"], {})
        digests = [d["digest"] for d in self._disks_of(row2["id"]) if d["digest"]]
        gc_regions = []
        for name in removed:
            if self.drop_copies(name, digests, 0, row2["id"]):
                gc_regions.append(name)
        for name, n in fewer:
            if self.drop_copies(name, digests, n, row2["id"]):
                gc_regions.append(name)
        if gc_regions:
            with db.transaction(self.con):
                for name in gc_regions:
                    jobs.queue_gc_job(self.con, name, row2["id"])
        if queued or gc_regions:
            self._after_queue(row2["id"], no_wait=no_wait, progress=progress)
        return self.show_version(rg, gallery, image, version)

    def delete_version(self, rg: str, gallery: str, image: str, version: str) -> list[str]:
        """Delete the version; its copies are unpublished from every region (keeping what
        other versions still use there). Returns the manifest digests no version references
        any more (their chunks are garbage for ``store gc`` / ``region gc``)."""
        from . import jobs

        with db.transaction(self.con):
            row = self._version_row(rg, gallery, image, version)
            props = json.loads(row["props"])
            eol = props["publishingProfile"].get("endOfLifeDate")
            if props["safetyProfile"].get("blockDeletionBeforeEndOfLife") and eol:
                if validate.parse_datetime("endOfLifeDate", eol) > now_utc():
                    raise Conflict(
                        f"image version '{gallery}/{image}/{version}': deletion is blocked until its "
                        f"end of life date {eol} (safetyProfile.blockDeletionBeforeEndOfLife)"
                    )
            digests = sorted({d["digest"] for d in self._disks_of(row["id"]) if d["digest"]})
            regions = [r["region"] for r in self._regions_of(row["id"])]
            self.con.execute("DELETE FROM versions WHERE id = ?", (row["id"],))
            jobs.cancel_version_jobs(self.con, row["id"])
        # Unreference the data in a second transaction: holding the write lock, a version
        # being created concurrently either committed its reference already (the digest is
        # kept) or will find the manifest gone and fail cleanly (see create_version). A worker
        # still copying the deleted version finds it gone and removes what it published.
        with db.transaction(self.con):
            freed = [d for d in digests if not self._digest_referenced(d)]
            for region in dict.fromkeys([row["location"], *regions]):
                self.drop_copies(region, digests, 0, None)
        return freed

    def wait_version(self, rg: str, gallery: str, image: str, version: str, *, condition: str,
                     timeout: float = 3600.0, interval: float = 1.0,
                     progress: Callable | None = None) -> None:
        """Block until the version is created/updated (provisioningState Succeeded; Failed
        raises Conflict with the failed regions' details), deleted, or exists. While it waits
        for queued work it makes sure a worker runs. ``progress(rows)`` gets the version's
        version_regions rows at every poll."""
        from ..errors import StoreBusy
        from . import jobs

        deadline = time.monotonic() + timeout
        while True:
            try:
                row = self._version_row(rg, gallery, image, version)
            except NotFound:
                row = None
            if condition == "deleted" and row is None:
                return
            if condition == "exists" and row is not None:
                return
            if condition in ("created", "updated") and row is not None:
                if progress is not None:
                    progress(self._regions_of(row["id"]))
                state = row["provisioning_state"]
                if state == "Succeeded":
                    return
                if state == "Failed":
                    self._raise_if_failed(row["id"])
                    raise Conflict(f"image version '{gallery}/{image}/{version}': provisioning failed")
                jobs.ensure_worker(self)
            if time.monotonic() >= deadline:
                raise StoreBusy(f"image version '{gallery}/{image}/{version}': not {condition} after {timeout:g} s")
            time.sleep(interval)

    # -- latest ---------------------------------------------------------------------------

    def latest_version_row(self, rg: str, gallery: str, image: str,
                           region: str = DEFAULT_LOCATION) -> sqlite3.Row:
        """Highest Major, then Minor, then Patch among versions whose replication to
        ``region`` has completed and that are not excluded from latest there (the per-region
        flag overriding the global one). A version still replicating elsewhere, or failed in
        another region, qualifies where it is complete."""
        self._image_row(rg, gallery, image)
        rows = self.con.execute(
            _V_SQL + "WHERE g.rg = ? AND g.name = ? AND i.name = ? "
            "ORDER BY v.major DESC, v.minor DESC, v.patch DESC",
            (rg, gallery, image),
        ).fetchall()
        skipped: list[str] = []
        for r in rows:
            pp = json.loads(r["props"])["publishingProfile"]
            tr = next((t for t in pp["targetRegions"] if t["name"].lower() == region.lower()), None)
            if tr is None:
                skipped.append(f"{r['name']} (not in region {region})")
                continue
            excl = tr.get("excludeFromLatest")
            if excl is None:
                excl = pp.get("excludeFromLatest", False)
            if excl:
                skipped.append(f"{r['name']} (excluded from latest)")
                continue
            reg = self.con.execute(
                "SELECT state FROM version_regions WHERE version_id = ? AND region = ?",
                (r["id"], region)).fetchone()
            if reg is None or reg[0] != "Completed":
                state = reg[0] if reg is not None else "missing"
                skipped.append(f"{r['name']} (replication {state} in {region})")
                continue
            return r
        why = f": {', '.join(skipped)}" if skipped else ""
        raise NotFound(
            f"image definition '{gallery}/{image}': no version qualifies as latest in region "
            f"'{region}' ({len(rows)} version(s){why})"
        )

    def latest_version(self, rg: str, gallery: str, image: str, region: str = DEFAULT_LOCATION) -> dict:
        return self._version_json(self.latest_version_row(rg, gallery, image, region))

    def resolve_version(self, ref_text: str, rg: str, region: str = DEFAULT_LOCATION,
                        field: str = "--gallery-image-reference") -> sqlite3.Row:
        ref = ids.parse_image_ref(ref_text, rg, field=field)
        if ref.is_latest:
            return self.latest_version_row(ref.rg, ref.gallery, ref.image, region)
        return self._version_row(ref.rg, ref.gallery, ref.image, ref.version, field)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _check_changes(cur: dict, new: dict, mutable: tuple[str, ...]) -> None:
        for path in patch.diff(cur, new):
            if not patch.under(path, mutable):
                raise Conflict(f"Changing property '{path}' is not allowed")
