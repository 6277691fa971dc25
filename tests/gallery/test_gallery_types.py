"""What each gallery type may hold (issue 15, the spec's SecurityType table and the shared
gallery limits), the sharing profile's life (set at create, reset for good), and disks made
by a consumer from a shared or community image — through the CLI on a store of its own."""

from __future__ import annotations

import json

import pytest

from imagestore.gallery import ids, sharing
from tests.helpers import gallery_db

from .test_gallery_versions import make_raw

S = ids.SUBSCRIPTION
COMMUNITY = ["--permissions", "Community", "--publisher-uri", "https://contoso.example",
             "--publisher-email", "images@contoso.example", "--eula", "https://contoso.example/eula",
             "--public-name-prefix", "Contoso"]


def definition(run, gallery: str, name: str, *extra: str):
    return run("sig", "image-definition", "create", "-r", gallery, "-i", name, "-p", "P", "-f",
               "O", "-s", f"{gallery}-{name}", "--os-type", "Linux", "--hyper-v-generation", "V2",
               *extra)


@pytest.fixture
def env(run, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "west"))
    run.json("sig", "create", "-r", "priv")
    run.json("sig", "create", "-r", "grp", "--permissions", "Groups")
    run.json("sig", "create", "-r", "comm", *COMMUNITY)
    run.src = make_raw(tmp_path / "os.raw", fill=0x5A)
    return run


@pytest.mark.parametrize("security", ["TrustedLaunch", "ConfidentialVM"])
def test_private_only_security_types(env, security):
    run = env
    for gallery, kind in (("grp", "Groups"), ("comm", "Community")):
        r = definition(run, gallery, "d", "--features", f"SecurityType={security}")
        assert r.exit_code == 3, r.stderr
        assert r.stderr.strip() == (
            f"error: --features: SecurityType {security} is supported in Private galleries "
            f"only, and gallery '{gallery}' is shared ({kind}); use {security}Supported")
        assert run.json("sig", "image-definition", "list", "-r", gallery) == []
    assert definition(run, "priv", "d", "--features", f"SecurityType={security}").exit_code == 0
    for ok in ("TrustedLaunchSupported", "ConfidentialVMSupported",
               "TrustedLaunchAndConfidentialVmSupported"):
        assert definition(run, "grp", ok, "--features", f"SecurityType={ok}").exit_code == 0
    # reset: the gallery is Private from then on and takes them
    run.json("sig", "share", "reset", "-r", "grp")
    assert definition(run, "grp", "d", "--features", f"SecurityType={security}").exit_code == 0


def test_shared_versions_live_in_the_gallerys_region(env):
    run = env
    assert definition(run, "grp", "d").exit_code == 0
    r = run("sig", "image-version", "create", "-r", "grp", "-i", "d", "-e", "1.0.0",
            "--os-vhd-uri", run.src, "-l", "west")
    assert r.exit_code == 3, r.stderr
    assert "is created in the gallery's region 'local', not 'west'" in r.stderr
    assert run.json("sig", "image-version", "list", "-r", "grp", "-i", "d") == []
    # created at home and replicated: fine; and a private gallery takes any region
    v = run.json("sig", "image-version", "create", "-r", "grp", "-i", "d", "-e", "1.0.0",
                 "--os-vhd-uri", run.src, "--target-regions", "local", "west")
    assert [t["name"] for t in v["properties"]["publishingProfile"]["targetRegions"]] == [
        "local", "west"]
    assert definition(run, "priv", "d").exit_code == 0
    assert run("sig", "image-version", "create", "-r", "priv", "-i", "d", "-e", "1.0.0",
               "--os-vhd-uri", run.src, "-l", "west").exit_code == 0


