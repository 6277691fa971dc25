"""Macro benchmarks: imagestore against the reference tools on the same data, in one run.

One module per benchmark family, each with one ``bench_*(settings) -> list[dict]``:

=================  ======================================================================
``machine``        the machine's own limits (dd write + fsync, sequential read, one core's
                   xxh3 / zstd / zero scan)
``capture``        capture and re-capture vs ``qemu-img convert`` / ``cp``; runs the two
                   below on the same image and stores (``imagestore bench capture``)
``disks``          disk creation from the store vs ``qemu-img convert`` from the image
``conversions``    format conversion (:func:`imagestore.formats.convert.convert`) vs qemu-img
``chunk_sizes``    dedup of an in-place changed v2, index and manifest sizes per chunk size
``sparse``         15 TiB sparse raw / 32 TiB VHDX capture in a child process: time and RSS
``replicate``      full / incremental / fan-out replication vs ``cp -r`` and itself
``scale``          cost vs history: many versions of one image, a synthetic large index
``peers``          borg / restic on the same image (``bench capture --peers``)
=================  ======================================================================

Shared parts: ``settings`` (what a run is asked for), ``report`` (rows, pairs and the plain
goal descriptions of the ``target`` column), ``timing`` (interleaved best-of-N), ``cache``
(cold/warm page cache), ``tools`` (reference tools, scratch space), ``images`` (test images:
ext4 from real files, generated data, in-place changes), ``stores`` (stores through the
public store API).

Every comparison returns a list of rows (plain dicts), one per measurement::

    name     what was done            tool     who did it (imagestore, qemu-img, cp, dd, …)
    seconds  wall time (best of N)    bytes    bytes of data the operation carried
    MB/s     bytes / seconds / 1e6    ratio    ours / this reference (lower is better)
    target   the goal, in words       cache    "cold" (sources dropped from the page cache
                                               before each run) or "warm"

``bench replicate`` rows also carry ``sentBytes`` (bytes written to the target) and, on the
incremental row, ``changedBytes`` (bytes changed in v2).

A pair is one ``imagestore`` row followed by its reference rows; the ratio sits on each
reference row (imagestore's wall time divided by that tool's). Absolute times drift from run
to run on a shared machine: compare ratios measured in one run.

Every output file is fsynced inside the timing, for us (the writers fsync on finish) and for
the reference tools (an ``fsync`` of their output right after they exit), so that a tool that
leaves dirty pages behind is not credited for the disk work it did not wait for.

Cold cache: ``fsync`` + ``posix_fadvise(POSIX_FADV_DONTNEED)`` on every source file (the
image, or the store's pack files) before each timed run; this needs no root and drops exactly
the files that are read.

The benchmarks use only the public APIs of the store, regions and formats layers.
"""

from __future__ import annotations

from .capture import bench_capture
from .chunk_sizes import CHUNK_SIZES, bench_chunk_sizes
from .machine import bench_machine
from .replicate import bench_replicate
from .scale import bench_scale
from .settings import BenchError, Settings, settings_size
from .sparse import bench_sparse
from .tools import rm

__all__ = [
    "CHUNK_SIZES",
    "BenchError",
    "Settings",
    "bench_capture",
    "bench_chunk_sizes",
    "bench_machine",
    "bench_replicate",
    "bench_scale",
    "bench_sparse",
    "rm",
    "settings_size",
]
