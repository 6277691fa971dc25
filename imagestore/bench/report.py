"""Rows of a benchmark table, pairs (ours vs references), and the goals the ``target``
column states in plain words."""

from __future__ import annotations

from .timing import Measure, pair_ratio


class Goal:
    """What a measurement should reach, in words (the ``target`` column).

    A ratio is imagestore's time / the reference's time on the same data, in the same run.
    """

    #: ratio <= 1.0
    AT_LEAST_AS_FAST = "as fast as the reference or faster"
    #: ratio <= 0.8
    A_FIFTH_FASTER = "at least 20% faster than the reference"
    #: both of the above on one row (disk creation to raw)
    RAW_DISK = "as fast as the reference, ideally 20% faster"
    #: incremental replication: ratio <= 0.2 against a full replication
    INCREMENTAL = "at most a fifth of a full replication's time"
    #: re-capture of stored data
    RECAPTURE = "2000 MB/s or more"
    #: 15 TiB sparse capture in a child process
    SPARSE_CAPTURE = "under 3 s and 200 MiB of memory"
    #: huge sparse disks: the time follows the data, not the virtual size
    SPARSE_FAST = "seconds, whatever the virtual size"


def row(name: str, tool: str, seconds: float, nbytes: int, *, ratio: float | None = None,
        target: str = "", cache: str = "", pair_median: float | None = None) -> dict:
    """One measurement. A :class:`Measure` adds its CPU seconds: ``user`` and ``sys``
    (medians over the runs) and ``cpuPerGB`` (user + sys per 1e9 bytes of ``nbytes``); a
    reference row of such a pair adds ``pairRatio``, the median of the per-round ratios."""
    out = {
        "name": name,
        "tool": tool,
        "seconds": round(seconds, 3),
        "bytes": nbytes,
        "MB/s": round(nbytes / seconds / 1e6, 1) if seconds > 0 else None,
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "cache": cache,
    }
    if isinstance(seconds, Measure):
        out["user"] = round(seconds.user, 3)
        out["sys"] = round(seconds.sys, 3)
        out["cpuPerGB"] = round((seconds.user + seconds.sys) / (nbytes / 1e9), 2) if nbytes else None
        out["pairRatio"] = None if pair_median is None else round(pair_median, 2)
    return out


def pair(name: str, ours: float, nbytes: int, refs: list[tuple[str, str, float]], *,
         target: str = "", cache: str = "") -> list[dict]:
    """One imagestore row and one row per reference (label, tool, seconds) with the ratio
    ours/reference; ``target`` applies to the first reference."""
    out = [row(name, "imagestore", ours, nbytes, cache=cache)]
    for i, (label, tool, secs) in enumerate(refs):
        out.append(row(f"  vs {label}", tool, secs, nbytes, ratio=ours / secs if secs else None,
                       target=target if i == 0 else "", cache=cache,
                       pair_median=pair_ratio(ours, secs)))
    return out
