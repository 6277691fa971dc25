"""What ``bench capture`` shares between its families (capture, disk creation, conversion):
one scratch directory with the test image in three formats, two stores and an output path."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .cache import settle
from .images import Images
from .settings import Settings
from .stores import new_store
from .tools import qemu_convert, rm


@dataclass
class Workspace:
    s: Settings
    dir: str
    img: Images
    #: the default store (zstd:1) and one with ``--compression none``
    store: str
    store_none: str
    #: every timed run writes here (removed before each run)
    out: str
    #: manifest digest of the image in both stores (set by the capture family)
    digest: str | None = None

    @classmethod
    def at(cls, s: Settings, d: str, img: Images) -> Workspace:
        return cls(s, d, img, os.path.join(d, "store"), os.path.join(d, "store-none"),
                   os.path.join(d, "out"))

    def drop(self, *paths: str) -> Callable[[], None]:
        """Before a timed run (not timed): output removed, ``paths`` cold or warm."""
        def f() -> None:
            rm(self.out)
            settle(self.s.cold, *paths)
        return f

    def fresh(self, root: str, *paths: str, compression: str | None = None) -> Callable[[], None]:
        """Before a timed run: an empty store at ``root``, then as :meth:`drop`."""
        def f() -> None:
            new_store(root, compression=compression)[0].close()
            self.drop(*paths)()
        return f

    def qemu(self, src: str, src_fmt: str, dst_fmt: str, opts: str | None = None
             ) -> Callable[[], None]:
        """A timed ``qemu-img convert`` of ``src`` to the output path."""
        return lambda: qemu_convert(src, self.out, src_fmt, dst_fmt, opts)
