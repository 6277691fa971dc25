"""az's forms through the CLI: --set (flattened and full paths), --add/--remove on tags and
target regions, --force-string, unknown paths, --ids, and the safety flags on update (a version
whose deletion is blocked becomes deletable once the flag is cleared)."""

from __future__ import annotations

import json

import pytest

from imagestore.gallery.ids import SUBSCRIPTION
from tests.helpers import fails, make_random, store_tree_snapshot

USAGE, INVALID, NOT_FOUND, CONFLICT = 2, 3, 4, 5
PREFIX = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/default/providers/Microsoft.Compute"
GID = f"{PREFIX}/galleries/g"
VID = f"{GID}/images/d/versions"
UPD = ("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0")
SHOW = ("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")


@pytest.fixture
def env(run, tmp_path):
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.src = make_random(str(tmp_path / "os.raw"), 1, seed=11)
    run.tmp = tmp_path
    return run


def ver(run, v, *extra):
    return run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", v,
                    "--os-vhd-uri", run.src, *extra)


def regions(doc) -> list[tuple[str, int]]:
    return [(t["name"], t["regionalReplicaCount"])
            for t in doc["properties"]["publishingProfile"]["targetRegions"]]


def test_set_flattened_and_full_paths(env):
    run = env
    g = run.json("sig", "update", "-r", "g", "--set", "description=x")  # az's own form
    assert g["properties"]["description"] == "x"
    g = run.json("sig", "update", "-r", "g", "--set", "properties.description=y", "tags.team=infra")
    assert g["properties"]["description"] == "y" and g["tags"] == {"team": "infra"}
    i = run.json("sig", "image-definition", "update", "-r", "g", "-i", "d", "--set",
                 "recommended.vCPUs.max=16", "properties.recommended.memory.min=2",
                 "releaseNoteUri=https://example.com/notes")
    assert i["properties"]["recommended"] == {"vCPUs": {"max": 16}, "memory": {"min": 2}}
    assert i["properties"]["releaseNoteUri"] == "https://example.com/notes"
    ver(run, "1.0.0")
    v = run.json(*UPD, "--set", "publishingProfile.excludeFromLatest=true")
    assert v["properties"]["publishingProfile"]["excludeFromLatest"] is True
    v = run.json(*UPD, "--set", "properties.publishingProfile.excludeFromLatest=false",
                 "publishingProfile.targetRegions[0].regionalReplicaCount=2")
    assert v["properties"]["publishingProfile"]["excludeFromLatest"] is False
    assert regions(v) == [("local", 2)]
    assert run.json(*SHOW) == v


def test_force_string(env):
    run = env
    fails(run("sig", "update", "-r", "g", "--set", "description=123"), INVALID,
          "properties.description: must be a string")
    g = run.json("sig", "update", "-r", "g", "--set", "description=123", "--force-string")
    assert g["properties"]["description"] == "123"


def test_tags_set_add_remove(env):
    run = env
    g = run.json("sig", "update", "-r", "g", "--set", "tags.a=1", "tags.B=two")
    assert g["tags"] == {"a": "1", "B": "two"}
    g = run.json("sig", "update", "-r", "g", "--remove", "tags.a")
    assert g["tags"] == {"B": "two"}
    # operations apply in command-line order
    g = run.json("sig", "update", "-r", "g", "--set", "tags.c=3", "--remove", "tags.c",
                 "--set", "tags.d=4")
    assert g["tags"] == {"B": "two", "d": "4"}
    fails(run("sig", "update", "-r", "g", "--remove", "tags.zz"), INVALID,
          "--remove: 'tags.zz' does not exist")
    fails(run("sig", "update", "-r", "g", "--add", "tags", "x=y"), INVALID,
          "--add: 'tags' is not a list")


