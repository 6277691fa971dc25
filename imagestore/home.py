"""The store root: where it is, its versioned header, and the blob store of each region.

Location: ``--store DIR``, else ``$IMAGESTORE_HOME``, else ``~/.local/share/imagestore``;
created on first use. Layout::

    imagestore.json       root header: format "imagestore", version
    gallery.sqlite        gallery metadata (galleries, definitions, versions, disks), unless
                          $IMAGESTORE_DATABASE_URL points at PostgreSQL
    regions/local/        the default region's blob store (see imagestore/store/layout.py)
"""

from __future__ import annotations

import json
import os

from .errors import Conflict, NotAStore, from_oserror
from .fsutil import atomic_write, build_beside, fsync_dir, write_file
from .store.cas import BlobStore
from .store.layout import CasConfig

ROOT_FORMAT = "imagestore"
ROOT_VERSION = 1
DEFAULT_REGION = "local"


def default_location() -> str:
    env = os.environ.get("IMAGESTORE_HOME")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".local", "share", "imagestore")


class Home:
    def __init__(self, root: str) -> None:
        self.root = root
        self._stores: dict[str, BlobStore] = {}

    @property
    def header_path(self) -> str:
        return os.path.join(self.root, "imagestore.json")

    @property
    def db_path(self) -> str:
        return os.path.join(self.root, "gallery.sqlite")

    @property
    def gallery_database(self) -> str:
        """Where the gallery metadata lives: ``$IMAGESTORE_DATABASE_URL`` (PostgreSQL, shared by
        several hosts) when set, else this store's ``gallery.sqlite``."""
        from .gallery.backends import locate

        return locate(self.db_path)

    def region_dir(self, name: str) -> str:
        return os.path.join(self.root, "regions", name)

    # -- open / create -------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | None, *, create: bool = True, cfg: CasConfig | None = None) -> Home:
        """Open the store at ``root``; create it when ``create`` and there is none.

        Read-only commands pass ``create=False``: a mistyped ``--store`` then says there is no
        store instead of making an empty one. A half-built store of ours (a creation that was
        killed: ``regions/`` and nothing else) is finished either way; a directory holding
        anything else is refused and never written to.
        """
        root = os.path.abspath(os.path.expanduser(root or default_location()))
        home = cls(root)
        made = False  # this call created or finished the store
        for _ in range(3):
            if os.path.exists(home.header_path):
                home._check_header()
                if cfg is not None and (not made or home.config != cfg):
                    raise Conflict(f"{root}: store already exists (chunk size and compression "
                                   f"are fixed at init)")
                return home
            state = home._inspect()
            if state == "half-built":
                home._finish(cfg)
            elif not create:
                raise NotAStore(f"no imagestore store at {root} (create one with 'imagestore "
                                f"init' or any command that writes)")
            else:
                home._create(cfg or CasConfig(), in_place=state == "empty")
            made = True
        raise NotAStore(f"{root}: the store could not be created (it keeps changing)")

    def _inspect(self) -> str:
        """What is at the root when it has no header: "missing", "empty", "half-built" (ours,
        a killed creation) — else NotAStore."""
        root = self.root
        if not os.path.lexists(root):
            return "missing"
        if not os.path.isdir(root):
            raise NotAStore(f"{root}: not a directory")
        try:
            entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
        except OSError as e:
            raise from_oserror(e, root) from None
        if not entries:
            return "empty"
        if entries == ["regions"] and _half_built_regions(os.path.join(root, "regions")):
            return "half-built"
        raise NotAStore(
            f"{root}: directory is not empty and is not an imagestore store (no imagestore.json)"
        )

    def _header_bytes(self) -> bytes:
        return (json.dumps({"format": ROOT_FORMAT, "version": ROOT_VERSION}, indent=2) + "\n").encode()

    def _build(self, tmp: str, cfg: CasConfig) -> None:
        local = os.path.join(tmp, "regions", DEFAULT_REGION)
        os.makedirs(local)
        BlobStore.fill(local, cfg, durable=False)
        write_file(os.path.join(tmp, "imagestore.json"), self._header_bytes())

    @staticmethod
    def _fill_regions(tmp: str, cfg: CasConfig) -> None:
        local = os.path.join(tmp, DEFAULT_REGION)
        os.mkdir(local)
        BlobStore.fill(local, cfg, durable=False)

    def _create(self, cfg: CasConfig, *, in_place: bool) -> None:
        """Create the store. A missing root is built beside itself and renamed into place;
        an existing empty root (a mount point, a directory made for it) gets a complete
        ``regions/`` renamed into it, then the header."""
        try:
            parent = os.path.dirname(self.root)
            os.makedirs(parent, exist_ok=True)
            if not in_place:
                build_beside(self.root, lambda tmp: self._build(tmp, cfg))
                return  # ours or another process's: the loop in open() checks the header
            regions = os.path.join(self.root, "regions")
            if not os.path.lexists(regions):
                build_beside(regions, lambda tmp: self._fill_regions(tmp, cfg))
            self._finish(cfg)
        except OSError as e:
            raise from_oserror(e, self.root) from None  # the user's path, not a temp name

    def _finish(self, cfg: CasConfig | None) -> None:
        """Complete a half-built store: the local blob store (idempotent), then the header."""
        try:
            local = self.region_dir(DEFAULT_REGION)
            if not os.path.exists(os.path.join(local, "cas.json")):
                BlobStore.create(local, cfg or CasConfig())
            atomic_write(self.header_path, self._header_bytes())
            fsync_dir(self.root)
        except OSError as e:
            raise from_oserror(e, self.root) from None  # the user's path, not a temp name

    def _check_header(self) -> None:
        try:
            with open(self.header_path, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as e:
            raise NotAStore(f"{self.header_path}: unreadable store header ({e})") from None
        if not isinstance(raw, dict) or raw.get("format") != ROOT_FORMAT:
            raise NotAStore(f"{self.header_path}: not an imagestore store header")
        if raw.get("version") != ROOT_VERSION:
            raise NotAStore(
                f"{self.header_path}: store format version {raw.get('version')!r} is not "
                f"supported (this imagestore reads version {ROOT_VERSION})"
            )

    # -- regions -------------------------------------------------------------------------

    def blob_store(self, region: str = DEFAULT_REGION) -> BlobStore:
        st = self._stores.get(region)
        if st is None:
            st = BlobStore.open(self.region_dir(region))
            self._stores[region] = st
        return st

    @property
    def config(self) -> CasConfig:
        return self.blob_store(DEFAULT_REGION).cfg

    def close(self) -> None:
        for st in self._stores.values():
            st.close()
        self._stores.clear()


#: what a blob store directory holds right after creation (a half-built one holds a subset)
_FRESH_BLOB_STORE = {"packs", "manifests", "index.sqlite", "index.sqlite-wal",
                     "index.sqlite-shm", "index.sqlite-journal", "cas.json", "lock"}


def _half_built_regions(regions: str) -> bool:
    """Whether ``regions/`` is what a killed store creation leaves: only ``local``, holding
    only the files of a new blob store, with no pack and no manifest."""
    try:
        if sorted(e for e in os.listdir(regions) if not e.startswith(".")) != [DEFAULT_REGION]:
            return False
        local = os.path.join(regions, DEFAULT_REGION)
        names = {e for e in os.listdir(local) if not e.startswith(".")}
        if not names <= _FRESH_BLOB_STORE:
            return False
        for d in ("packs", "manifests"):
            p = os.path.join(local, d)
            if os.path.exists(p) and [e for e in os.listdir(p) if not e.startswith(".")]:
                return False
    except OSError:
        return False
    return True
