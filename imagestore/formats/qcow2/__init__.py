"""qcow2 disk images (qemu's ``docs/interop/qcow2.txt``, versions 2 and 3), one module per
concern:

- :mod:`.structs`: the header, its extensions and the constants (declarations only);
- :mod:`.tables`: the L1/L2 cluster mapping, validated once when the image is opened;
- :mod:`.compressed`: compressed cluster descriptors, zlib and zstd decompression;
- :mod:`.reader`: :class:`Qcow2Reader` and :func:`open_qcow2`;
- :mod:`.writer`: :class:`Qcow2Writer` and :func:`create_qcow2_writer`.
"""

from __future__ import annotations

from .reader import Qcow2Reader, open_qcow2
from .writer import Qcow2Writer, create_qcow2_writer

__all__ = ["Qcow2Reader", "Qcow2Writer", "create_qcow2_writer", "open_qcow2"]
