"""Subscriptions and resource groups as namespaces (issue 15), through the CLI: a second
tenant and subscription, resource groups in it, a gallery, definition, version and disk in
it whose ids carry it, lists per subscription, names unique in the store, refusals with their
exit codes, and ``--as`` scopes naming the group's subscription."""

from __future__ import annotations

import json

import pytest

from imagestore.gallery.ids import SUBSCRIPTION as LOCAL
from imagestore.gallery.repository import Repository
from tests.helpers import gallery_db

INVALID, NOT_FOUND, CONFLICT, DENIED = 3, 4, 5, 14
S2 = "22222222-aaaa-4bbb-8ccc-222222222222"
MiB = 1 << 20


def make_raw(path, size: int = 2 * MiB) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(MiB)
        f.write(b"\x5a" * 300000)
    return str(path)


@pytest.fixture
def two(run, tmp_path):
    """Tenant T2 with subscription S2 and resource group rg2 in it; rg1 in the local one."""
    run.t2 = run.json("ad", "tenant", "create", "--display-name", "T2")["tenantId"]
    acct = run.json("account", "create", "--tenant", run.t2, "--display-name", "dev",
                    "--subscription-id", S2)
    assert (acct["id"], acct["subscriptionId"], acct["tenantId"], acct["displayName"],
            acct["state"]) == (S2, S2, run.t2, "dev", "Enabled")
    g = run.json("group", "create", "-n", "rg2", "-l", "local", "--subscription", S2,
                 "--tags", "team=a")
    assert g["id"] == f"/subscriptions/{S2}/resourceGroups/rg2" and g["tags"] == {"team": "a"}
    run.json("group", "create", "-n", "rg1", "-l", "local")
    run.src = make_raw(tmp_path / "os.raw")
    return run


def publish(run, rg: str) -> dict:
    run.json("sig", "create", "-g", rg, "-r", "g")
    run.json("sig", "image-definition", "create", "-g", rg, "-r", "g", "-i", "d", "-p", "P",
             "-f", "O", "-s", "S", "--os-type", "Linux")
    return run.json("sig", "image-version", "create", "-g", rg, "-r", "g", "-i", "d", "-e",
                    "1.0.0", "--os-vhd-uri", run.src)


def test_resources_in_a_second_subscription_carry_it(two):
    run = two
    v = publish(run, "rg2")
    base = f"/subscriptions/{S2}/resourceGroups/rg2/providers/Microsoft.Compute"
    assert v["id"] == f"{base}/galleries/g/images/d/versions/1.0.0"
    assert run.json("sig", "show", "-g", "rg2", "-r", "g")["id"] == f"{base}/galleries/g"
    assert run.json("sig", "show", "-g", "rg2", "-r", "g")["properties"]["identifier"][
        "uniqueName"] == f"{S2}-G"
    assert run.json("sig", "image-definition", "show", "-g", "rg2", "-r", "g", "-i",
                    "d")["id"] == f"{base}/galleries/g/images/d"
    # a disk from the version's full id (S2 named in it), in S2
    d = run.json("disk", "create", "-g", "rg2", "-n", "disk2", "--gallery-image-reference",
                 v["id"])
    assert d["id"] == f"{base}/disks/disk2"
    assert d["properties"]["creationData"]["galleryImageReference"]["id"] == v["id"]
    # the same in the local subscription's group: local ids
    publish(run, "rg1")
    assert run.json("sig", "show", "-g", "rg1", "-r", "g")["id"].startswith(
        f"/subscriptions/{LOCAL}/resourceGroups/rg1/")
    # --ids with S2 finds the resource; with the wrong or an unknown subscription it does not
    assert run.json("sig", "show", "--ids", f"{base}/galleries/g")["name"] == "g"
    wrong = f"/subscriptions/{LOCAL}/resourceGroups/rg2/providers/Microsoft.Compute/galleries/g"
    r = run("sig", "show", "--ids", wrong)
    assert r.exit_code == NOT_FOUND and "resource group 'rg2' not found in subscription" in r.stderr
    unknown = "/subscriptions/99999999-9999-9999-9999-999999999999" + wrong.split(LOCAL, 1)[1]
    r = run("sig", "show", "--ids", unknown)
    assert r.exit_code == NOT_FOUND and "subscription '99999999-" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    # a source id naming the wrong subscription is refused, nothing made
    bad_ref = v["id"].replace(S2, LOCAL)
    r = run("disk", "create", "-g", "rg1", "-n", "nope", "--gallery-image-reference", bad_ref)
    assert r.exit_code == NOT_FOUND, (r.stdout, r.stderr)
    assert run("disk", "show", "-g", "rg1", "-n", "nope").exit_code == NOT_FOUND


