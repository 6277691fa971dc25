"""`imagestore init` and the low-level `imagestore store …` verbs."""

from __future__ import annotations

import os

import click

from ..formats import SOURCE_FORMATS, WRITE_FORMATS, open_disk
from ..home import Home
from ..store.ingest import ingest
from ..store.layout import make_config
from ..store.maintenance import gc, stats
from ..store.materialize import materialize
from .common import common_options, open_home
from .output import emit
from .progress import progress_for


@click.command("init")
@click.option("--chunk-size", default=None, metavar="SIZE", help="Chunk size, a power of two (default 256K).")
@click.option("--compression", default=None, metavar="zstd[:LEVEL]|lz4|none",
              help="Chunk compression (default zstd:1; lz4 and zstd:-1..-7 are faster, larger).")
@click.option("--cold-compression", default=None, metavar="zstd[:LEVEL]|lz4",
              help="Capture hot, store cold: 'store gc' re-encodes captured chunks with this "
                   "codec (e.g. --compression lz4 --cold-compression zstd:3).")
@common_options
@click.pass_context
def init_cmd(ctx: click.Context, chunk_size: str | None, compression: str | None,
             cold_compression: str | None) -> None:
    """Create a store with a chosen chunk size and compression.

    \b
    Example:
      imagestore --store /srv/images init --chunk-size 1M --compression zstd:3
      imagestore --store /srv/images init --compression lz4 --cold-compression zstd:3
    """
    cfg = make_config(chunk_size, compression, cold_compression)
    home = Home.open(ctx.find_root().meta.get("imagestore.store"), create=True, cfg=cfg)
    emit(ctx, {"store": home.root, **cfg.to_json()})


@click.group("store")
def store_group() -> None:
    """Low-level store verbs: ingest, materialize, verify, gc, stats."""


@store_group.command("ingest")
@click.argument("file")
@click.option("--allow-parent-dir", default=None, metavar="DIR",
              help="Allow differencing parents to resolve inside DIR too.")
