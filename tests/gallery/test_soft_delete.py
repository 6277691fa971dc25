"""Soft delete of image versions through the CLI (issue 15; sharing-rbac.md §5, cases 23 and
24): the gallery flag, delete → SoftDeleted (listed apart, never latest, usable by explicit
version, its chunks kept by gc), undelete, purge, the retention and grace periods with the
clock moved (IMAGESTORE_NOW), gc freeing the chunks after the purge, definitions holding
soft-deleted versions, and bad input — each asserting the exit code and the message."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from imagestore.gallery.ids import SUBSCRIPTION
from tests.helpers import fails

INVALID, NOT_FOUND, CONFLICT = 3, 4, 5
MiB = 1 << 20
G_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/default/providers/Microsoft.Compute/"
        "galleries/g")
VID = f"{G_ID}/images/d/versions"


def make_raw(path, fill: int, size=3 * MiB, at=(0, 2 * MiB + 4096), n=70000) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
        for off in at:
            f.seek(off)
            f.write(bytes([fill]) * n)
    return str(path)


@pytest.fixture
def env(run, tmp_path):
    g = run.json("sig", "create", "-r", "g", "--soft-delete", "true")
    assert g["properties"]["softDeletePolicy"] == {
        "isSoftDeleteEnabled": True, "retentionPeriodInDays": 7, "gracePeriodInDays": 7}
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.tmp = tmp_path
    run.src = {c: make_raw(tmp_path / f"{c}.raw", fill=c) for c in (1, 2)}
    for v, src in (("1.0.0", 1), ("1.0.1", 2)):
        assert run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", v,
                   "--os-vhd-uri", run.src[src], "-o", "none").exit_code == 0
    return run


def at(days: float) -> str:
    """An IMAGESTORE_NOW this many days from now."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def names(run) -> list[str]:
    return [v["name"] for v in run.json("sig", "image-version", "list", "-r", "g", "-i", "d")]


def soft_deleted(run) -> list[dict]:
    return run.json("sig", "image-version", "list-soft-deleted", "-r", "g", "-i", "d")


def disk_from(run, name: str, ref: str):
    return run("disk", "create", "-n", name, "--gallery-image-reference", ref,
               "--path", str(run.tmp / f"{name}.raw"), "-o", "json")


def latest_name(run, disk: str) -> str:
    r = disk_from(run, disk, "g/d")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["properties"]["creationData"]["galleryImageReference"]["id"] \
        .rsplit("/", 1)[1]


def manifests(run) -> set[str]:
    return set(os.listdir(os.path.join(run.store, "regions", "local", "manifests")))


def verify_clean(run) -> None:
    r = run("store", "verify", "-o", "json")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    rep = json.loads(r.stdout)
    assert rep["badChunks"] == [] and rep["missingChunks"] == [] and rep["badManifests"] == []


def test_gallery_flag(run):
    g = run.json("sig", "create", "-r", "plain")
    assert "softDeletePolicy" not in g["properties"]  # never set: not shown
    g = run.json("sig", "update", "-r", "plain", "--soft-delete")  # az's bare flag = true
    assert g["properties"]["softDeletePolicy"]["isSoftDeleteEnabled"] is True
    g = run.json("sig", "update", "-r", "plain", "--description", "x")  # kept by other updates
    assert g["properties"]["softDeletePolicy"]["isSoftDeleteEnabled"] is True
    assert g["properties"]["description"] == "x"
    g = run.json("sig", "update", "-r", "plain", "--soft-delete", "False")
    assert g["properties"]["softDeletePolicy"]["isSoftDeleteEnabled"] is False
    g = run.json("sig", "update", "-r", "plain", "--set",
                 "properties.softDeletePolicy.isSoftDeleteEnabled=true")
    assert g["properties"]["softDeletePolicy"]["isSoftDeleteEnabled"] is True
    assert run.json("sig", "show", "-r", "plain") == g
    # the periods may be repeated as shown, not changed
    assert run("sig", "update", "-r", "plain", "--set",
               "properties.softDeletePolicy.retentionPeriodInDays=7").exit_code == 0
    before = run.json("sig", "show", "-r", "plain")
    fails(run("sig", "update", "-r", "plain", "--set",
              "properties.softDeletePolicy.retentionPeriodInDays=30"), INVALID,
          "properties.softDeletePolicy.retentionPeriodInDays: is 7 days and cannot be changed")
    fails(run("sig", "update", "-r", "plain", "--soft-delete", "maybe"), INVALID,
          "--soft-delete: 'maybe' is not true or false")
    fails(run("sig", "create", "-r", "other", "--soft-delete", "1; DROP TABLE x"), INVALID,
          "--soft-delete")
    fails(run("sig", "update", "-r", "plain", "--set",
              "properties.softDeletePolicy.isSoftDeleteEnabled=[1]"), INVALID,
          "properties.softDeletePolicy.isSoftDeleteEnabled")
    assert run.json("sig", "show", "-r", "plain") == before  # nothing changed
    fails(run("sig", "show", "-r", "other"), NOT_FOUND)  # the refused create wrote nothing