def test_profile_is_set_at_create_and_reset_for_good(env):
    run = env
    for args, msg in ((["--permissions", "Everyone"], "--permissions: 'Everyone'"),
                      (["--permissions", "Groups", "--eula", "x"], "are for --permissions Community"),
                      (["--eula", "x"], "need --permissions Community"),
                      ([*COMMUNITY[:-1], "-bad-"], "--public-name-prefix: '-bad-'"),
                      ([*COMMUNITY[:-1], "x" * 65], "must be 1-64 letters")):
        r = run("sig", "create", "-r", "other", *args)
        assert r.exit_code == 3 and msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert run("sig", "show", "-r", "other").exit_code == 4
    g = run.json("sig", "show", "-r", "grp", "--sharing-groups")
    assert g["properties"]["sharingProfile"] == {"permissions": "Groups", "groups": []}
    assert run.json("sig", "show", "-r", "priv", "--sharing-groups")["properties"][
        "sharingProfile"] == {"permissions": "Private", "groups": []}
    assert "sharingProfile" not in run.json("sig", "show", "-r", "priv")["properties"]
    # the description may change, the profile may not, and an update keeps it
    run.json("sig", "update", "-r", "grp", "--description", "team")
    run.json("sig", "share", "add", "-r", "grp", "--subscription-ids", S.upper())
    g = run.json("sig", "update", "-r", "grp", "--set", "tags.a=b")
    assert g["properties"]["description"] == "team" and g["tags"] == {"a": "b"}
    assert run.json("sig", "show", "-r", "grp", "--sharing-groups")["properties"][
        "sharingProfile"]["groups"] == [{"type": "Subscriptions", "ids": [S]}]
    r = run("sig", "update", "-r", "grp", "--set", "properties.sharingProfile.permissions=Community")
    assert r.exit_code == 5 and "sharingProfile" in r.stderr
    # enable twice: one public name, kept
    run.json("sig", "share", "enable-community", "-r", "comm")
    first = run.json("sig", "show", "-r", "comm")["properties"]["sharingProfile"]
    run.json("sig", "share", "enable-community", "-r", "comm")
    assert run.json("sig", "show", "-r", "comm")["properties"]["sharingProfile"] == first
    # a shared gallery is reset before it is deleted; the reset is for good
    for g in ("grp", "comm"):
        r = run("sig", "delete", "-r", g)
        assert r.exit_code == 5 and "reset its sharing first" in r.stderr
        run.json("sig", "share", "reset", "-r", g)
        assert run.json("sig", "show", "-r", g)["properties"]["sharingProfile"] == {
            "permissions": "Private"}
        r = run("sig", "share", "add", "-r", g, "--tenant-ids", S)
        assert r.exit_code == 5 and "permissions Private" in r.stderr
        assert run("sig", "delete", "-r", g).exit_code == 0
    # stored in the gallery's row: nothing else was written
    with gallery_db(run.store) as con:
        props = [json.loads(p) for (p,) in con.execute("SELECT props FROM galleries")]
    assert props == [{}]


