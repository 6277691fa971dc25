"""Pure-Python (numpy) implementations of the hot byte loops."""

from __future__ import annotations

import numpy as np

_ZERO = bytes(1 << 20)


def is_zero(buf: bytes | memoryview) -> bool:
    """True when every byte of ``buf`` is zero (memcmp against a zero block)."""
    mv = memoryview(buf).cast("B")
    n = len(mv)
    pos = 0
    while pos < n:
        step = min(len(_ZERO), n - pos)
        if mv[pos : pos + step] != _ZERO[:step]:
            return False
        pos += step
    return True


def nonzero_runs(buf: bytes | memoryview, block: int = 4096) -> list[tuple[int, int]]:
    """Return [(start, end)] byte ranges of ``buf`` covering every non-zero ``block``-sized
    block (the last block may be short), merged where adjacent. Zero blocks are left out."""
    mv = memoryview(buf).cast("B")
    n = len(mv)
    if n == 0:
        return []
    if block <= 0:
        raise ValueError("block must be positive")
    full = n // block
    runs: list[tuple[int, int]] = []
    if full:
        arr = np.frombuffer(mv, dtype=np.uint8, count=full * block)
        if block % 8 == 0:
            nz = arr.view(np.uint64).reshape(full, block // 8).any(axis=1)
        else:
            nz = arr.reshape(full, block).any(axis=1)
        if nz.all():
            runs = [(0, full * block)]
        elif nz.any():
            d = np.diff(np.concatenate(([False], nz, [False])).astype(np.int8))
            starts = np.flatnonzero(d == 1)
            ends = np.flatnonzero(d == -1)
            runs = [(int(s) * block, int(e) * block) for s, e in zip(starts, ends, strict=True)]
    if full * block < n and not is_zero(mv[full * block :]):
        if runs and runs[-1][1] == full * block:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((full * block, n))
    return runs
