"""Rows of a benchmark table, pairs (ours vs references), and the goals the ``target``
column states in plain words."""

from __future__ import annotations


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
        target: str = "", cache: str = "") -> dict:
    """One measurement."""
    return {
        "name": name,
        "tool": tool,
        "seconds": round(seconds, 3),
        "bytes": nbytes,
        "MB/s": round(nbytes / seconds / 1e6, 1) if seconds > 0 else None,
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "cache": cache,
    }


def pair(name: str, ours: float, nbytes: int, refs: list[tuple[str, str, float]], *,
         target: str = "", cache: str = "") -> list[dict]:
    """One imagestore row and one row per reference (label, tool, seconds) with the ratio
    ours/reference; ``target`` applies to the first reference."""
    out = [row(name, "imagestore", ours, nbytes, cache=cache)]
    for i, (label, tool, secs) in enumerate(refs):
        out.append(row(f"  vs {label}", tool, secs, nbytes, ratio=ours / secs if secs else None,
                       target=target if i == 0 else "", cache=cache))
    return out
