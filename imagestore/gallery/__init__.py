"""The gallery layer: ARM-shaped galleries, image definitions, image versions and disks,
kept in SQLite beside the store (see :mod:`.service` for the library API)."""

from .service import GalleryService

__all__ = ["GalleryService"]