@click.option("--source-format", default="auto", show_default=True,
              type=click.Choice(SOURCE_FORMATS, case_sensitive=False),
              help="auto: detect raw/VHD/VHDX and refuse anything else; raw: take the file's "
                   "bytes as the disk, whatever they look like.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@common_options
@click.pass_context
def ingest_cmd(ctx: click.Context, file: str, allow_parent_dir: str | None, source_format: str,
               threads: int) -> None:
    """Capture a disk image (raw, VHD, VHDX; detected from content) into the store.

    Other images (qcow2, VMDK, VDI, ISO, archives, text) are refused by name.

    \b
    Example:
      imagestore store ingest disk.vhdx
      imagestore store ingest odd-sized.bin --source-format raw
    """
    home = open_home(ctx)
    reader = open_disk(file, allow_parent_dir=allow_parent_dir,
                       source_format=source_format.lower())
    bar = progress_for(ctx, "ingest")
    try:
        res = ingest(home.blob_store(), reader, threads=threads, progress=bar)
    finally:
        bar.close()
        reader.close()
    emit(ctx, res.to_json())


@store_group.command("materialize")
@click.argument("digest")
@click.option("--path", "out", required=True, metavar="FILE", help="Disk file to create.")
@click.option("--format", "fmt", default="raw", show_default=True,
              type=click.Choice(WRITE_FORMATS, case_sensitive=False))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--no-verify", is_flag=True,
              help="Do not re-read chunks that are shared (reflinked) into the disk; "
                   "only safe right after 'store verify'. Copied chunks are always checked.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@common_options
@click.pass_context
def materialize_cmd(ctx: click.Context, digest: str, out: str, fmt: str, force: bool,
                    no_verify: bool, threads: int) -> None:
    """Write the disk with manifest DIGEST to a new file.

    \b
    Example:
      imagestore store materialize 3f2a…c9 --path disk.raw --format raw
    """
    home = open_home(ctx, create=False)
    bar = progress_for(ctx, "materialize")
    try:
        res = materialize(home.blob_store(), digest, out, fmt=fmt.lower(), overwrite=force,
                          threads=threads, progress=bar, verify=not no_verify)
    finally:
        bar.close()
    emit(ctx, res.to_json())


@store_group.command("verify")
@click.option("--repair", is_flag=True,
              help="Rebuild a damaged or missing index from the packs, rewrite bad or missing "
                   "chunks and manifests from a good copy (another copy of the region, else "
                   "another region); exit 7 only if some stay bad.")
@click.option("--region", "regions", multiple=True, metavar="REGION",
              help="Verify only REGION's copies (repeatable; default: every region).")
@common_options
@click.pass_context
def verify_cmd(ctx: click.Context, repair: bool, regions: tuple[str, ...]) -> None:
    """Re-hash every chunk of every copy in every region, check the indexes and that every
    manifest's chunks exist; name the image versions any damage affects. Exit 7 on any problem.

    \b
    Example:
      imagestore store verify -o table
      imagestore store verify --repair --region westeurope
    """
    from .verify_report import store_verify_cli

    store_verify_cli(ctx, list(regions) or None, repair=repair)


@store_group.command("rebuild-index")
@click.option("--region", "regions", multiple=True, metavar="REGION",
              help="Rebuild the indexes of REGION's copies (repeatable; default: the local "
                   "region).")
@click.option("--timeout", default=600.0, show_default=True,
              help="Seconds to wait for each copy's exclusive lock.")
@common_options
@click.pass_context
def rebuild_index_cmd(ctx: click.Context, regions: tuple[str, ...], timeout: float) -> None:
    """Rebuild the chunk index of every copy of a region from its packs' records.

    For an index that is gone or unreadable. Every record is checked (hash and payload
    checksum); damaged ones are skipped and reported, and chunks a manifest needs that no
    record holds are listed (`store verify --repair` fetches them from a good copy). The new
    index is written beside the old one and renamed over it.

    \b
    Example:
      imagestore store rebuild-index
      imagestore store rebuild-index --region westeurope
    """
    from ..regions.registry import RegionRegistry
    from ..regions.replicas import copy_number, open_slot, region_slots
    from ..store.rebuild import rebuild_index

    reg = RegionRegistry(open_home(ctx, create=False))
    out = []
    for name in dict.fromkeys(regions or ("local",)):
        region = reg.get(name, "--region")
        for p in region_slots(region):
            s = open_slot(p, reg.home.config, create=False)
            try:
                if s.backend != "directory":  # a container: its local index cache, from blobs
                    with s.lock(exclusive=True, timeout=timeout):
                        rb_json = s.rebuild_cache()
                else:
                    rb_json = rebuild_index(s, timeout=timeout).to_json()
            finally:
                s.close()
            out.append({"region": region.name, "copy": copy_number(region, p), **rb_json})
    emit(ctx, out)


@store_group.command("gc")
@click.option("--dry-run", is_flag=True,
              help="Remove nothing; report what would be removed (wouldRemoveChunks, "
                   "wouldFreeBytes, …).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the exclusive lock.")
@common_options
@click.pass_context
def gc_cmd(ctx: click.Context, dry_run: bool, timeout: float) -> None:
    """Remove chunks that no manifest references and compact packs. First purges the
    soft-deleted image versions past their hard-deletion time (softDeletedVersionsPurged),
    so their chunks are freed in the same run.

    \b
    Example:
      imagestore store gc
    """
    home = open_home(ctx, create=False)  # nothing to collect in a store that is not there
    first, unpublished = _finish_gallery_deletions(home, dry_run)
    out = gc(home.blob_store(), timeout=timeout, dry_run=dry_run,
             unpublished=unpublished).to_json()
    out.update(first)
    out["linkedParentsFreed"] = _collect_linked_parents(home, dry_run)
    out["abandonedTempFilesRemoved"] = 0 if dry_run else _remove_abandoned_temps(home)
    emit(ctx, out)


def _remove_abandoned_temps(home: Home) -> int:
    """Temp files of disk and key creations (the store's ``disks/``: formats.new_disk_file;
    ``identity/``: identity.keyfile) whose process died: ``.<name>.imagestore-new-<host>-
    <pid>-…`` left by a kill while writing, or between publishing and removing the temp."""
    from ..fsutil import remove_stale_builds

    return sum(remove_stale_builds(os.path.join(home.root, d)) for d in ("disks", "identity"))


def _finish_gallery_deletions(home: Home, dry_run: bool) -> tuple[dict, set[str]]:
    """Before collecting chunks: finish the version deletions a kill interrupted between a
    version's rows and its manifests (gallery/version_data.py), remove the manifests killed
    captures published before their rows (gallery/capture_intents.py), and purge the
    soft-deleted versions past their hard-deletion time (gallery/soft_delete.py), so their
    chunks are freed in this run. Returns the report's entries and, for ``dry_run`` (which
    changes nothing), the digests these steps would unpublish, so that the chunk counts
    include what they would free."""
    from ..gallery import GalleryService, backends, capture_intents, version_data

    empty = {"softDeletedVersionsPurged": [], "interruptedDeletionsFreed": [],
             "abandonedCaptureManifestsRemoved": []}
    if not backends.exists(home.gallery_database):
        return empty, set()
    svc = GalleryService(home)
    try:
        resumed = version_data.resume_unreferences(svc.repo, svc.placement, dry_run=dry_run)
        abandoned = capture_intents.resume_abandoned(svc.repo, svc.placement, dry_run=dry_run)
        unpublished = set(resumed) | set(abandoned)
        if dry_run:
            unpublished |= set(version_data.freed_by_deleting(svc.repo, svc.soft_delete.expired()))
        purged = svc.soft_delete.purge_expired(dry_run=dry_run)
        return {"softDeletedVersionsPurged": purged, "interruptedDeletionsFreed": resumed,
                "abandonedCaptureManifestsRemoved": abandoned}, unpublished
    finally:
        svc.close()


def _collect_linked_parents(home: Home, dry_run: bool) -> list[dict]:
    """Linked-clone parents no linked disk uses any more (gallery/linked.py)."""
    import os

    from ..gallery import backends, linked
    from ..gallery.repository import Repository

    target = home.gallery_database  # the store's gallery.sqlite, or PostgreSQL
    if not backends.exists(target) or not os.path.isdir(linked.parents_root(home.root)):
        return []
    repo = Repository(target)
    try:
        return linked.collect(repo, home.root, dry_run=dry_run)
    finally:
        repo.close()


@store_group.command("stats")
@common_options
@click.pass_context
def stats_cmd(ctx: click.Context) -> None:
    """Chunks, logical/allocated/stored bytes, dedup and compression ratios.

    \b
    Example:
      imagestore store stats -o table
    """
    home = open_home(ctx, create=False)
    from ..accel import BACKEND

    emit(ctx, {"store": home.root, "backend": BACKEND, **stats(home.blob_store())})