def test_add_and_remove_target_regions(env):
    run = env
    run.json("region", "create", "west", "--path", str(run.tmp / "west"))
    ver(run, "1.0.0")
    v = run.json(*UPD, "--add", "publishingProfile.targetRegions", "name=west",
                 "regionalReplicaCount=2")
    assert regions(v) == [("local", 1), ("west", 2)]
    st = run.json(*SHOW, "--expand", "ReplicationStatus")["properties"]["replicationStatus"]
    assert {s["region"]: s["state"] for s in st["summary"]} == {"local": "Completed",
                                                                "west": "Completed"}
    # removing a region needs allowDeletionOfReplicatedLocations, as in Azure
    fails(run(*UPD, "--remove", "publishingProfile.targetRegions", "1"), CONFLICT,
          "removing region(s) west is not allowed")
    v = run.json(*UPD, "--allow-replicated-location-deletion", "true",
                 "--remove", "publishingProfile.targetRegions", "1")
    assert regions(v) == [("local", 1)]
    assert v["properties"]["safetyProfile"]["allowDeletionOfReplicatedLocations"] is True
    # the JSON form of --add, and a [key=value] index
    v = run.json(*UPD, "--add", "publishingProfile.targetRegions",
                 '{"name": "west", "regionalReplicaCount": 1}')
    assert regions(v) == [("local", 1), ("west", 1)]
    v = run.json(*UPD, "--set", "publishingProfile.targetRegions[name=west].regionalReplicaCount=3")
    assert regions(v) == [("local", 1), ("west", 3)]
    v = run.json(*UPD, "--remove", "publishingProfile.targetRegions[name=west]")
    assert regions(v) == [("local", 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "properties.foo=1"), "error: --set: unknown property 'properties.foo'"),
        (("--set", "foo=1"), "error: --set: unknown property 'foo'"),
        (("--set", "publishingProfile.targetRegions[0].nme=x"),
         "error: --set: unknown property 'properties.publishingProfile.targetRegions[0].nme'"),
        (("--add", "publishingProfile.targetRegions", "nme=west"),
         "error: --add: unknown property 'properties.publishingProfile.targetRegions[1].nme'"),
        (("--remove", "publishingProfile.bogus"),
         "error: --remove: unknown property 'properties.publishingProfile.bogus'"),
        (("--set", "publishingProfile.targetRegions[4].name=x"),
         "error: --set: index [4] out of range in 'properties.publishingProfile.targetRegions' "
         "(1 item(s))"),
        (("--set", "publishingProfile.excludeFromLatest"),
         "error: --set: 'publishingProfile.excludeFromLatest' is not PATH=VALUE"),
    ],
)
def test_unknown_and_malformed_paths(env, args, message):
    run = env
    ver(run, "1.0.0")
    before = store_tree_snapshot(run.store)
    r = run(*UPD, *args)
    fails(r, INVALID)
    assert r.stderr.strip() == message
    assert store_tree_snapshot(run.store) == before


@pytest.mark.parametrize(
    ("expr", "name"),
    [
        ("publishingProfile.replicationMode=Shallow", "properties.publishingProfile.replicationMode"),
        ("storageProfile.osDiskImage.hostCaching=ReadOnly",
         "properties.storageProfile.osDiskImage.hostCaching"),
        ("safetyProfile.reportedForPolicyViolation=true",
         "properties.safetyProfile.reportedForPolicyViolation"),
        ("provisioningState=Failed", "properties.provisioningState"),
    ],
)
def test_flattened_immutable_paths_are_refused_by_their_full_name(env, expr, name):
    run = env
    ver(run, "1.0.0")
    before = run.json(*SHOW)
    fails(run(*UPD, "--set", expr), CONFLICT, f"Changing property '{name}' is not allowed")
    assert run.json(*SHOW) == before


def test_every_printed_path_is_a_known_property(env):
    """Each leaf of the JSON we print can be named in --set: refused only as immutable (5)
    or for its value (3 with the field's own message), never as an unknown property."""
    run = env
    ver(run, "1.0.0")
    doc = run.json(*SHOW)

    def leaves(d, path=""):
        if isinstance(d, dict) and d and path != "tags":
            for k, v in d.items():
                yield from leaves(v, f"{path}.{k}" if path else k)
        elif isinstance(d, list) and d:
            for i, v in enumerate(d):
                yield from leaves(v, f"{path}[{i}]")
        else:
            yield path, d

    paths = list(leaves(doc))
    assert len(paths) > 25
    for path, value in paths:
        r = run(*UPD, "--set", f"{path}={json.dumps(value)}")  # the same value: no change
        assert r.exit_code == 0, (path, r.stderr)
    # the computed replication status is known, but never part of an update
    fails(run(*UPD, "--set", "replicationStatus.aggregatedState=Completed"), CONFLICT,
          "Changing property 'properties.replicationStatus' is not allowed")


