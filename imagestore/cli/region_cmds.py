"""`imagestore region …`: create, list, show and delete regions; replicate and verify copies."""

from __future__ import annotations

import os

import click

from ..errors import NotFound
from ..regions.registry import RegionRegistry
from ..regions.replicas import (
    STORAGE_ACCOUNT_TYPES,
    check_zones,
    gc_region,
    missing_zones,
    open_slot,
    plan_copies,
    region_slots,
    replicate_to_region,
    storage_account_type,
)
from ..store.maintenance import stats
from .common import common_options, open_home
from .output import emit
from .progress import progress_for
from .sig_cmds import gallery_service


def _registry(ctx: click.Context, *, create: bool = False) -> RegionRegistry:
    """The store's regions; only ``region create`` may create the store itself."""
    return RegionRegistry(open_home(ctx, create=create))


@click.group("region")
def region_group() -> None:
    """Regions: named stores made of zones (directories), and copies of disks in them."""


@region_group.command("create")
@click.argument("name")
@click.option("--path", "paths", multiple=True, metavar="DIR",
              help="A zone directory (repeat for more zones; each typically on its own disk).")
@click.option("--storage-account-url", "account_urls", multiple=True, metavar="URL",
              help="A blob region: the storage account's blob endpoint "
                   "(https://ACCOUNT.blob.core.windows.net, or http://127.0.0.1:10000/ACCOUNT "
                   "for Azurite); repeat for zones in several accounts (ZRS).")
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="A blob region's container (must exist); repeat for more zones.")
@click.option("--account-key", envvar=None, default=None, metavar="KEY",
              help="The storage account key (else AZURE_STORAGE_KEY / "
                   "AZURE_STORAGE_CONNECTION_STRING). Kept in a 0600 file, never printed.")
@click.option("--sas-token", default=None, metavar="SAS",
              help="A SAS token with read/write/list/delete on the containers.")
@click.option("--connection-string", default=None, metavar="CS",
              help="An Azure storage connection string.")
@common_options
@click.pass_context
def create_cmd(ctx: click.Context, name: str, paths: tuple[str, ...],
               account_urls: tuple[str, ...], containers: tuple[str, ...],
               account_key: str | None, sas_token: str | None,
               connection_string: str | None) -> None:
    """Create region NAME whose zones are the given directories, or containers in Azure
    Blob Storage.

    A zone directory must be missing, empty, or an imagestore blob store with this store's
    chunk size; it must not overlap another region's zone. A zone container must exist and
    accept the credentials; copies beyond the first of a zone go to containers NAME-copyK
    that imagestore creates.

    \b
    Example:
      imagestore region create westeurope --path /mnt/disk1/img --path /mnt/disk2/img
      imagestore region create eastus --storage-account-url https://acct.blob.core.windows.net \\
          --container images
    """
    from ..errors import InvalidArgument
    from ..regions.blobzones import check_explicit

    blob = bool(account_urls or containers)
    if blob and paths:
        raise InvalidArgument("--path and --storage-account-url/--container: a region is "
                              "either directories or blob containers")
    if not blob and not paths:
        raise InvalidArgument("--path: a region needs at least one zone directory (or "
                              "--storage-account-url and --container for a blob region)")
    cred = check_explicit(account_key, sas_token, connection_string)
    if not blob and cred is not None:
        raise InvalidArgument("--account-key/--sas-token/--connection-string: only for a "
                              "blob region")
    reg = _registry(ctx, create=True)
    if blob:
        r = reg.create_blob(name, list(account_urls), list(containers), credential=cred)
    else:
        r = reg.create(name, list(paths))
    emit(ctx, r.to_json(reg.home))


@region_group.command("list")
@common_options
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """List the regions, the default region `local` first.

    \b
    Example:
      imagestore region list -o table
    """
    reg = _registry(ctx)
    emit(ctx, [r.to_json(reg.home) for r in reg.list()])


@region_group.command("show")
@click.argument("name")
@common_options
@click.pass_context
def show_cmd(ctx: click.Context, name: str) -> None:
    """Show region NAME with the copy slots in its zones and what they hold.

    \b
    Example:
      imagestore region show westeurope --query "slots[].storedBytes"
    """
    reg = _registry(ctx)
    r = reg.get(name)
    out = r.to_json(reg.home)
    slots = []
    for p in region_slots(r):
        s = open_slot(p, reg.home.config, create=False)
        try:
            st = stats(s)
        finally:
            s.close()
        slots.append({"path": p, "manifests": st["manifests"], "chunks": st["chunks"],
                      "uniqueBytes": st["uniqueBytes"], "storedBytes": st["storedBytes"]})
    out["slots"] = slots
    out["missingZones"] = missing_zones(r)
    emit(ctx, out)


@region_group.command("delete")
@click.argument("name")
@click.option("--delete-data", is_flag=True,
              help="Also remove the blob stores in the zone directories (default: keep them, "
                   "so that `region create` with the same paths re-attaches them).")