def test_round_trip_case_23_with_the_clock_moved(env, monkeypatch):
    run = env
    assert latest_name(run, "before") == "1.0.1"
    kept = manifests(run)
    chunks = run.json("store", "stats")["chunks"]
    # soft delete 1.0.1: out of the list, in list-soft-deleted, not latest
    r = run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.1")
    assert r.exit_code == 0 and r.stdout == "", r.stderr
    assert names(run) == ["1.0.0"]
    [sd] = soft_deleted(run)
    assert sd["name"] == "1.0.1" and sd["location"] == "local"
    assert sd["type"] == "Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions"
    assert sd["id"] == f"{G_ID}/softDeletedArtifactTypes/Images/artifacts/d/versions/1.0.1"
    p = sd["properties"]
    assert p["resourceArmId"] == f"{VID}/1.0.1" and p["softDeletedArtifactType"] == "Images"
    t0 = datetime.fromisoformat(p["softDeletedTime"])
    assert abs((datetime.now(UTC) - t0).total_seconds()) < 120
    assert datetime.fromisoformat(p["consumptionEndTime"]) == t0 + timedelta(days=7)
    assert datetime.fromisoformat(p["hardDeletionTargetTime"]) == t0 + timedelta(days=14)
    assert latest_name(run, "latest1") == "1.0.0"
    # its data stays: manifests, chunks, a gc frees nothing, verify is clean
    assert manifests(run) == kept
    gc = run.json("store", "gc")
    assert gc["removedChunks"] == 0 and gc["softDeletedVersionsPurged"] == []
    assert run.json("store", "stats")["chunks"] == chunks
    verify_clean(run)
    # usable by explicit version: a disk from it has the source's bytes
    assert disk_from(run, "explicit", "g/d/1.0.1").exit_code == 0
    with open(run.tmp / "explicit.raw", "rb") as a, open(run.src[2], "rb") as b:
        assert a.read() == b.read()
    shown = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.1")
    assert shown["properties"]["localStorage"]["softDeleted"]["softDeletedTime"] == \
        p["softDeletedTime"]
    assert "softDeleted" not in run.json("sig", "image-version", "show", "-r", "g", "-i", "d",
                                         "-e", "1.0.0")["properties"]["localStorage"]
    # `wait --deleted` sees it deleted
    assert run("sig", "image-version", "wait", "-r", "g", "-i", "d", "-e", "1.0.1", "--deleted",
               "--timeout", "5").exit_code == 0
    # deleting it again changes nothing
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.1").exit_code == 0
    assert soft_deleted(run)[0]["properties"]["softDeletedTime"] == p["softDeletedTime"]
    # restore: another region is refused, the home region works; latest again
    fails(run("sig", "image-version", "undelete", "-r", "g", "-i", "d", "-e", "1.0.1",
              "-l", "westus"), INVALID,
          "--location: 'westus' is not the home region 'local' of image version 'g/d/1.0.1'")
    assert soft_deleted(run) != []
    v = run.json("sig", "image-version", "undelete", "-r", "g", "-i", "d", "-e", "1.0.1",
                 "-l", "LOCAL")
    assert v["name"] == "1.0.1" and "softDeleted" not in v["properties"]["localStorage"]
    assert names(run) == ["1.0.0", "1.0.1"] and soft_deleted(run) == []
    assert latest_name(run, "latest2") == "1.0.1"

    # delete again, then move the clock: in the grace period (+8 d) it is listed, not usable
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.1").exit_code == 0
    monkeypatch.setenv("IMAGESTORE_NOW", at(8))
    assert [x["name"] for x in soft_deleted(run)] == ["1.0.1"]
    fails(disk_from(run, "late", "g/d/1.0.1"), CONFLICT,
          "image version 'g/d/1.0.1' was soft-deleted at", "restore it")
    assert run.json("store", "gc")["softDeletedVersionsPurged"] == []
    # past the hard-deletion time (+15 d): gone to every read; gc purges it and frees its chunks
    monkeypatch.setenv("IMAGESTORE_NOW", at(15))
    assert soft_deleted(run) == []
    fails(run("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.1"), NOT_FOUND,
          "image version 'g/d/1.0.1' not found")
    fails(run("sig", "image-version", "undelete", "-r", "g", "-i", "d", "-e", "1.0.1"),
          NOT_FOUND)
    dry = run.json("store", "gc", "--dry-run")
    assert dry["softDeletedVersionsPurged"] == [f"{VID}/1.0.1"]
    assert run.json("store", "stats")["chunks"] == chunks  # a dry run changed nothing
    gc = run.json("store", "gc")
    assert gc["softDeletedVersionsPurged"] == [f"{VID}/1.0.1"] and gc["removedChunks"] > 0
    # the dry run counted the chunks the purge frees (it used to say 0)
    assert dry["wouldRemoveChunks"] == gc["removedChunks"]
    assert dry["wouldFreeBytes"] == gc["freedBytes"]
    assert run.json("store", "stats")["chunks"] < chunks
    assert len(manifests(run)) == len(kept) - 1
    verify_clean(run)
    assert names(run) == ["1.0.0"]
    # the disk made from it keeps its bytes; the name is free again
    with open(run.tmp / "explicit.raw", "rb") as a, open(run.src[2], "rb") as b:
        assert a.read() == b.read()
    assert run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.1",
               "--os-vhd-uri", run.src[2], "-o", "none").exit_code == 0