def test_consumer_disks_from_shared_and_community_images(env, tmp_path):
    run = env
    assert definition(run, "grp", "d").exit_code == 0
    assert definition(run, "comm", "d").exit_code == 0
    for g in ("grp", "comm", "priv"):
        if g == "priv":
            assert definition(run, "priv", "d").exit_code == 0
        run.json("sig", "image-version", "create", "-r", g, "-i", "d", "-e", "1.0.0",
                 "--os-vhd-uri", run.src)
    unique = f"{S}-GRP"
    ref = f"/SharedGalleries/{unique}/Images/d/Versions/latest"
    # not shared yet: 404, one message for "missing" and "not shared"
    r = run("disk", "create", "-g", "cons", "-n", "d0", "--gallery-image-reference", ref)
    assert r.exit_code == 4 and "not shared with subscription" in r.stderr, r.stderr
    run.json("sig", "share", "add", "-r", "grp", "--subscription-ids", S)
    d = run.json("disk", "create", "-g", "cons", "-n", "d1", "--gallery-image-reference", ref)
    cd = d["properties"]["creationData"]
    consumer_id = {"sharedGalleryImageId": f"/SharedGalleries/{unique}/Images/d/Versions/1.0.0"}
    assert cd == {"createOption": "FromImage", "galleryImageReference": consumer_id,
                  "imageReference": consumer_id}
    assert "/galleries/" not in json.dumps(d)  # nothing names the publisher's resources
    private = run.json("sig", "image-version", "show", "-r", "grp", "-i", "d", "-e", "1.0.0")
    assert d["properties"]["localStorage"]["manifestDigest"] == private["properties"][
        "localStorage"]["osDiskImage"]["manifestDigest"]
    with open(d["properties"]["localStorage"]["path"], "rb") as f, open(run.src, "rb") as g:
        assert f.read() == g.read()
    from tests.compute.conftest import KEY

    vm = run.json("vm", "create", "-g", "cons", "-n", "vm1", "--image", ref,
                  "--admin-username", "azureuser", "--ssh-key-values", KEY)
    assert vm["properties"]["storageProfile"]["imageReference"] == {"sharedGalleryImageId": ref,
                                                      "exactVersion": "1.0.0"}
    assert "/galleries/" not in json.dumps(vm)
    ss = run.json("vmss", "create", "-g", "cons", "-n", "ss1", "--image", ref,
                  "--admin-username", "azureuser", "--ssh-key-values", KEY, "--instance-count", "1")
    assert ss["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"] == {
        "sharedGalleryImageId": ref}
    assert "/galleries/" not in json.dumps(ss)
    [inst] = run.json("vmss", "list-instances", "-g", "cons", "-n", "ss1")
    assert inst["properties"]["storageProfile"]["imageReference"]["exactVersion"] == "1.0.0"
    # community: while enabled
    run.json("sig", "share", "enable-community", "-r", "comm")
    public = run.json("sig", "show", "-r", "comm")["properties"]["sharingProfile"][
        "communityGalleryInfo"]["publicNames"][0]
    cref = f"/CommunityGalleries/{public}/Images/d/Versions/1.0.0"
    d = run.json("disk", "create", "-g", "cons", "-n", "d2", "--gallery-image-reference", cref)
    assert d["properties"]["creationData"]["imageReference"] == {
        "communityGalleryImageId": cref}
    # a private gallery has no consumer name; removal and reset stop use at once
    r = run("disk", "create", "-g", "cons", "-n", "d3", "--gallery-image-reference",
            f"/SharedGalleries/{S}-PRIV/Images/d/Versions/1.0.0")
    assert r.exit_code == 4
    run.json("sig", "share", "remove", "-r", "grp", "--subscription-ids", S)
    run.json("sig", "share", "reset", "-r", "comm")
    r = run("vmss", "scale", "-g", "cons", "-n", "ss1", "--new-capacity", "2")
    assert r.exit_code == 4 and "cannot add instance" in r.stderr, r.stderr
    assert len(run.json("vmss", "list-instances", "-g", "cons", "-n", "ss1")) == 1
    for n, rf in (("d4", ref), ("d5", cref)):
        r = run("disk", "create", "-g", "cons", "-n", n, "--gallery-image-reference", rf)
        assert r.exit_code == 4, r.stderr
    # malformed consumer ids: exit 4/3, one line
    for bad in ("/SharedGalleries/x", "/SharedGalleries//Images/d/Versions/1",
                "/CommunityGalleries/x/Images/d/Versions/1/extra"):
        r = run("disk", "create", "-g", "cons", "-n", "d6", "--gallery-image-reference", bad)
        assert r.exit_code in (3, 4) and "Traceback" not in r.stderr, (bad, r.stderr)
    names = [x["name"] for x in run.json("disk", "list", "-g", "cons")]
    assert names[:2] == ["d1", "d2"] and len(names) == 4, names
    assert sharing.MAX_TENANTS == 5


@pytest.mark.parametrize("profile, target", [
    ("Groups", "properties.sharingProfile"),
    ({"permissions": 5}, "properties.sharingProfile.permissions"),
    ({"permissions": "Groups", "extra": 1}, "properties.sharingProfile.extra"),
    ({"permissions": "Groups", "communityGalleryInfo": {"eula": "e"}},
     "properties.sharingProfile.communityGalleryInfo"),
    ({"permissions": "Community", "communityGalleryInfo": "x"},
     "properties.sharingProfile.communityGalleryInfo"),
    ({"permissions": "Community", "communityGalleryInfo": {
        "publisherUri": "https://x", "publisherContact": ["a@b"], "eula": "e",
        "publicNamePrefix": "p"}}, "properties.sharingProfile.communityGalleryInfo.publisherContact"),
    # the publisher link is shown to every tenant: only absolute http(s) URLs
    *[({"permissions": "Community", "communityGalleryInfo": {
        "publisherUri": uri, "publisherContact": "a@b.example", "eula": "e",
        "publicNamePrefix": "p"}}, "properties.sharingProfile.communityGalleryInfo.publisherUri")
      for uri in ("javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "https:x",
                  "contoso.example")],
])
def test_hostile_profiles_are_one_line_refusals(profile, target):
    from imagestore.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as e:
        sharing.create_profile(profile)
    assert e.value.target == target and "\n" not in e.value.message


@pytest.mark.parametrize("body, target", [
    (None, "operationType"), ({"operationType": 5}, "operationType"),
    ({"operationType": "Reset", "groups": [{"type": "AADTenants", "ids": [S]}]}, "groups"),
    ({"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": "abc"}]},
     "groups[0].ids"),
    ({"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": [{"a": 1}]}]},
     "groups[0].ids[0]"),
    ({"operationType": "Add", "groups": [{"ids": [S]}]}, "groups[0].type"),
])
def test_hostile_sharing_updates(body, target):
    from imagestore.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as e:
        sharing.parse_update(body)
    assert e.value.target == target and "\n" not in e.value.message
