"""`store verify` and `region verify`: verify (and repair) copies, name what the damage affects.

The store layer knows disks only by manifest digest; this module maps the digests a report
calls affected to the image versions (gallery/definition/version and LUN) that use them, with
the gallery's public :func:`~imagestore.gallery.usage.versions_by_digest`.
"""

from __future__ import annotations

import sqlite3

import click

from ..errors import ImagestoreError, IntegrityError
from ..gallery.usage import owners_by_digest, versions_by_digest
from ..regions.registry import RegionRegistry
from ..regions.replicas import verify_region
from .common import open_home
from .output import emit
from .progress import progress_for


def _verify(ctx: click.Context, names: list[str] | None, repair: bool) -> tuple[RegionRegistry, list[dict]]:
    reg = RegionRegistry(open_home(ctx, create=False))
    regions = [reg.get(n, "--region").name for n in names] if names else [r.name for r in reg.list()]
    out = []
    for name in dict.fromkeys(regions):
        bar = progress_for(ctx, f"verify {name}")
        try:
            out.append(verify_region(reg, name, repair_copies=repair, progress=bar))
        finally:
            bar.close()
    return reg, out


def affected_versions(reg: RegionRegistry, reports: list[dict]) -> list[dict]:
    """One entry per version disk whose content some copy reports as affected: the version,
    its LUN, the manifest, and the regions and copies concerned."""
    try:
        usage = versions_by_digest(reg.home)
    except (sqlite3.Error, ImagestoreError):  # a damaged or unreachable gallery database
        # must not hide the store's report
        usage = {}
    found: dict[tuple, dict] = {}
    for rr in reports:
        for slot in rr["slots"]:
            for digest in slot["affectedManifests"]:
                for vd in usage.get(digest, []):
                    key = (vd, digest, rr["region"])
                    e = found.setdefault(key, {**vd.to_json(), "manifest": digest,
                                               "region": rr["region"], "copies": [],
                                               "_name": str(vd)})
                    if slot["copy"] not in e["copies"]:
                        e["copies"].append(slot["copy"])
    return list(found.values())


def affected_resources(reg: RegionRegistry, reports: list[dict]) -> list[dict]:
    """One entry per snapshot or managed image disk whose content some copy reports as
    affected: its id, type, LUN (images), the manifest, and the regions and copies."""
    try:
        usage = owners_by_digest(reg.home)
    except (sqlite3.Error, ImagestoreError):
        usage = {}
    found: dict[tuple, dict] = {}
    for rr in reports:
        for slot in rr["slots"]:
            for digest in slot["affectedManifests"]:
                for o in usage.get(digest, []):
                    key = (o, digest, rr["region"])
                    e = found.setdefault(key, {**o.to_json(), "manifest": digest,
                                               "region": rr["region"], "copies": [],
                                               "_name": str(o)})
                    if slot["copy"] not in e["copies"]:
                        e["copies"].append(slot["copy"])
    return list(found.values())


def damaged_indexes(reports: list[dict]) -> list[dict]:
    return [{"region": rr["region"], "copy": s["copy"], "slot": s["store"],
             "path": s["index"]["path"], "error": s["index"]["error"]}
            for rr in reports for s in rr["slots"] if not s["index"]["ok"]]


def _fail(reports: list[dict], versions: list[dict], repair: bool, what: str,
          owners: list[dict] | None = None) -> None:
    slots = [s for rr in reports for s in rr["slots"]]
    bad = sum(len(s["badChunks"]) for s in slots)
    missing = sum(len(s["missingChunks"]) for s in slots)
    mfs = sum(len(s["badManifests"]) for s in slots)
    idx = damaged_indexes(reports)
    affected = sorted({m for s in slots for m in s["affectedManifests"]})
    gone = [z for rr in reports for z in rr["missingZones"]]
    msg = (f"{what}: verify found {bad} bad and {missing} missing chunk(s), {mfs} bad "
           f"manifest(s), {len(idx)} damaged index(es)" + (" after repair" if repair else ""))
    for i in idx:
        msg += f"; region '{i['region']}' copy {i['copy']}: {i['path']}: {i['error']}"
    if idx and not repair:
        msg += " (--repair rebuilds it from the packs)"
    if versions:
        msg += "; affected versions: " + ", ".join(
            sorted({f"{v['_name']} in {v['region']}" for v in versions}))
    if owners:
        msg += "; affected snapshots and images: " + ", ".join(
            sorted({f"{o['_name']} in {o['region']}" for o in owners}))
    msg += f"; affected manifests: {', '.join(affected) or 'none'}"
    if gone:
        msg += f"; zone(s) without a blob store: {', '.join(gone)}"
    raise IntegrityError(msg)


def _public(versions: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in versions]


def region_verify_cli(ctx: click.Context, name: str, *, repair: bool) -> None:
    """`region verify NAME`: the region's report plus the affected versions and indexes."""
    reg, reports = _verify(ctx, [name], repair)
    rep = reports[0]
    versions = affected_versions(reg, reports)
    owners = affected_resources(reg, reports)
    emit(ctx, {**rep, "damagedIndexes": damaged_indexes(reports),
               "affectedVersions": _public(versions), "affectedResources": _public(owners)})
    if not rep["clean"]:
        _fail(reports, versions, repair, f"region '{rep['region']}'", owners)


def store_verify_cli(ctx: click.Context, regions: list[str] | None, *, repair: bool) -> None:
    """`store verify`: every copy of every region (or of ``regions``), totals at the top."""
    reg, reports = _verify(ctx, regions, repair)
    slots = [{"region": rr["region"], **s} for rr in reports for s in rr["slots"]]

    def tagged(key: str) -> list[dict]:
        return [{**x, "region": s["region"], "copy": s["copy"], "slot": s["store"]}
                for s in slots for x in s[key]]

    versions = affected_versions(reg, reports)
    owners = affected_resources(reg, reports)
    repairs = [rr["repair"] for rr in reports if rr["repair"] is not None]
    out = {
        "store": reg.home.root,
        "clean": all(rr["clean"] for rr in reports),
        "chunksChecked": sum(s["chunksChecked"] for s in slots),
        "bytesChecked": sum(s["bytesChecked"] for s in slots),
        "manifestsChecked": sum(s["manifestsChecked"] for s in slots),
        "badChunks": tagged("badChunks"),
        "missingChunks": tagged("missingChunks"),
        "badManifests": tagged("badManifests"),
        "affectedManifests": sorted({m for s in slots for m in s["affectedManifests"]}),
        "unreferencedChunks": sum(s["unreferencedChunks"] for s in slots),
        "damagedIndexes": damaged_indexes(reports),
        "affectedVersions": _public(versions),
        "affectedResources": _public(owners),
        "regions": reports,
        "repair": None if not repair else {
            key: [x for r in repairs for x in r[key]]
            for key in ("slots", "rebuiltIndexes", "repairedChunks", "repairedManifests",
                        "unrepairable")
        } | {"chunksChecked": sum(r["chunksChecked"] for r in repairs),
             "clean": all(r["clean"] for r in repairs)},
    }
    emit(ctx, out)
    if not out["clean"]:
        _fail(reports, versions, repair, reg.home.root, owners)