def test_expired_versions_are_purged_by_the_next_write_to_their_definition(env, monkeypatch):
    run = env
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.1").exit_code == 0
    fails(run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.1",
              "--os-vhd-uri", run.src[2]), CONFLICT, "already exists (soft-deleted")
    monkeypatch.setenv("IMAGESTORE_NOW", at(14.01))
    v = run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.1",
                 "--os-vhd-uri", run.src[1])
    assert "softDeleted" not in v["properties"]["localStorage"]
    assert names(run) == ["1.0.0", "1.0.1"]


def test_definition_holding_soft_deleted_versions_case_24(env):
    run = env
    for v in ("1.0.0", "1.0.1"):
        assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", v).exit_code == 0
    assert names(run) == []
    fails(run("sig", "image-definition", "delete", "-r", "g", "-i", "d"), CONFLICT,
          "image definition 'g/d' holds 2 soft-deleted image version(s): 1.0.0, 1.0.1; purge "
          "them (sig image-version purge) or disable soft delete on gallery 'g' first")
    fails(run("sig", "delete", "-r", "g"), CONFLICT, "still contains 1 image definition")
    assert len(soft_deleted(run)) == 2  # nothing changed
    # purge one now: its chunks become garbage
    chunks = run.json("store", "stats")["chunks"]
    assert run("sig", "image-version", "purge", "-r", "g", "-i", "d", "-e", "1.0.1").exit_code == 0
    assert [x["name"] for x in soft_deleted(run)] == ["1.0.0"]
    assert run.json("store", "gc")["removedChunks"] > 0
    assert run.json("store", "stats")["chunks"] < chunks
    verify_clean(run)
    fails(run("sig", "image-definition", "delete", "-r", "g", "-i", "d"), CONFLICT,
          "holds 1 soft-deleted image version(s): 1.0.0")
    # with soft delete off, the definition goes and takes its soft-deleted versions along
    run.json("sig", "update", "-r", "g", "--soft-delete", "false")
    assert [x["name"] for x in soft_deleted(run)] == ["1.0.0"]  # still restorable
    assert run("sig", "image-definition", "delete", "-r", "g", "-i", "d").exit_code == 0
    assert run("sig", "delete", "-r", "g").exit_code == 0
    assert run.json("store", "gc")["removedChunks"] > 0
    assert run.json("store", "stats")["chunks"] == 0
    verify_clean(run)


def test_refused_definition_delete_purges_nothing(env):
    run = env
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.1").exit_code == 0
    run.json("sig", "update", "-r", "g", "--soft-delete", "false")
    fails(run("sig", "image-definition", "delete", "-r", "g", "-i", "d"), CONFLICT,
          "still has 1 image version(s): 1.0.0")
    assert [x["name"] for x in soft_deleted(run)] == ["1.0.1"]
    # soft delete off: a delete is a hard delete again
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0").exit_code == 0
    assert names(run) == [] and [x["name"] for x in soft_deleted(run)] == ["1.0.1"]