@common_options
@click.pass_context
def delete_cmd(ctx: click.Context, name: str, delete_data: bool) -> None:
    """Delete region NAME. The default region `local` cannot be deleted, nor a region that
    an image version targets (remove it from the versions' target regions first), nor one
    that holds snapshots or managed images (delete them first). The output
    lists the zone directories left in place (`keptPaths`).

    \b
    Example:
      imagestore region delete westeurope --delete-data
    """
    reg = _registry(ctx)
    r = reg.delete(name, delete_data=delete_data,
                   targeted_by=lambda n: gallery_service(ctx).versions_targeting(n),
                   holds_only_copy=lambda n: gallery_service(ctx).snapshots_and_images_in(n))
    # kept, or not removable (other files); a blob region's containers are the user's
    kept = (list(r.zones) if r.storage != "directory"
            else [z for z in r.zones if os.path.exists(z)])
    emit(ctx, {**r.to_json(reg.home), "deleted": True, "dataDeleted": delete_data,
               "keptPaths": kept})


@region_group.command("replicate")
@click.argument("digest")
@click.option("--from", "src", default="local", show_default=True, metavar="REGION",
              help="Region to copy from.")
@click.option("--to", "dst", required=True, metavar="REGION", help="Region to copy to.")
@click.option("--copies", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Independent copies to keep in the target region (regionalReplicaCount).")
@click.option("--storage-account-type", "sku", default="Standard_LRS", show_default=True,
              metavar="|".join(STORAGE_ACCOUNT_TYPES),
              help="Standard_LRS: copies anywhere; Standard_ZRS: one zone per copy; "
                   "Premium_LRS: stored uncompressed.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@common_options
@click.pass_context
def replicate_cmd(ctx: click.Context, digest: str, src: str, dst: str, copies: int, sku: str,
                  threads: int) -> None:
    """Copy the disk with manifest DIGEST to another region, sending only missing chunks.

    Low-level verb: the gallery replicates image versions with it. Resumable: after a crash or
    kill, running it again copies only what is still missing.

    \b
    Example:
      imagestore region replicate 3f2a…c9 --from local --to westeurope --copies 2 \\
          --storage-account-type Standard_ZRS
    """
    reg = _registry(ctx)
    sku = storage_account_type(sku)
    src_region = reg.get(src, "--from")
    dst_region = reg.get(dst, "--to")
    plan = plan_copies(dst_region, copies, sku)  # refuse a bad plan before any work
    check_zones(dst_region, plan)
    cfg = reg.home.config
    digest = reg.home.blob_store().check_digest(digest)
    source = None
    for p in region_slots(src_region):
        s = open_slot(p, cfg, create=False)
        if s.has_manifest(digest):
            source = s
            break
        s.close()
    if source is None:
        raise NotFound(f"manifest {digest}: no such disk content in region '{src_region.name}'")
    bar = progress_for(ctx, f"replicate {dst_region.name}")
    try:
        results = replicate_to_region(source, dst_region, digest, copies=copies, sku=sku,
                                      cfg=cfg, progress=bar, threads=threads)
    finally:
        bar.close()
        source.close()
    emit(ctx, {
        "digest": results[0].digest,
        "source": src_region.name,
        "target": dst_region.name,
        "regionalReplicaCount": copies,
        "storageAccountType": sku,
        "bytesSent": sum(r.bytes_sent for r in results),
        "chunksSent": sum(r.chunks_sent for r in results),
        "chunksAdopted": sum(r.chunks_adopted for r in results),
        "copies": [{"copy": i, "slot": p, **r.to_json()}
                   for i, (p, r) in enumerate(zip(plan, results, strict=True))],
    })


def verify_region_cli(ctx: click.Context, name: str, *, repair: bool) -> None:
    """Verify (and repair) every copy slot of a region; exit 7 when something stays bad."""
    from .verify_report import region_verify_cli

    region_verify_cli(ctx, name, repair=repair)


@region_group.command("verify")
@click.argument("name")
@click.option("--repair", is_flag=True,
              help="Rewrite bad or missing chunks and manifests from a good copy.")
@common_options
@click.pass_context
def verify_cmd(ctx: click.Context, name: str, repair: bool) -> None:
    """Verify every copy slot of region NAME; with --repair restore bad copies from good ones.

    \b
    Example:
      imagestore region verify westeurope --repair
    """
    verify_region_cli(ctx, name, repair=repair)


@region_group.command("gc")
@click.argument("name")
@click.option("--dry-run", is_flag=True,
              help="Remove nothing; report what would be removed (wouldRemoveChunks, …).")
@click.option("--timeout", default=600.0, show_default=True,
              help="Seconds to wait for each slot's exclusive lock.")
@common_options
@click.pass_context
def gc_cmd(ctx: click.Context, name: str, dry_run: bool, timeout: float) -> None:
    """Remove chunks no manifest references from every copy slot of region NAME.

    \b
    Example:
      imagestore region gc westeurope --dry-run
    """
    reg = _registry(ctx)
    emit(ctx, gc_region(reg.get(name), timeout=timeout, dry_run=dry_run))
