"""Interleaved best-of-N timing, with the CPU seconds (user and system) of every run.

CPU comes from ``getrusage``: this process's own (every thread: our worker threads) plus
its waited-for children (a reference tool run as a subprocess, and the ``fsync`` after it),
as deltas around each run. On a shared machine wall time moves with the neighbours' load;
CPU seconds move much less, so they are reported beside it (``user`` and ``sys`` columns).
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

from .settings import Settings

Spec = tuple[Callable[[], object], Callable[[], None] | None]


class Measure(float):
    """The best wall time of a measurement (a float, so older callers keep working), with
    every run's wall, user and system seconds."""

    walls: list[float]
    users: list[float]
    syss: list[float]

    def __new__(cls, walls: list[float], users: list[float], syss: list[float]) -> Measure:
        m = super().__new__(cls, min(walls) if walls else float("inf"))
        m.walls, m.users, m.syss = walls, users, syss
        return m

    @property
    def user(self) -> float:
        return statistics.median(self.users) if self.users else 0.0

    @property
    def sys(self) -> float:
        return statistics.median(self.syss) if self.syss else 0.0


def _cpu() -> tuple[float, float]:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + b.ru_utime, a.ru_stime + b.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float, float]:
    """(wall, user, sys) seconds of one call of ``fn``."""
    u0, s0 = _cpu()
    t0 = time.perf_counter()
    fn()
    t = time.perf_counter() - t0
    u1, s1 = _cpu()
    return t, u1 - u0, s1 - s0


def interleaved(s: Settings, specs: list[Spec]) -> list[Measure]:
    """Every spec's runs over ``s.repeat`` rounds; each round runs every spec once, in order,
    so that load from elsewhere on the machine hits all of them alike (round i of two specs
    is a tightly alternated pair). ``before()`` (cache drop, fresh store) is not timed."""
    runs: list[tuple[list[float], list[float], list[float]]] = [([], [], []) for _ in specs]
    for _ in range(max(1, s.repeat)):
        for j, (fn, before) in enumerate(specs):
            if before is not None:
                before()
            t, u, y = timed(fn)
            runs[j][0].append(t)
            runs[j][1].append(u)
            runs[j][2].append(y)
    return [Measure(*r) for r in runs]


def pair_ratio(ours: float, ref: float) -> float | None:
    """Median over rounds of ours_i / ref_i when both are Measures of the same rounds (the
    tightly alternated pairs), else ours / ref of the best times."""
    if isinstance(ours, Measure) and isinstance(ref, Measure) and len(ours.walls) == len(ref.walls):
        rs = [a / b for a, b in zip(ours.walls, ref.walls, strict=True) if b > 0]
        return statistics.median(rs) if rs else None
    return ours / ref if ref else None