def test_bad_input(env, monkeypatch):
    run = env
    v = ("-r", "g", "-i", "d", "-e")
    fails(run("sig", "image-version", "undelete", *v, "1.0.0"), CONFLICT,
          "image version 'g/d/1.0.0' is not soft-deleted")
    fails(run("sig", "image-version", "purge", *v, "1.0.0"), CONFLICT, "is not soft-deleted")
    fails(run("sig", "image-version", "undelete", *v, "9.9.9"), NOT_FOUND,
          "image version 'g/d/9.9.9' not found")
    fails(run("sig", "image-version", "undelete", *v, "1.0"), INVALID, "--gallery-image-version")
    fails(run("sig", "image-version", "undelete", "-r", "g", "-i", "nope", "-e", "1.0.0"),
          NOT_FOUND, "image definition 'g/nope' not found")
    fails(run("sig", "image-version", "list-soft-deleted", "-r", "g", "-i", "nope"), NOT_FOUND)
    fails(run("sig", "image-version", "list-soft-deleted", "-r", "../x", "-i", "d"), NOT_FOUND)
    assert run("sig", "image-version", "delete", *v, "1.0.1").exit_code == 0
    before = run.json("sig", "image-version", "show", *v, "1.0.1")
    fails(run("sig", "image-version", "update", *v, "1.0.1", "--set", "tags.a=b"), CONFLICT,
          "image version 'g/d/1.0.1' is soft-deleted; restore it")
    assert run.json("sig", "image-version", "show", *v, "1.0.1") == before
    monkeypatch.setenv("IMAGESTORE_NOW", "next tuesday")
    fails(run("sig", "image-version", "list-soft-deleted", "-r", "g", "-i", "d"), INVALID,
          "IMAGESTORE_NOW: 'next tuesday' is not an ISO-8601 time")
    monkeypatch.delenv("IMAGESTORE_NOW")
    assert [x["name"] for x in soft_deleted(run)] == ["1.0.1"]


def test_enable_needs_one_location(run, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "west"))
    run.json("sig", "create", "-r", "w")
    run.json("sig", "image-definition", "create", "-r", "w", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    src = make_raw(tmp_path / "w.raw", fill=9)
    assert run("sig", "image-version", "create", "-r", "w", "-i", "d", "-e", "1.0.0",
               "--os-vhd-uri", src, "-l", "west", "-o", "none").exit_code == 0
    fails(run("sig", "update", "-r", "w", "--soft-delete", "true"), CONFLICT,
          "--soft-delete: image version 'w/d/1.0.0' is in 'west', not in the gallery's "
          "location 'local'")
    assert "softDeletePolicy" not in run.json("sig", "show", "-r", "w")["properties"]
    assert run("sig", "image-version", "delete", "-r", "w", "-i", "d", "-e", "1.0.0").exit_code == 0
    g = run.json("sig", "update", "-r", "w", "--soft-delete", "true")
    assert g["properties"]["softDeletePolicy"]["isSoftDeleteEnabled"] is True


def test_consumer_views_of_a_community_gallery(run, tmp_path, monkeypatch):
    run.json("sig", "create", "-r", "comm", "--permissions", "Community", "--publisher-uri",
             "https://contoso.example", "--publisher-email", "i@contoso.example", "--eula",
             "https://contoso.example/eula", "--public-name-prefix", "Contoso",
             "--soft-delete", "true")
    run.json("sig", "share", "enable-community", "-r", "comm")
    public = run.json("sig", "show", "-r", "comm")["properties"]["sharingProfile"][
        "communityGalleryInfo"]["publicNames"][0]
    run.json("sig", "image-definition", "create", "-r", "comm", "-i", "d", "-p", "P", "-f",
             "O", "-s", "S", "--os-type", "Linux")
    for v, fill in (("1.0.0", 5), ("1.0.1", 6)):
        assert run("sig", "image-version", "create", "-r", "comm", "-i", "d", "-e", v,
                   "--os-vhd-uri", make_raw(tmp_path / f"{v}.raw", fill=fill),
                   "-o", "none").exit_code == 0
    assert run("sig", "image-version", "delete", "-r", "comm", "-i", "d", "-e",
               "1.0.1").exit_code == 0
    listed = run.json("sig", "image-version", "list-community", "-l", "local",
                      "--public-gallery-name", public, "-i", "d")
    assert [x["name"] for x in listed] == ["1.0.0"]
    base = f"/CommunityGalleries/{public}/Images/d/Versions"

    def disk(name: str, ref: str):
        return run("disk", "create", "-n", name, "--gallery-image-reference", ref,
                   "--path", str(tmp_path / f"{name}.raw"), "-o", "json")

    r = disk("latest", f"{base}/latest")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["properties"]["creationData"]["imageReference"] == {
        "communityGalleryImageId": f"{base}/1.0.0"}
    assert disk("named", f"{base}/1.0.1").exit_code == 0
    monkeypatch.setenv("IMAGESTORE_NOW", at(8))
    fails(disk("late", f"{base}/1.0.1"), CONFLICT, "was soft-deleted at")
    monkeypatch.setenv("IMAGESTORE_NOW", at(15))
    fails(disk("gone", f"{base}/1.0.1"), NOT_FOUND)
