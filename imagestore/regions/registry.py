"""The region registry: named regions and their zones.

A **region** is a named place where disk content is kept, with its own packs, index and
manifests (a blob store per copy slot). A region spans one or more **zones**: directories,
typically each on its own disk or mount, over which the copies of a version are spread.

On disk (in the store root)::

    regions/local/                 the default region; implicit, one zone: this directory
    regions/<name>/region.json     {"format": "imagestore-region", "version": 1, "name": ...,
                                    "zones": [absolute paths], "created": ISO-8601 UTC}
    regions/.registry.lock         flock taken exclusively while a region is created/deleted

Rules:

* names are 1-64 characters, letters, digits, ``-`` and ``_``, starting and ending with a letter
  or digit (the gallery's ``--location`` rule, so every region can be a target region); they are
  compared case-insensitively, as Azure compares region names;
* a zone is an absolute directory (symlinks resolved). It must not be inside, or contain,
  another region's zone or the store root; it may be missing (created), empty, or an existing
  blob store with the store's chunk size (re-attached, e.g. a disk that held a region before).
  A non-empty directory that is not a blob store is refused and never written to;
* every zone gets a blob store with the store's configuration (``home.config``) before
  ``region.json`` is published by an atomic rename: a crash leaves either no region (and
  empty blob stores that a retry re-attaches) or a complete one;
* ``local`` cannot be deleted; deleting a region that holds a version's only completed copy is
  refused via the ``holds_only_copy(name) -> [version ids]`` hook the gallery supplies.
  ``delete`` unregisters the region and keeps its data unless ``delete_data`` is asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import azblob
from ..azblob import Credential
from ..errors import Conflict, InvalidArgument, NotAStore, NotFound, from_oserror
from ..fsutil import atomic_write, fsync_dir, remove_stale_temps
from ..home import DEFAULT_REGION, Home
from ..store.cas import RESERVE_NAME, BlobStore
from ..store.container import ContainerStore
from ..store.layout import read_config
from ..store.lock import StoreLock
from . import blobzones

REGION_FORMAT = "imagestore-region"
REGION_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_\-]{0,62}[A-Za-z0-9])?$")
#: entries a fresh mount point may hold that do not make a zone directory "not empty"
IGNORED_ENTRIES = frozenset({"lost+found"})
#: what a blob store (and its copy slots) consists of; ``delete_data`` removes only these
STORE_ENTRIES = ("cas.json", "index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "packs",
                 "manifests", "lock", "copies", RESERVE_NAME)

HoldsOnlyCopy = Callable[[str], list[str]]


@dataclass(frozen=True)
class Region:
    name: str
    zones: tuple[str, ...]
    created: str | None
    default: bool = False
    #: "directory" (zones are directories) or "azure-blob" (zones are containers, by URL)
    storage: str = "directory"

    def zone_store(self, i: int) -> BlobStore:
        return BlobStore.open(self.zones[i])

    def to_json(self, home: Home) -> dict:
        cfg = home.config
        return {
            "name": self.name,
            "type": "imagestore/regions",
            "isDefault": self.default,
            "storage": self.storage,
            "zones": list(self.zones),
            "zoneCount": len(self.zones),
            "chunkSize": cfg.chunk_size,
            "compression": cfg.compression,
            "hash": cfg.hash,
            "created": self.created,
        }


def check_name(name: str, field: str = "NAME") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidArgument(
            f"{field}: '{name}' is not a valid region name (1-64 letters, digits, '-' or '_', "
            f"starting and ending with a letter or digit)"
        )
    return name


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _inside(a: str, b: str) -> bool:
    """True when a == b or a is below b."""
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep)


class RegionRegistry:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.regions_dir = os.path.join(home.root, "regions")

    # -- reading -------------------------------------------------------------------------

    def _local(self) -> Region:
        return Region(DEFAULT_REGION, (self.home.region_dir(DEFAULT_REGION),), None, True)

    def _read(self, dirname: str) -> Region | None:
        path = os.path.join(self.regions_dir, dirname, "region.json")
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise NotAStore(f"{path}: unreadable region header ({e})") from None
        if not isinstance(raw, dict) or raw.get("format") != REGION_FORMAT:
            raise NotAStore(f"{path}: not an imagestore region header")
        if raw.get("version") != REGION_VERSION:
            raise NotAStore(
                f"{path}: region format version {raw.get('version')!r} is not supported "
                f"(this imagestore reads version {REGION_VERSION})"
            )
        zones = raw.get("zones")
        storage = raw.get("storage", "directory")
        ok_zone = blobzones.is_blob if storage == blobzones.STORAGE else os.path.isabs
        if (raw.get("name") != dirname or not isinstance(zones, list) or not zones
                or storage not in ("directory", blobzones.STORAGE)
                or not all(isinstance(z, str) and ok_zone(z) for z in zones)):
            raise NotAStore(f"{path}: bad region header (name, storage or zones)")
        if storage == blobzones.STORAGE:
            blobzones.attach(os.path.dirname(path), zones)
        return Region(dirname, tuple(zones), raw.get("created"), storage=storage)

    def list(self) -> list[Region]:
        out = [self._local()]
        try:
            names = sorted(os.listdir(self.regions_dir))
        except FileNotFoundError:
            return out
        for n in names:
            if n == DEFAULT_REGION or n.startswith("."):
                continue
            r = self._read(n)
            if r is not None:
                out.append(r)
        return out

    def find(self, name: str) -> Region | None:
        for r in self.list():
            if r.name.lower() == str(name).lower():
                return r
        return None

    def get(self, name: str, field: str = "NAME") -> Region:
        check_name(name, field)
        r = self.find(name)
        if r is None:
            known = ", ".join(x.name for x in self.list())
            raise NotFound(f"{field}: region '{name}' not found (known regions: {known})")
        return r

    # -- create / delete -----------------------------------------------------------------

    def _registry_lock(self) -> StoreLock:
        os.makedirs(self.regions_dir, exist_ok=True)
        return StoreLock(os.path.join(self.regions_dir, ".registry.lock"), exclusive=True,
                         timeout=60.0)

    def _check_zone(self, path: str, taken: list[tuple[str, str]], own_dir: str) -> bool:
        """Validate one zone path; returns True when it is an existing blob store."""
        root = _real(self.home.root)
        if _inside(root, path):
            raise InvalidArgument(f"--path: {path} contains the store {root}")
        if _inside(path, root) and not _inside(path, own_dir):
            raise InvalidArgument(
                f"--path: {path} is inside the store {root} (use a directory outside it, or "
                f"below {own_dir})"
            )
        for owner, z in taken:
            if _inside(path, z) or _inside(z, path):
                rel = "is" if path == z else ("is inside" if _inside(path, z) else "contains")
                raise Conflict(f"--path: {path} {rel} zone {z} of region '{owner}'")
        if not os.path.lexists(path):
            return False
        if not os.path.isdir(path):
            raise InvalidArgument(f"--path: {path} is not a directory")
        if os.path.exists(os.path.join(path, "cas.json")):
            cfg = read_config(path)
            want = self.home.config
            if cfg.chunk_size != want.chunk_size or cfg.hash != want.hash:
                raise Conflict(
                    f"--path: {path} is a blob store with chunk size {cfg.chunk_size}, but this "
                    f"store uses {want.chunk_size}"
                )
            return True
        try:
            entries = [e for e in os.listdir(path) if e not in IGNORED_ENTRIES]
        except OSError as e:
            raise from_oserror(e, path) from None
        if entries:
            raise NotAStore(
                f"--path: {path} is not empty and is not an imagestore blob store (no cas.json)"
            )
        return False

    def create(self, name: str, paths: list[str]) -> Region:
        check_name(name)
        if not paths:
            raise InvalidArgument("--path: a region needs at least one zone directory")
        zones = [_real(p) for p in paths]
        for i, z in enumerate(zones):
            for j in range(i):
                if _inside(z, zones[j]) or _inside(zones[j], z):
                    raise InvalidArgument(f"--path: {paths[i]} overlaps {paths[j]} (zones must be distinct)")
        own_dir = os.path.join(self.regions_dir, name)
        cfg = self.home.config
        with self._registry_lock():
            existing = self.find(name)
            if existing is not None:
                raise Conflict(f"region '{existing.name}' already exists")
            taken = [(r.name, _real(z)) for r in self.list() for z in r.zones
                     if r.storage == "directory"]
            stores = [self._check_zone(z, taken, own_dir) for z in zones]
            made: list[str] = []  # directories this call created, removed again on failure
            ok = False
            try:
                for z, is_store in zip(zones, stores, strict=True):
                    if not is_store:
                        if not os.path.isdir(z):
                            top = z
                            while not os.path.isdir(os.path.dirname(top)):
                                top = os.path.dirname(top)
                            os.makedirs(z)
                            made.append(top)
                            BlobStore.create(z, cfg)
                        else:
                            BlobStore.create(z, cfg)
                            made.append(z + os.sep)  # existed empty: remove only the contents
                        fsync_dir(os.path.dirname(z))
                created_dir = not os.path.isdir(own_dir)
                os.makedirs(own_dir, exist_ok=True)
                if created_dir:
                    made.append(own_dir)
                created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                doc = {"format": REGION_FORMAT, "version": REGION_VERSION, "name": name,
                       "zones": zones, "created": created}
                atomic_write(os.path.join(own_dir, "region.json"),
                             (json.dumps(doc, indent=2) + "\n").encode())
                ok = True
            except OSError as e:
                raise from_oserror(e, getattr(e, "filename", None) or name) from None
            finally:
                if not ok:
                    for d in reversed(made):
                        _remove_store_dir(d)
        return Region(name, tuple(zones), created)

    def create_blob(self, name: str, account_urls: list[str], containers: list[str], *,
                    credential: Credential | None = None) -> Region:
        """Create a blob region: zones are containers. One account URL and several
        containers, several accounts and one container name, or pairs of both. Every
        container must exist and accept the credentials; a blob store header (``cas.json``)
        is written into each that has none, before the region is published."""
        check_name(name)
        if not account_urls:
            raise InvalidArgument("--storage-account-url: a blob region needs an account URL")
        if not containers:
            raise InvalidArgument("--container: a blob region needs a container")
        accounts = [azblob.parse_account_url(u) for u in account_urls]
        for c in containers:
            azblob.check_container(c)
        if len(accounts) == 1:
            pairs = [(accounts[0], c) for c in containers]
        elif len(containers) == 1:
            pairs = [(a, containers[0]) for a in accounts]
        elif len(accounts) == len(containers):
            pairs = list(zip(accounts, containers, strict=True))
        else:
            raise InvalidArgument(
                f"--storage-account-url/--container: {len(accounts)} accounts and "
                f"{len(containers)} containers do not pair up (give one of either, or as many)"
            )
        zones = [a.container_url(c) for a, c in pairs]
        if len(set(zones)) != len(zones):
            raise InvalidArgument("--container: zones must be distinct containers")
        secrets: dict[str, azblob.Credential] = {}
        for a in accounts:
            cred = azblob.resolve_credential(a, credential)
            if cred.kind != "anonymous" and (credential is not None or a.sas):
                secrets[a.endpoint] = cred
        own_dir = os.path.join(self.regions_dir, name)
        with self._registry_lock():
            existing = self.find(name)
            if existing is not None:
                raise Conflict(f"region '{existing.name}' already exists")
            for r in self.list():
                for z in r.zones:
                    if z in zones:
                        raise Conflict(f"--container: {z} is a zone of region '{r.name}'")
            # every container is checked (and given its cas.json) before anything local
            for a, c in pairs:
                cred = secrets.get(a.endpoint) or azblob.resolve_credential(a)
                ContainerStore.probe(a, c, cred, self.home.config)
            made = not os.path.isdir(own_dir)
            ok = False
            try:
                os.makedirs(own_dir, exist_ok=True)
                blobzones.save_secrets(own_dir, secrets)
                created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                doc = {"format": REGION_FORMAT, "version": REGION_VERSION, "name": name,
                       "storage": blobzones.STORAGE, "zones": zones, "created": created}
                atomic_write(os.path.join(own_dir, "region.json"),
                             (json.dumps(doc, indent=2) + "\n").encode())
                ok = True
            except OSError as e:
                raise from_oserror(e, getattr(e, "filename", None) or name) from None
            finally:
                if not ok and made:
                    shutil.rmtree(own_dir, ignore_errors=True)
        blobzones.attach(own_dir, zones, secrets)
        return Region(name, tuple(zones), created, storage=blobzones.STORAGE)

    def delete(self, name: str, *, holds_only_copy: HoldsOnlyCopy | None = None,
               targeted_by: HoldsOnlyCopy | None = None, delete_data: bool = False) -> Region:
        """Unregister region ``name`` (and remove its blob stores with ``delete_data``).
        ``targeted_by(name)`` names the image versions that target the region: while there
        are any, deletion is refused (Conflict)."""
        check_name(name)
        if name.lower() == DEFAULT_REGION:
            raise Conflict(f"region '{DEFAULT_REGION}': the default region cannot be deleted")
        with self._registry_lock():
            r = self.get(name)
            if targeted_by is not None:
                users = targeted_by(r.name)
                if users:
                    more = f" and {len(users) - 3} more" if len(users) > 3 else ""
                    raise Conflict(
                        f"region '{r.name}' is a target region of {len(users)} image "
                        f"version(s): {', '.join(users[:3])}{more}; remove it from their "
                        f"targetRegions first (allowed where their "
                        f"safetyProfile.allowDeletionOfReplicatedLocations is true)"
                    )
            if holds_only_copy is not None:
                only = holds_only_copy(r.name)
                if only:
                    more = f" and {len(only) - 3} more" if len(only) > 3 else ""
                    raise Conflict(
                        f"region '{r.name}' holds the only completed copy of "
                        f"{', '.join(only[:3])}{more}; replicate it elsewhere or delete it first"
                    )
            own_dir = os.path.join(self.regions_dir, r.name)
            try:
                os.unlink(os.path.join(own_dir, "region.json"))  # unpublishes the region
                fsync_dir(own_dir)
                if delete_data and r.storage == blobzones.STORAGE:
                    for z in r.zones:
                        blobzones.delete_data(z)
                    shutil.rmtree(os.path.join(own_dir, "cache"), ignore_errors=True)
                if r.storage == blobzones.STORAGE:
                    for leftover in (blobzones.CREDENTIALS_FILE,):
                        try:
                            os.unlink(os.path.join(own_dir, leftover))
                        except FileNotFoundError:
                            pass
                    if not delete_data:
                        shutil.rmtree(os.path.join(own_dir, "cache"), ignore_errors=True)
                elif delete_data:
                    for z in r.zones:
                        _remove_store_dir(z + os.sep)
                        try:
                            os.rmdir(z)
                        except OSError:
                            pass  # not empty (other files) or a mount point: keep it
                # the registry directory goes only when empty: it may itself be a zone
                remove_stale_temps(own_dir)
                try:
                    os.rmdir(own_dir)
                except OSError:
                    pass
            except OSError as e:
                raise from_oserror(e, own_dir) from None
        return r


def _remove_store_dir(d: str) -> None:
    """Remove a directory this module created. ``d`` ending in a separator means the directory
    existed before: only the blob store entries inside it are removed."""
    if d.endswith(os.sep):
        base = d.rstrip(os.sep)
        for e in STORE_ENTRIES:
            p = os.path.join(base, e)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
                except OSError:
                    pass
        return
    shutil.rmtree(d, ignore_errors=True)
