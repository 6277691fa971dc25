"""The store root: where it is, its versioned header, and the blob store of each region.

Location: ``--store DIR``, else ``$IMAGESTORE_HOME``, else ``~/.local/share/imagestore``;
created on first use. Layout::

    imagestore.json       root header: format "imagestore", version
    gallery.sqlite        gallery metadata (galleries, definitions, versions, disks)
    regions/local/        the default region's blob store (see imagestore/store/layout.py)
"""

from __future__ import annotations

import json
import os

from .errors import Conflict, NotAStore, from_oserror
from .fsutil import atomic_write
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

    def region_dir(self, name: str) -> str:
        return os.path.join(self.root, "regions", name)

    # -- open / create -------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | None, *, create: bool = True, cfg: CasConfig | None = None) -> Home:
        root = os.path.abspath(os.path.expanduser(root or default_location()))
        home = cls(root)
        if os.path.exists(home.header_path):
            home._check_header()
            if cfg is not None:
                raise Conflict(f"{root}: store already exists (chunk size and compression are fixed at init)")
            return home
        if os.path.exists(root):
            if not os.path.isdir(root):
                raise NotAStore(f"{root}: not a directory")
            try:
                entries = [e for e in os.listdir(root) if not e.startswith(".")]
            except OSError as e:
                raise from_oserror(e, root) from None
            if entries:
                raise NotAStore(
                    f"{root}: directory is not empty and is not an imagestore store "
                    f"(no imagestore.json)"
                )
        if not create:
            raise NotAStore(f"{root}: no imagestore store here")
        home._create(cfg or CasConfig())
        return home

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

    def _create(self, cfg: CasConfig) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            BlobStore.create(self.region_dir(DEFAULT_REGION), cfg)
            atomic_write(
                self.header_path,
                (json.dumps({"format": ROOT_FORMAT, "version": ROOT_VERSION}, indent=2) + "\n").encode(),
            )
        except OSError as e:
            raise from_oserror(e, self.root) from None

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