def test_ids(env):
    run = env
    ver(run, "1.0.0")
    ver(run, "1.0.1")
    assert run.json("sig", "show", "--ids", GID)["name"] == "g"
    assert run.json("sig", "show", "--ids", "g")["name"] == "g"  # short form
    assert run.json("sig", "image-definition", "show", "--ids", f"{GID}/images/d")["name"] == "d"
    assert run.json("sig", "image-definition", "show", "--ids", "g/d")["name"] == "d"
    one = run.json("sig", "image-version", "show", "--ids", f"{VID}/1.0.0")
    assert one == run.json(*SHOW)
    both = run.json("sig", "image-version", "show", "--ids", f"{VID}/1.0.0", "g/d/1.0.1")
    assert [v["name"] for v in both] == ["1.0.0", "1.0.1"]  # several ids: a list, as az
    # newline-separated ids, as `--query [].id -o tsv` prints them
    ids = run("sig", "image-version", "list", "-r", "g", "-i", "d", "--query", "[].id", "-o", "tsv")
    assert len(run.json("sig", "image-version", "show", "--ids", ids.stdout)) == 2
    # a command's JSON output piped in, as az takes it
    listed = run("sig", "image-version", "list", "-r", "g", "-i", "d")
    assert [v["name"] for v in run.json("sig", "image-version", "show", "--ids",
                                        listed.stdout)] == ["1.0.0", "1.0.1"]
    fails(run("sig", "image-version", "show", "--ids", '[{"name": "1.0.0"}]'), INVALID,
          "--ids: JSON input must hold objects with an 'id'")
    u = run.json("sig", "image-version", "update", "--ids", f"{VID}/1.0.0", "g/d/1.0.1",
                 "--set", "tags.k=v")
    assert [v["tags"] for v in u] == [{"k": "v"}, {"k": "v"}]
    u = run.json("sig", "update", "--ids", "g", "--set", "description=by id")
    assert u["properties"]["description"] == "by id"
    r = run("sig", "image-version", "wait", "--ids", f"{VID}/1.0.0", "--created")
    assert r.exit_code == 0 and r.stdout == ""
    d = run.json("disk", "create", "-n", "vm1", "--gallery-image-reference", "g/d/1.0.0")
    assert run.json("disk", "show", "--ids", d["id"]) == run.json("disk", "show", "--ids", "vm1")
    assert run("disk", "delete", "--ids", d["id"]).exit_code == 0
    fails(run("disk", "show", "-n", "vm1"), NOT_FOUND)
    r = run("sig", "image-version", "delete", "--ids", f"{VID}/1.0.0", "g/d/1.0.1")
    assert r.exit_code == 0 and r.stdout == ""
    assert run.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []
    assert run("sig", "image-definition", "delete", "--ids", "g/d").exit_code == 0
    assert run("sig", "delete", "--ids", GID).exit_code == 0
    assert run.json("sig", "list") == []


def test_ids_usage_and_bad_ids(env):
    run = env
    r = run("sig", "show", "--ids", "g", "-r", "g")
    assert r.exit_code == USAGE and "--ids cannot be combined with -r/--gallery-name" in r.stderr
    r = run("sig", "image-version", "show", "--ids", "g/d/1.0.0", "-g", "default")
    assert r.exit_code == USAGE and "-g/--resource-group" in r.stderr
    r = run("sig", "image-version", "show", "-r", "g", "-i", "d")
    assert r.exit_code == USAGE and "Missing option '-e/--gallery-image-version' (or --ids)" in r.stderr
    fails(run("sig", "show", "--ids", f"{GID}/images/d"), INVALID,
          f"--ids: '{GID}/images/d' is not a gallery id")
    fails(run("sig", "image-version", "show", "--ids", "g/d"), INVALID,
          "--ids: 'g/d' is not an image version id")
    fails(run("disk", "show", "--ids", f"{GID}/images/d"), INVALID,
          f"--ids: '{GID}/images/d' is not a disk id (/subscriptions/S/resourceGroups/RG/"
          "providers/Microsoft.Compute/disks/N or NAME)")
    fails(run("sig", "image-definition", "show", "--ids", "/subscriptions/x/resourceGroups/default/"
              "providers/Other.RP/galleries/g/images/d"), INVALID, "provider 'Other.RP'")
    fails(run("sig", "show", "--ids", GID.replace(SUBSCRIPTION, "1" * 8)), NOT_FOUND,
          "--ids: subscription '11111111' not found")
    fails(run("sig", "show", "--ids", f"{PREFIX}/galleries/nope"), NOT_FOUND,
          "gallery 'nope' not found")


def test_blocked_version_becomes_deletable_once_the_flag_is_cleared(env):
    run = env
    ver(run, "1.0.0", "--end-of-life-date", "2030-06-30", "--block-deletion-before-end-of-life")
    delete = ("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0")
    fails(run(*delete), CONFLICT, "deletion is blocked until its end of life date")
    v = run.json(*UPD, "--block-deletion-before-end-of-life", "false")
    assert v["properties"]["safetyProfile"]["blockDeletionBeforeEndOfLife"] is False
    assert v["properties"]["publishingProfile"]["endOfLifeDate"].startswith("2030-06-30")
    assert run(*delete).exit_code == 0
    fails(run(*SHOW), NOT_FOUND)


def test_safety_flags_on_update(env):
    run = env
    ver(run, "1.0.0")
    fails(run(*UPD, "--block-deletion-before-end-of-life"), INVALID,
          "--block-deletion-before-end-of-life: needs properties.publishingProfile.endOfLifeDate")
    fails(run(*UPD, "--block-deletion-before-end-of-life", "sometimes"), INVALID,
          "--block-deletion-before-end-of-life: 'sometimes' is not true or false")
    v = run.json(*UPD, "--end-of-life-date", "2030-01-01", "--block-deletion-before-end-of-life")
    assert v["properties"]["safetyProfile"]["blockDeletionBeforeEndOfLife"] is True
    fails(run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0"), CONFLICT)
    # the generic path reaches the same field
    v = run.json(*UPD, "--set", "safetyProfile.blockDeletionBeforeEndOfLife=false",
                 "safetyProfile.allowDeletionOfReplicatedLocations=true")
    assert v["properties"]["safetyProfile"] == {
        "allowDeletionOfReplicatedLocations": True, "blockDeletionBeforeEndOfLife": False,
        "reportedForPolicyViolation": False}
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0").exit_code == 0
