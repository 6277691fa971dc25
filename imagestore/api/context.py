"""What every request handler shares: the server's settings, the store, one gallery service
per worker thread, and the lock that serializes writes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..gallery import GalleryService
from ..home import Home
from ..identity import tokens
from ..worker import open_gallery

#: default largest request body (bytes): ARM's own limit for a resource body is 4 MiB
MAX_BODY = 4 << 20
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Settings:
    """Server options (``imagestore serve`` flags)."""

    page_size: int = DEFAULT_PAGE_SIZE
    max_body: int = MAX_BODY
    #: token audiences accepted (``aud``)
    audiences: tuple[str, ...] = field(default=tokens.AUDIENCES)
    #: seconds a client should wait between polls of a long-running operation
    retry_after: int = 1
    #: where differencing-disk parents of a ``source.uri`` may live (None: beside the child;
    #: the capture's ``allow_parent_dir``)
    allow_parent_dir: str | None = None
    #: where a directory principal's requests may name host files (:mod:`.host_files`)
    principal_import_dirs: tuple[str, ...] = ()


class ApiContext:
    """The store and services behind one application."""

    def __init__(self, store_path: str, settings: Settings) -> None:
        self.home = Home.open(store_path)  # created on first use, as the CLI does
        self.root = self.home.root
        self.settings = settings
        self._local = threading.local()
        self._write = threading.Lock()
        self._all: list[GalleryService] = []
        tokens.signing_key(self.root)  # so a store that issued no token yet can verify

    def service(self) -> GalleryService:
        """This thread's gallery service (SQLite connections are per thread)."""
        svc = getattr(self._local, "svc", None)
        if svc is None:
            svc = open_gallery(Home.open(self.root, create=False))
            self._local.svc = svc
            self._all.append(svc)
        return svc

    @contextmanager
    def writing(self) -> Iterator[GalleryService]:
        """The service, with this server's writes serialized (SQLite allows one writer; the
        services' check-then-insert steps run in their own transactions)."""
        with self._write:
            yield self.service()
