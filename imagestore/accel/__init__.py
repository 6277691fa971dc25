"""The byte loops that touch every byte: zero scan, non-zero runs, extent merge, extent copy
and reflink.

Two backends with the same functions, signatures and results:

* ``native`` -- ``imagestore.accel._native``, built from ``native/_native.c`` by the normal
  install; releases the GIL around every loop and every copy;
* ``pure`` -- ``imagestore.accel.pure``, the pure-Python (numpy) twin and the reference.

The native one is used unless ``IMAGESTORE_PUREPYTHON`` is set to a non-empty value other
than ``0``, or the extension cannot be imported (no compiler at install time): then the twin
is used and a RuntimeWarning says so, once. ``BACKEND`` names the active backend.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

from . import pure


def _pick() -> tuple[str, ModuleType]:
    if os.environ.get("IMAGESTORE_PUREPYTHON", "") not in ("", "0"):
        return "pure", pure
    try:
        native = importlib.import_module(f"{__name__}._native")
    except ImportError as e:
        warnings.warn(
            f"imagestore: native module unavailable ({e}); using the pure-Python backend "
            "(reinstall with a C compiler for full speed)",
            RuntimeWarning,
            stacklevel=3,
        )
        return "pure", pure
    return "native", native


BACKEND, _impl = _pick()

is_zero = _impl.is_zero
nonzero_runs = _impl.nonzero_runs
coalesce = _impl.coalesce
copy_extents = _impl.copy_extents
reflink_range = _impl.reflink_range

__all__ = ["BACKEND", "coalesce", "copy_extents", "is_zero", "nonzero_runs", "reflink_range"]
