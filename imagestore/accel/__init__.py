"""The byte loops that touch every byte: zero detection and non-zero run finding.

``imagestore.accel.pure`` is the reference implementation (numpy). A native twin in
``native/`` may replace it later; both must give identical results.
"""

from __future__ import annotations

from .pure import is_zero, nonzero_runs

BACKEND = "pure"

__all__ = ["BACKEND", "is_zero", "nonzero_runs"]
