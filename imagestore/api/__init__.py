"""The REST interface: an ARM-compatible HTTP API (``imagestore serve``) over the same
gallery services the CLI uses. ``create_app(store_path)`` builds the ASGI application; one
module per resource family (:mod:`.galleries`, :mod:`.images`, :mod:`.image_versions`,
:mod:`.disks`) declares its routes; :mod:`.operations` serves long-running operations."""

from .app import create_app
from .context import Settings

__all__ = ["Settings", "create_app"]
