"""`imagestore bench …`: imagestore against qemu-img, cp and dd on the same data, in one run.

Each subcommand prints one table (``-o table`` unless ``-o`` is given; ``-o json`` gives the
same rows as JSON). See :mod:`imagestore.bench` for what each row means.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable

import click

from .. import bench as B
from ..errors import InvalidArgument, IOFailure
from .common import common_options, verbose
from .output import emit


def _bench_options(f: Callable) -> Callable:
    f = click.option("--cache", type=click.Choice(("cold", "warm", "both")), default="cold",
                     show_default=True,
                     help="cold: drop the source files from the page cache before every timed "
                          "run; warm: read them in first; both: cold, then warm.")(f)
    f = click.option("--repeat", type=click.IntRange(1, 100), default=None,
                     help="Runs per measurement, best time kept (default 3, 1 with --tiny).")(f)
    f = click.option("--workdir", default=None, metavar="DIR",
                     help="Where scratch files go (default: a new directory under /tmp).")(f)
    f = click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True,
                     help="Worker threads for imagestore's ingest/materialize/convert.")(f)
    f = click.option("--image", default=None, metavar="FILE",
                     help="Run on this disk image (raw, VHD, VHDX) instead of a generated one.")(f)
    f = click.option("--tiny", is_flag=True, help="A 64 MiB image and one run each: a smoke test.")(f)
    f = click.option("--size", default=None, metavar="SIZE",
                     help="Size of the generated image (default 1G; 64M with --tiny).")(f)
    return f


def _settings(ctx: click.Context, size: str | None, tiny: bool, image: str | None, threads: int,
              workdir: str | None, repeat: int | None, cache: str) -> B.Settings:
    out = ctx.find_root().meta.setdefault("imagestore.output", {})
    out.setdefault("output", "table")
    if image is not None and not os.path.isfile(image):
        raise InvalidArgument(f"--image: {image} is not a file")
    base = workdir or tempfile.gettempdir()
    try:
        os.makedirs(base, exist_ok=True)
        wd = tempfile.mkdtemp(prefix="imagestore-bench-", dir=base)
    except OSError as e:
        raise IOFailure(f"--workdir: {base}: {e.strerror}") from None
    log_on = verbose(ctx) or sys.stderr.isatty()  # the global --verbose

    def log(msg: str) -> None:
        if log_on:
            click.echo(f"bench: {msg}", err=True)

    s = B.Settings(
        workdir=wd,
        size=B.settings_size(size, tiny),
        size_given=size is not None,
        tiny=tiny,
        image=os.path.abspath(image) if image else None,
        threads=threads,
        repeat=repeat or (1 if tiny else 3),
        cache=cache,
        log=log,
    )
    ctx.call_on_close(lambda: B.rm(wd))
    return s


def _run(ctx: click.Context, s: B.Settings, fn: Callable[[B.Settings], list[dict]]) -> None:
    from ..accel import BACKEND

    load0 = os.getloadavg()[0]
    try:
        if s.cache == "both" and fn is not B.bench_capture:  # capture loops over the modes itself
            rows = []
            for mode in s.modes():
                s.cache = mode
                rows += fn(s)
            s.cache = "both"
        else:
            rows = fn(s)
    except B.BenchError as e:
        raise IOFailure(str(e)) from None
    load1 = os.getloadavg()[0]
    emit(ctx, rows)
    if s.image:
        data = s.image
    elif s.compressibility is not None:
        data = f"generated {s.size >> 20} MiB, compressibility {s.compressibility}"
    else:
        data = f"generated {s.size >> 20} MiB ext4"
    click.echo(
        f"# backend {BACKEND}, {os.cpu_count()} cpus, threads {s.threads}, cache {s.cache}, "
        f"best of {s.repeat}, image {data}, "
        f"load average {load0:.2f} -> {load1:.2f}; "
        f"ratio = imagestore time / reference time (lower is better)"
        + "".join(f"; {n}" for n in s.notes),
        err=True,
    )


@click.group("bench")
def bench_group() -> None:
    """Benchmarks against qemu-img, cp and dd on the same data, with ratios.

    \b
    Example:
      imagestore bench machine
      imagestore bench capture --size 1G
      imagestore bench capture --image my-disk.vhdx -o json
      imagestore bench replicate --size 1G
    """


@bench_group.command("machine")
@_bench_options
@common_options
@click.pass_context
def machine_cmd(ctx: click.Context, **kw) -> None:
    """The machine's limits: dd write with fsync, sequential read cold and warm, one core's
    xxh3, zstd and zero scan.

    \b
    Example:
      imagestore bench machine --size 1G
    """
    _run(ctx, _settings(ctx, **kw), B.bench_machine)


FAMILIES = ("capture", "disks", "conversions")


def _families(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    got = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in got if x not in FAMILIES + ("none",)]
    if bad:
        raise InvalidArgument(f"--only: '{bad[0]}' is not one of {', '.join(FAMILIES)}, none")
    return tuple(x for x in got if x != "none")


@bench_group.command("capture")
@click.option("--only", default=None, metavar="LIST",
              help="Run only these families: capture, disks, conversions (comma-separated; "
                   "'none' with --peers runs the peers' comparison alone).")
@click.option("--peers", is_flag=True,
              help="Also borg (create --compression zstd,1 / extract) and restic (backup / "
                   "restore) where installed, with their stored bytes; installs nothing and "
                   "says what it skipped.")
@_bench_options
@common_options
@click.pass_context
def capture_cmd(ctx: click.Context, only: str | None, peers: bool, **kw) -> None:
    """Capture, re-capture, disk creation and format conversion vs qemu-img convert and cp
    (wall and CPU seconds, user and sys); with --peers also vs borg and restic.

    \b
    Example:
      imagestore bench capture --size 1G --threads 2
      imagestore bench capture --size 2G --cache both --peers --repeat 5
    """
    families = _families(only)  # refused before any work
    s = _settings(ctx, **kw)
    s.peers = peers
    s.only = families
    _run(ctx, s, B.bench_capture)


@bench_group.command("chunk-sizes")
@click.option("--chunk-sizes", "sizes", default=",".join(B.CHUNK_SIZES), show_default=True,
              help="Comma-separated chunk sizes.")
@_bench_options
@common_options
@click.pass_context
def chunk_sizes_cmd(ctx: click.Context, sizes: str, **kw) -> None:
    """Dedup of v2 (v1 with files changed in place) against v1, ingest speed, index and
    manifest sizes, per chunk size.

    \b
    Example:
      imagestore bench chunk-sizes --chunk-sizes 256K,1M,4M
    """
    from ..store.layout import make_config

    chosen = tuple(x.strip() for x in sizes.split(",") if x.strip())
    for c in chosen:
        make_config(c, None)  # refuse a bad size before any work
    _run(ctx, _settings(ctx, **kw), lambda s: B.bench_chunk_sizes(s, chosen))


@bench_group.command("replicate")
@click.option("--compressibility", type=click.FloatRange(0.0, 0.95), default=None, metavar="F",
              help="Replicate generated data of --size instead of an ext4 image: each 4 KiB "
                   "block is a share F of repeated text (compresses away) and 1-F random bytes "
                   "(0 = incompressible, 0.5 ~ 2:1).")
@click.option("--change-rate", type=click.FloatRange(0.0001, 0.9), default=0.02, show_default=True,
              metavar="F", help="Share of v1's data changed in place in v2 (files rewritten by "
                                "debugfs in the ext4 image, else random 4-64 KiB overwrites).")
@_bench_options
@common_options
@click.pass_context
def replicate_cmd(ctx: click.Context, compressibility: float | None, change_rate: float, **kw) -> None:
    """Full replication to a new region vs cp -r of the packs it needs; incremental
    replication of v2 (v1 changed in place) vs full; fan-out to 3 regions, concurrent vs
    sequential.

    \b
    Example:
      imagestore bench replicate --size 1G
      imagestore bench replicate --size 4G --compressibility 0.5 --change-rate 0.05
      imagestore bench replicate --image my-disk.vhdx --workdir /mnt/fast
    """
    if compressibility is not None and kw.get("image"):
        raise InvalidArgument("--compressibility: generated data and --image are exclusive")
    s = _settings(ctx, **kw)
    s.compressibility = compressibility
    s.change_rate = change_rate
    _run(ctx, s, B.bench_replicate)


@bench_group.command("sparse")
@_bench_options
@common_options
@click.pass_context
def sparse_cmd(ctx: click.Context, **kw) -> None:
    """Capture of a 15 TiB sparse raw file and a 32 TiB dynamic VHDX in a child process:
    wall time and peak RSS.

    \b
    Example:
      imagestore bench sparse
    """
    _run(ctx, _settings(ctx, **kw), B.bench_sparse)


@bench_group.command("scale")
@click.option("--versions", type=click.IntRange(0, 100000), default=None,
              help="Versions of one image to capture (default 1000; 50 with --tiny; 0 skips).")
@click.option("--index-chunks", type=click.IntRange(0, 10**9), default=None,
              help="Synthetic chunks to add to a store's index (default 20,000,000; 200,000 "
                   "with --tiny; 0 skips).")
@_bench_options
@common_options
@click.pass_context
def scale_cmd(ctx: click.Context, versions: int | None, index_chunks: int | None, **kw) -> None:
    """Does the cost grow with history? Capture, disk create, latest, version list, gc,
    verify and RSS with many versions of an image (default 1,000 of 1 GiB, a few MiB changed
    each) and with a large synthetic chunk index, against an empty store.

    \b
    Example:
      imagestore bench scale --tiny
      imagestore bench scale --versions 200 --index-chunks 0 --size 256M
    """
    s = _settings(ctx, **kw)
    _run(ctx, s, lambda st: B.bench_scale(st, versions=versions, index_chunks=index_chunks))


# -- REST API load (issue 12) ---------------------------------------------------------------


@bench_group.command("api")
@click.option("--clients", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Concurrent clients, each with its own connection.")
@click.option("--duration", type=click.FloatRange(1, 3600), default=25.0, show_default=True,
              help="Seconds of load.")
@click.option("--page-size", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--workdir", default=None, metavar="DIR", help="Where the scratch store goes.")
@common_options
@click.pass_context
def bench_api_cmd(ctx: click.Context, clients: int, duration: float, page_size: int,
                  workdir: str | None) -> None:
    """Load-test `imagestore serve` on loopback: mixed GET/list and a few PUTs from concurrent
    clients; requests/s, p50/p99 latency, status codes, lost writes, server CPU.

    \b
    Example:
      imagestore bench api --clients 16 --duration 25
    """
    from ..bench.api_load import bench_api

    emit(ctx, bench_api(clients=clients, duration=duration, page_size=page_size,
                        workdir=workdir))
