"""VHDX disk images (Microsoft MS-VHDX v1.0), one module per concern:

- :mod:`.structs`: on-disk structures and constants (declarations only);
- :mod:`.crc32c`: the CRC-32C that guards headers, region tables and log entries;
- :mod:`.log`: in-memory replay of a dirty log (2.3);
- :mod:`.reader`: :class:`VhdxReader` and :func:`open_vhdx`, validating every field;
- :mod:`.writer`: :class:`VhdxWriter` and :func:`create_vhdx_writer`.

The names below are the package's public interface (``from imagestore.formats import vhdx;
vhdx.open_vhdx(...)``).
"""

from __future__ import annotations

from .crc32c import checksum_ok, crc32c, with_checksum
from .reader import VhdxReader, open_vhdx
from .writer import (
    WRITER_BLOCK_SIZE,
    WRITER_LOGICAL_SECTOR,
    WRITER_PHYSICAL_SECTOR,
    VhdxWriter,
    create_vhdx_writer,
    pack_locator,
)

__all__ = [
    "WRITER_BLOCK_SIZE",
    "WRITER_LOGICAL_SECTOR",
    "WRITER_PHYSICAL_SECTOR",
    "VhdxReader",
    "VhdxWriter",
    "checksum_ok",
    "crc32c",
    "create_vhdx_writer",
    "open_vhdx",
    "pack_locator",
    "with_checksum",
]
