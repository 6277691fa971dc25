"""Interleaved best-of-N timing."""

from __future__ import annotations

import time
from collections.abc import Callable

from .settings import Settings

Spec = tuple[Callable[[], object], Callable[[], None] | None]


def interleaved(s: Settings, specs: list[Spec]) -> list[float]:
    """Best wall time of each (fn, before) over ``s.repeat`` rounds; each round runs every
    spec once, in order, so that load from elsewhere on the machine hits all of them alike.
    ``before()`` (cache drop, fresh store) is not timed."""
    best = [float("inf")] * len(specs)
    for _ in range(max(1, s.repeat)):
        for j, (fn, before) in enumerate(specs):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            best[j] = min(best[j], time.perf_counter() - t0)
    return best