def test_group_lists_are_per_subscription(two):
    run = two
    run.json("sig", "create", "-r", "implicit")  # the 'default' group, implicit, local
    local = [g["name"] for g in run.json("group", "list")]
    assert local == ["default", "rg1"]
    assert [g["name"] for g in run.json("group", "list", "--subscription", S2)] == ["rg2"]
    assert run.json("group", "show", "-n", "RG2")["id"] == f"/subscriptions/{S2}/resourceGroups/rg2"
    assert run.json("group", "exists", "-n", "rg2") is True
    assert run.json("group", "exists", "-n", "rg2", "--subscription", LOCAL) is False
    r = run("group", "show", "-n", "rg2", "--subscription", LOCAL)
    assert r.exit_code == NOT_FOUND and "Resource group 'rg2' could not be found." in r.stderr
    shown = run.json("account", "show", "--subscription", S2)
    assert (shown["id"], shown["tenantId"], shown["name"]) == (S2, run.t2, "dev")
    assert {a["id"] for a in run.json("account", "list")} == {LOCAL, S2}


def test_names_are_unique_in_the_store_and_refusals_change_nothing(two, store_dir):
    run = two
    before = [g["name"] for g in run.json("group", "list")]
    for args in (["-n", "rg2"], ["-n", "RG2", "--subscription", LOCAL],
                 ["-n", "rg1", "--subscription", S2]):
        r = run("group", "create", *args)
        assert r.exit_code == CONFLICT, (args, r.stdout, r.stderr)
        assert "the name is taken in another subscription" in r.stderr
    # an implicit local group holding resources cannot be claimed by S2
    run.json("sig", "create", "-g", "used", "-r", "g")
    r = run("group", "create", "-n", "used", "--subscription", S2)
    assert r.exit_code == CONFLICT and "local subscription's resources" in r.stderr
    for bad, code in ((["-n", "bad/name"], INVALID), (["-n", "x."], INVALID),
                      (["-n", "ok", "--subscription", "nope"], NOT_FOUND),
                      (["-n", "ok", "-l", "\x01"], INVALID)):
        r = run("group", "create", *bad)
        assert r.exit_code == code, (bad, r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr
    assert [g["name"] for g in run.json("group", "list")] == sorted(before + ["used"],
                                                                   key=str.lower)
    # delete: a non-empty group is refused, an empty one goes, an unknown one is not found
    publish(run, "rg2")
    r = run("group", "delete", "-n", "rg2", "--yes")
    assert r.exit_code == CONFLICT and "is not empty" in r.stderr
    assert run("group", "delete", "-n", "rg1", "--yes").exit_code == 0
    assert run("group", "delete", "-n", "rg1", "--yes").exit_code == NOT_FOUND
    with gallery_db(store_dir) as con:
        repo = Repository.on(con)
        assert repo.subscription_of("rg2") == S2 and repo.subscription_of("rg1") == LOCAL
        assert repo.subscription_of("RG2") == S2  # names compare case-insensitively
        assert repo.find_resource_group("rg1") is None


def test_as_scopes_name_the_groups_subscription(two):
    run = two
    run.json("ad", "user", "create", "--user-principal-name", "carl@t2.example",
             "--display-name", "Carl", "--tenant", run.t2)
    run.json("role", "assignment", "create", "--assignee", "carl@t2.example", "--role",
             "Contributor", "--scope", f"/subscriptions/{S2}")
    ok = run("--as", "carl@t2.example", "sig", "create", "-g", "rg2", "-r", "gc")
    assert ok.exit_code == 0, ok.stderr
    # in the local subscription Carl has nothing
    r = run("--as", "carl@t2.example", "sig", "create", "-g", "rg1", "-r", "gc")
    assert r.exit_code == DENIED
    assert f"over scope '/subscriptions/{LOCAL}/resourceGroups/rg1/providers/" in r.stderr
    # a group in S2 (Contributor may), none in the local subscription
    assert run("--as", "carl@t2.example", "group", "create", "-n", "rg3",
               "--subscription", S2).exit_code == 0
    r = run("--as", "carl@t2.example", "group", "create", "-n", "rg4")
    assert r.exit_code == DENIED and "resourceGroups/write" in r.stderr
    # the new subscription: no role assignments for anyone until assigned
    assert run.json("role", "assignment", "list", "--scope", f"/subscriptions/{S2}") != []
    assert all(a["principalName"] == "carl@t2.example" if "principalName" in a else True
               for a in run.json("role", "assignment", "list", "--scope",
                                 f"/subscriptions/{S2}"))


def test_a_second_tenants_captures_run_in_its_dedup_domain(two, store_dir):
    from imagestore.gallery import GalleryService
    from imagestore.home import Home
    from imagestore.store import domains

    run = two
    svc = GalleryService(Home.open(store_dir))
    try:
        assert svc.placement.subscription_of("RG2") == S2
        assert svc.placement.capture_domain("rg1") == domains.HOME_DOMAIN
        assert svc.placement.capture_domain("default") == domains.HOME_DOMAIN
        assert svc.placement.capture_domain("rg2").tag >= 1
    finally:
        svc.close()
    # versions captured in both groups carry their own subscription
    v1 = publish(run, "rg1")
    publish(run, "rg2")
    assert run.json("sig", "image-version", "show", "-g", "rg2", "-r", "g", "-i", "d", "-e",
                    "1.0.0")["id"].startswith(f"/subscriptions/{S2}/")
    assert v1["id"].startswith(f"/subscriptions/{LOCAL}/")


def test_a_consumer_in_a_second_subscription_uses_an_image_shared_with_it(two):
    """The issue's case: an image shared out of the local subscription with S2; a T2 user
    with Contributor on S2 makes a disk in S2 from it; the share is per subscription, so
    the same reference in the local subscription's group is not shared."""
    run = two
    run.json("sig", "create", "-g", "rg1", "-r", "pub", "--permissions", "Groups")
    run.json("sig", "image-definition", "create", "-g", "rg1", "-r", "pub", "-i", "d", "-p",
             "P", "-f", "O", "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-g", "rg1", "-r", "pub", "-i", "d", "-e",
             "1.0.0", "--os-vhd-uri", run.src)
    run.json("sig", "share", "add", "-g", "rg1", "-r", "pub", "--subscription-ids", S2)
    run.json("ad", "user", "create", "--user-principal-name", "cora@t2.example",
             "--display-name", "Cora", "--tenant", run.t2)
    run.json("role", "assignment", "create", "--assignee", "cora@t2.example", "--role",
             "Contributor", "--scope", f"/subscriptions/{S2}")
    ref = f"/SharedGalleries/{LOCAL}-PUB/Images/d/Versions/latest"
    r = run("--as", "cora@t2.example", "disk", "create", "-g", "rg2", "-n", "cd1",
            "--gallery-image-reference", ref)
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["id"] == f"/subscriptions/{S2}/resourceGroups/rg2/providers/Microsoft.Compute/disks/cd1"
    assert d["properties"]["creationData"]["galleryImageReference"] == {
        "sharedGalleryImageId": f"/SharedGalleries/{LOCAL}-PUB/Images/d/Versions/1.0.0"}
    # the share names S2 only: in the local subscription's group it is not shared
    r = run("disk", "create", "-g", "rg1", "-n", "cd2", "--gallery-image-reference", ref)
    assert r.exit_code == NOT_FOUND and "not shared with subscription" in r.stderr, r.stderr
    # and Cora has no rights in the local subscription
    r = run("--as", "cora@t2.example", "disk", "create", "-g", "rg1", "-n", "cd3",
            "--gallery-image-reference", ref)
    assert r.exit_code == DENIED, r.stderr
