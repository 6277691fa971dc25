"""The reference's 25 cases (sharing-rbac.md §6) where the other modules left a path
unasserted (see docs/reference-cases.md for the whole table): each test names its case and
the path it adds — the REST status the SDK hides (201), or the CLI's ``--as`` with its exit
code and ARM's exact text. The CLI prints ARM's message, not its code: exit 14 with the
``does not have authorization`` text is AuthorizationFailed, exit 14 with ``has permission
… however`` is LinkedAuthorizationFailed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.gallery import ids, sharing
from imagestore.identity import authorize
from tests.conftest import Cli

from .conftest import GV, SUB, make_source

pytestmark = pytest.mark.one_pass

RG = "refcases"
C = "Microsoft.Compute"
S = ids.SUBSCRIPTION
RG_ID = f"{SUB}/resourceGroups/{RG}"
GALS = f"{RG_ID}/providers/{C}/galleries"
G_ID = f"{GALS}/G"
D_ID = f"{G_ID}/images/D"
V_ID = f"{D_ID}/versions/1.0.0"
H_ID = f"{GALS}/hx"  # a Groups gallery named in lower case: its unique name is upper case
SHARE = f"{C}/galleries/share/action"
USERS = ("alice", "bob", "carol", "colin", "sam", "pete", "erin", "tom")


def upn(name: str) -> str:
    return f"{name}@refcases.example"


@pytest.fixture(scope="module")
def world(mod_server, tmp_path_factory):
    """Tenant RefCases: alice Owner at the subscription, bob Reader at G, carol Reader at D,
    colin Contributor at the resource group, sam Sharing Admin at hx, pete Artifacts
    Publisher at hx, erin in group grp (Reader at G), tom Reader at the subscription;
    tenant Elsewhere: ned, no role anywhere. G (private) holds D, D2 and 1.0.0; hx (Groups)
    holds D and 1.0.0."""
    cli = Cli(mod_server.store)
    t = cli.json("ad", "tenant", "create", "--display-name", "RefCases")["tenantId"]
    t3 = cli.json("ad", "tenant", "create", "--display-name", "Elsewhere")["tenantId"]
    oids = {u: cli.json("ad", "user", "create", "--user-principal-name", upn(u),
                        "--display-name", u.title(), "--tenant", t)["id"] for u in USERS}
    oids["ned"] = cli.json("ad", "user", "create", "--user-principal-name", "ned@elsewhere.example",
                           "--display-name", "Ned", "--tenant", t3)["id"]
    cli.json("ad", "group", "create", "--display-name", "refgrp", "--tenant", t)
    assert cli("ad", "group", "member", "add", "-g", "refgrp", "--member-id",
               upn("erin")).exit_code == 0
    src = make_source(tmp_path_factory.mktemp("refcases"), "os", "vpc", 5)
    cli.json("sig", "create", "-g", RG, "-r", "G")
    cli.json("sig", "create", "-g", RG, "-r", "hx", "--permissions", "Groups")
    for gal, img in (("G", "D"), ("G", "D2"), ("hx", "D")):
        cli.json("sig", "image-definition", "create", "-g", RG, "-r", gal, "-i", img, "-p", "P",
                 "-f", "O", "-s", f"{gal}{img}", "--os-type", "Linux")
    for gal in ("G", "hx"):
        cli.json("sig", "image-version", "create", "-g", RG, "-r", gal, "-i", "D", "-e", "1.0.0",
                 "--os-vhd-uri", src)
    for who, role, scope in (("alice", "Owner", SUB), ("bob", "Reader", G_ID),
                             ("carol", "Reader", D_ID), ("colin", "Contributor", RG_ID),
                             ("sam", "Compute Gallery Sharing Admin", H_ID),
                             ("pete", "Compute Gallery Artifacts Publisher", H_ID),
                             ("refgrp", "Reader", G_ID), ("tom", "Reader", SUB)):
        cli.json("role", "assignment", "create", "--assignee",
                 who if who == "refgrp" else upn(who), "--role", role, "--scope", scope)
    return {"cli": cli, "oids": oids, "src": src, "server": mod_server, "tenant": t}


def client(w, who: str) -> ComputeManagementClient:
    tok = w["cli"].json("token", "create", "--assignee", upn(who))["accessToken"]
    return ComputeManagementClient(**sdk_kwargs(w["server"].url, tok, polling_interval=0))


def as_(w, who: str, *args: str):
    return w["cli"]("--as", upn(who), *args)


def ok(w, who: str, *args: str):
    r = as_(w, who, *args)
    assert r.exit_code == 0, (args, r.exit_code, r.stderr)
    return r


def cli_denied(w, who: str, args: list[str], action: str, scope: str) -> None:
    """Exit 14 with ARM's AuthorizationFailed text naming the principal, action and scope."""
    r = as_(w, who, *args)
    assert r.exit_code == 14, (r.exit_code, r.stdout, r.stderr)
    assert r.stderr.strip() == "error: " + authorize.message(upn(who), w["oids"][who], action,
                                                             scope), r.stderr


def sdk_denied(w, call, who: str, action: str, scope: str) -> None:
    with pytest.raises(HttpResponseError) as e:
        call()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert e.value.error.message == authorize.message(upn(who), w["oids"][who], action, scope)


def versions(w, gallery: str, image: str = "D") -> list[str]:
    return w["cli"].json("sig", "image-version", "list", "-g", RG, "-r", gallery, "-i", image,
                         "--query", "[].name")


def vargs(gallery: str, ver: str, *more: str) -> list[str]:
    return ["sig", "image-version", "create", "-g", RG, "-r", gallery, "-i", "D", "-e", ver,
            *more]


def test_case_01_owner_creates_are_201_on_the_wire_and_exit_0_under_as(world):
    w = world
    tok = w["cli"].json("token", "create", "--assignee", upn("alice"))["accessToken"]
    http = w["server"].client(tok)
    base = f"{GALS}/G1"
    r = http.put(base, params={"api-version": GV}, json={"location": "local"})
    assert r.status_code == 201, r.text
    r = http.put(f"{base}/images/D", params={"api-version": GV}, json={
        "location": "local", "properties": {
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "P", "offer": "O", "sku": "g1"}}})
    assert r.status_code == 201, r.text
    r = http.put(f"{base}/images/D/versions/1.0.0", params={"api-version": GV}, json={
        "location": "local", "properties": {"storageProfile": {"osDiskImage": {
            "source": {"uri": "file://" + w["src"]}}}}})
    assert r.status_code == 201, r.text
    w["server"].wait_idle()
    assert versions(w, "G1") == ["1.0.0"]
    # the CLI as alice: a gallery, a definition and a version, exit 0 each
    ok(w, "alice", "sig", "create", "-g", RG, "-r", "G1c")
    ok(w, "alice", "sig", "image-definition", "create", "-g", RG, "-r", "G1c", "-i", "D", "-p",
       "P", "-f", "O", "-s", "g1c", "--os-type", "Linux")
    out = ok(w, "alice", "sig", "image-version", "create", "-g", RG, "-r", "G1c", "-i", "D",
             "-e", "1.0.0", "--os-vhd-uri", w["src"])
    assert '"provisioningState": "Succeeded"' in out.stdout


def test_case_03_reader_at_gallery_may_not_write_a_version_under_as(world):
    w = world
    ok(w, "bob", "sig", "show", "-g", RG, "-r", "G")
    ok(w, "bob", "sig", "image-definition", "show", "-g", RG, "-r", "G", "-i", "D")
    cli_denied(w, "bob", vargs("G", "1.0.1", "--os-vhd-uri", w["src"]),
               f"{C}/galleries/images/versions/write", f"{D_ID}/versions/1.0.1")
    assert versions(w, "G") == ["1.0.0"]


def test_case_04_reader_at_definition_under_as(world):
    w = world
    ok(w, "carol", "sig", "image-version", "show", "-g", RG, "-r", "G", "-i", "D", "-e", "1.0.0")
    cli_denied(w, "carol", ["sig", "show", "-g", RG, "-r", "G"], f"{C}/galleries/read", G_ID)
    cli_denied(w, "carol", ["sig", "image-definition", "show", "-g", RG, "-r", "G", "-i", "D2"],
               f"{C}/galleries/images/read", f"{G_ID}/images/D2")


def test_case_06_group_reader_at_the_gallery_then_removed(world):
    """The case as written: the group's Reader at G (test_rbac has it at the subscription)."""
    w = world
    erin = client(w, "erin")
    assert erin.galleries.get(RG, "G").name == "G"
    assert erin.gallery_image_versions.get(RG, "G", "D", "1.0.0").name == "1.0.0"
    ok(w, "erin", "sig", "image-version", "show", "-g", RG, "-r", "G", "-i", "D", "-e", "1.0.0")
    assert w["cli"]("ad", "group", "member", "remove", "-g", "refgrp", "--member-id",
                    upn("erin")).exit_code == 0
    try:
        sdk_denied(w, lambda: erin.galleries.get(RG, "G"), "erin", f"{C}/galleries/read", G_ID)
        cli_denied(w, "erin", ["sig", "show", "-g", RG, "-r", "G"], f"{C}/galleries/read", G_ID)
    finally:
        w["cli"]("ad", "group", "member", "add", "-g", "refgrp", "--member-id", upn("erin"))


def test_case_07_contributor_creates_and_deletes_but_may_not_share_under_as(world):
    w = world
    ok(w, "colin", "sig", "image-definition", "create", "-g", RG, "-r", "hx", "-i", "Tmp",
       "-p", "P", "-f", "O", "-s", "tmp", "--os-type", "Linux")
    ok(w, "colin", "sig", "image-definition", "delete", "-g", RG, "-r", "hx", "-i", "Tmp")
    cli_denied(w, "colin", ["sig", "share", "add", "-g", RG, "-r", "hx", "--subscription-ids",
                            S], SHARE, H_ID)
    colin = client(w, "colin")
    with pytest.raises(HttpResponseError) as e:
        colin.gallery_sharing_profile.begin_update(RG, "hx", m.SharingUpdate(
            operation_type="Add", groups=[m.SharingProfileGroup(type="Subscriptions",
                                                                ids=[S])])).result()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert f"action '{SHARE}'" in e.value.error.message


def test_case_08_sharing_admin_shares_but_may_not_read_under_as(world):
    w = world
    out = ok(w, "sam", "sig", "share", "add", "-g", RG, "-r", "hx", "--subscription-ids", S)
    assert '"operationType": "Add"' in out.stdout
    cli_denied(w, "sam", ["sig", "show", "-g", RG, "-r", "hx"], f"{C}/galleries/read", H_ID)
    ok(w, "sam", "sig", "share", "remove", "-g", RG, "-r", "hx", "--subscription-ids", S)
    assert w["cli"].json("sig", "show", "-g", RG, "-r", "hx", "--sharing-groups")[
        "properties"]["sharingProfile"] == {"permissions": "Groups", "groups": []}


def test_case_09_artifacts_publisher_creates_a_version_but_may_not_reset_under_as(world):
    w = world
    ok(w, "pete", *vargs("hx", "1.0.9", "--os-vhd-uri", w["src"]))
    assert "1.0.9" in versions(w, "hx")
    cli_denied(w, "pete", ["sig", "share", "reset", "-g", RG, "-r", "hx"], SHARE, H_ID)
    ok(w, "alice", "sig", "image-version", "delete", "-g", RG, "-r", "hx", "-i", "D", "-e",
       "1.0.9")


def test_case_14_unique_name_is_upper_case_and_the_private_id_is_refused(world):
    w = world
    unique = f"{S}-HX"
    ok(w, "alice", "sig", "share", "add", "-g", RG, "-r", "hx", "--subscription-ids", S)
    try:
        tom = client(w, "tom")
        assert unique in [g.name for g in tom.shared_galleries.list("local")]
        v = tom.shared_gallery_image_versions.get("local", unique, "D", "1.0.0")
        assert v.identifier.unique_id == f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"
        got = w["cli"].json("--as", upn("tom"), "sig", "show-shared", "-l", "local",
                            "--gallery-unique-name", unique)
        assert got["name"] == unique and "source" not in str(got)
        # names match in any case; the views and ids carry the published spelling
        lower = unique.lower()
        g = tom.shared_galleries.get("local", lower)
        assert g.name == unique and g.identifier.unique_id == f"/SharedGalleries/{unique}"
        assert tom.shared_gallery_image_versions.get("local", lower, "D", "1.0.0").identifier \
            .unique_id == f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"
        d = w["cli"].json("--as", upn("alice"), "disk", "create", "-g", RG, "-n", "lowref",
                          "--gallery-image-reference",
                          f"/SharedGalleries/{lower}/Images/D/Versions/latest")
        assert d["properties"]["creationData"]["galleryImageReference"] == {
            "sharedGalleryImageId": f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"}
        # tom (Reader of the subscription) reads hx's ARM id: the reference's 403 applies to
        # a consumer outside the publisher's subscription (test_sharing's uma); ned, with no
        # role at all, is refused both the private id and the shared views
        ned = ComputeManagementClient(**sdk_kwargs(w["server"].url, w["cli"].json(
            "token", "create", "--assignee", "ned@elsewhere.example")["accessToken"],
            polling_interval=0))
        with pytest.raises(HttpResponseError) as e:
            ned.galleries.get(RG, "hx")
        assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
        r = w["cli"]("--as", "ned@elsewhere.example", "sig", "show", "-g", RG, "-r", "hx")
        assert r.exit_code == 14 and f"action '{C}/galleries/read' over scope '{H_ID}'" in r.stderr
        r = w["cli"]("--as", "ned@elsewhere.example", "sig", "show-shared", "-l", "local",
                     "--gallery-unique-name", unique)
        assert r.exit_code == 14 and f"{C}/locations/sharedGalleries/read" in r.stderr, r.stderr
    finally:
        ok(w, "alice", "sig", "share", "remove", "-g", RG, "-r", "hx", "--subscription-ids", S)


def test_case_16_share_limits_under_as(world):
    w = world
    subs = [str(uuid.UUID(int=i + 100)) for i in range(sharing.MAX_SUBSCRIPTIONS)]
    ok(w, "alice", "sig", "share", "add", "-g", RG, "-r", "hx", "--subscription-ids", *subs)
    try:
        r = as_(w, "alice", "sig", "share", "add", "-g", RG, "-r", "hx", "--subscription-ids",
                str(uuid.uuid4()))
        assert r.exit_code == 3 and "at most 30 subscriptions" in r.stderr, r.stderr
        tenants = [str(uuid.uuid4()) for _ in range(sharing.MAX_TENANTS + 1)]
        r = as_(w, "alice", "sig", "share", "add", "-g", RG, "-r", "hx", "--tenant-ids",
                *tenants)
        assert r.exit_code == 3 and "at most 5 tenants" in r.stderr, r.stderr
        groups = w["cli"].json("sig", "show", "-g", RG, "-r", "hx", "--sharing-groups")[
            "properties"]["sharingProfile"]["groups"]
        assert groups == [{"type": "Subscriptions", "ids": subs}]  # nothing changed
    finally:
        ok(w, "alice", "sig", "share", "remove", "-g", RG, "-r", "hx", "--subscription-ids",
           *subs)


def test_case_18_encrypted_version_in_a_shared_gallery_under_as(world):
    """az's --target-region-encryption becomes the body's encryption, refused as REST refuses
    it (400 InvalidParameter there: test_sharing); nothing is created."""
    w = world
    des = f"{RG_ID}/providers/{C}/diskEncryptionSets/des"
    for spec in (des, f"null,0,{des}"):
        r = as_(w, "alice", *vargs("hx", "2.0.0", "--os-vhd-uri", w["src"],
                                   "--target-region-encryption", spec))
        assert r.exit_code == 3, (r.exit_code, r.stderr)
        assert r.stderr.strip() == ("error: --target-region-encryption: an encrypted image "
                                    "version can't be created in gallery 'hx', which is "
                                    "shared (Groups)"), r.stderr
    # in a private gallery: not supported at all
    r = as_(w, "alice", *vargs("G", "2.0.0", "--os-vhd-uri", w["src"], "--target-regions",
                               "local", "--target-region-encryption", des))
    assert r.exit_code == 3 and "not supported by imagestore" in r.stderr, r.stderr
    # malformed and surplus values: one line naming the flag
    for args in (["--target-region-encryption", f"{des},x,{des}"],
                 ["--target-region-encryption", f"{des},0"],
                 ["--target-region-encryption", des, des]):
        r = as_(w, "alice", *vargs("hx", "2.0.0", "--os-vhd-uri", w["src"], *args))
        assert r.exit_code == 3 and r.stderr.startswith("error: --target-region-encryption: "), \
            (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    # all null: no encryption, the version is made as without the flag
    ok(w, "alice", *vargs("hx", "2.0.0", "--os-vhd-uri", w["src"], "--target-region-encryption",
                          "null"))
    assert "2.0.0" in versions(w, "hx")
    ok(w, "alice", "sig", "image-version", "delete", "-g", RG, "-r", "hx", "-i", "D", "-e",
       "2.0.0")
    assert "2.0.0" not in versions(w, "hx")


def test_case_19_community_flags_under_as(world):
    w = world
    r = as_(w, "alice", "sig", "create", "-g", RG, "-r", "C19", "--permissions", "Community",
            "--publisher-uri", "https://contoso.example", "--publisher-email",
            "images@contoso.example", "--public-name-prefix", "Ref")
    assert r.exit_code == 3 and r.stderr.strip() == "error: " + sharing.COMMUNITY_MISSING
    assert w["cli"]("sig", "show", "-g", RG, "-r", "C19").exit_code == 4


def community(w, name: str) -> None:
    ok(w, "alice", "sig", "create", "-g", RG, "-r", name, "--permissions", "Community",
       "--publisher-uri", "https://contoso.example", "--publisher-email",
       "images@contoso.example", "--eula", "https://contoso.example/eula",
       "--public-name-prefix", "Ref")


def test_cases_20_and_22_community_enable_and_delete_under_as(world):
    w = world
    community(w, "C20")
    cid = f"{GALS}/C20"
    ok(w, "alice", "sig", "image-definition", "create", "-g", RG, "-r", "C20", "-i", "D", "-p",
       "P", "-f", "O", "-s", "c20", "--os-type", "Linux")
    ok(w, "alice", *vargs("C20", "1.0.0", "--os-vhd-uri", w["src"]))
    # 20. a Contributor may not enable it; the Owner may: PREFIX-GUID, enabled
    cli_denied(w, "colin", ["sig", "share", "enable-community", "-g", RG, "-r", "C20"], SHARE,
               cid)
    ok(w, "alice", "sig", "share", "enable-community", "-g", RG, "-r", "C20")
    info = w["cli"].json("sig", "show", "-g", RG, "-r", "C20")["properties"]["sharingProfile"][
        "communityGalleryInfo"]
    assert info["communityGalleryEnabled"] is True
    [public] = info["publicNames"]
    assert public.startswith("Ref-") and str(uuid.UUID(public[4:])) == public[4:]
    # a principal of an unrelated tenant with no role reads it and its versions
    got = w["cli"].json("--as", "ned@elsewhere.example", "sig", "image-version",
                        "list-community", "-l", "local", "--public-gallery-name", public, "-i",
                        "D")
    assert [v["name"] for v in got] == ["1.0.0"]
    got = w["cli"].json("--as", "ned@elsewhere.example", "sig", "show-community", "-l", "local",
                        "--public-gallery-name", public.upper())
    assert got["name"] == public and got["identifier"]["uniqueId"] == f"/CommunityGalleries/{public}"
    # 22. delete refused while enabled (exit 5), after reset and emptied exit 0
    r = as_(w, "alice", "sig", "delete", "-g", RG, "-r", "C20")
    assert r.exit_code == 5 and "reset its sharing first" in r.stderr, r.stderr
    ok(w, "alice", "sig", "share", "reset", "-g", RG, "-r", "C20")
    r = w["cli"]("--as", "ned@elsewhere.example", "sig", "show-community", "-l", "local",
                 "--public-gallery-name", public)
    assert r.exit_code == 4, r.stderr
    ok(w, "alice", "sig", "image-version", "delete", "-g", RG, "-r", "C20", "-i", "D", "-e",
       "1.0.0")
    ok(w, "alice", "sig", "image-definition", "delete", "-g", RG, "-r", "C20", "-i", "D")
    ok(w, "alice", "sig", "delete", "-g", RG, "-r", "C20")
    assert w["cli"]("sig", "show", "-g", RG, "-r", "C20").exit_code == 4


def test_case_21_security_types_under_as(world):
    w = world
    for sec in ("TrustedLaunch", "ConfidentialVM"):
        r = as_(w, "alice", "sig", "image-definition", "create", "-g", RG, "-r", "hx", "-i", "TL",
                "-p", "P", "-f", "O", "-s", f"tl{sec}", "--os-type", "Linux",
                "--hyper-v-generation", "V2", "--features", f"SecurityType={sec}")
        assert r.exit_code == 3, r.stderr
        assert f"SecurityType {sec} is supported in Private galleries only" in r.stderr
    ok(w, "alice", "sig", "image-definition", "create", "-g", RG, "-r", "hx", "-i", "TLS", "-p",
       "P", "-f", "O", "-s", "tls", "--os-type", "Linux", "--hyper-v-generation", "V2",
       "--features", "SecurityType=TrustedLaunchSupported")
    ok(w, "alice", "sig", "image-definition", "delete", "-g", RG, "-r", "hx", "-i", "TLS")


def test_case_23_soft_delete_round_trip_under_as(world, monkeypatch):
    w = world
    ok(w, "alice", "sig", "create", "-g", RG, "-r", "SD", "--soft-delete", "true")
    ok(w, "alice", "sig", "image-definition", "create", "-g", RG, "-r", "SD", "-i", "D", "-p",
       "P", "-f", "O", "-s", "sd", "--os-type", "Linux")
    for v in ("1.0.0", "1.0.1"):
        ok(w, "alice", *vargs("SD", v, "--os-vhd-uri", w["src"]))
    ok(w, "alice", "sig", "image-version", "delete", "-g", RG, "-r", "SD", "-i", "D", "-e",
       "1.0.1")
    assert versions(w, "SD") == ["1.0.0"]
    listed = w["cli"].json("--as", upn("tom"), "sig", "image-version", "list-soft-deleted", "-g",
                           RG, "-r", "SD", "-i", "D")
    assert [x["name"] for x in listed] == ["1.0.1"]
    sd_id = f"{GALS}/SD/images/D"
    d = w["cli"].json("--as", upn("alice"), "disk", "create", "-g", RG, "-n", "sdlatest",
                      "--gallery-image-reference", sd_id)
    assert d["properties"]["creationData"]["galleryImageReference"]["id"].endswith("/1.0.0")
    d = w["cli"].json("--as", upn("alice"), "disk", "create", "-g", RG, "-n", "sdexplicit",
                      "--gallery-image-reference", f"{sd_id}/versions/1.0.1")
    assert d["properties"]["creationData"]["galleryImageReference"]["id"].endswith("/1.0.1")
    undelete = ["sig", "image-version", "undelete", "-g", RG, "-r", "SD", "-i", "D", "-e",
                "1.0.1"]
    r = as_(w, "alice", *undelete, "-l", "westus")
    assert r.exit_code == 3 and "'westus' is not the home region 'local'" in r.stderr, r.stderr
    ok(w, "alice", *undelete, "-l", "local")
    assert versions(w, "SD") == ["1.0.0", "1.0.1"]
    # deleted again, the clock moved past retention + grace: purged by gc
    ok(w, "alice", "sig", "image-version", "delete", "-g", RG, "-r", "SD", "-i", "D", "-e",
       "1.0.1")
    monkeypatch.setenv("IMAGESTORE_NOW", (datetime.now(UTC) + timedelta(days=15)).isoformat())
    gc = w["cli"].json("store", "gc")
    assert f"{sd_id}/versions/1.0.1" in gc["softDeletedVersionsPurged"]
    monkeypatch.delenv("IMAGESTORE_NOW")
    assert w["cli"].json("sig", "image-version", "list-soft-deleted", "-g", RG, "-r", "SD", "-i",
                         "D") == []
    r = as_(w, "alice", *undelete)
    assert r.exit_code == 4, r.stderr


def test_case_25_cross_tenant_under_as_is_the_current_tenant_refusal(world):
    """Under ``--as`` the app acts as one of its objects, in that object's tenant: its T2
    object alone is refused with ARM's 'current tenant' text; with ``--aux-tenants T1`` (the
    CLI's x-ms-authorization-auxiliary, validated with the header's rules) the T1 object's
    Reader on the gallery lets the disk be made (the REST path is test_cross_tenant's)."""
    w = world
    cli = w["cli"]
    app = cli.json("ad", "sp", "create-for-rbac", "--name", "ref-app", "--skip-assignment")
    t2 = cli.json("ad", "tenant", "create", "--display-name", "RefTwo")["tenantId"]
    obj2 = cli.json("ad", "sp", "create", "--id", app["appId"], "--tenant", t2)["id"]
    s2 = cli.json("account", "create", "--tenant", t2, "--display-name", "ref-two")
    s2_id = s2.get("subscriptionId") or s2["id"].rsplit("/", 1)[-1]
    cli.json("group", "create", "-n", "refrg2", "-l", "local", "--subscription", s2_id)
    rg2 = f"/subscriptions/{s2_id}/resourceGroups/refrg2"
    a = cli.json("role", "assignment", "create", "--assignee", obj2, "--role", "Contributor",
                 "--scope", rg2)
    assert a["principalId"] == obj2
    cli.json("role", "assignment", "create", "--assignee", app["appId"], "--role", "Reader",
             "--scope", G_ID)
    r = cli("--as", obj2, "disk", "create", "-g", "refrg2", "-n", "x1",
            "--gallery-image-reference", V_ID)
    assert r.exit_code == 14, (r.exit_code, r.stderr)
    assert r.stderr.strip() == (
        f"error: The client has permission to perform action '{C}/galleries/images/versions/read' "
        f"on scope '{rg2}/providers/{C}/disks/x1', however the current tenant '{t2}' is not "
        f"authorized to access linked subscription '{S}'.")
    assert cli.json("disk", "list", "-g", "refrg2") == []
    # --aux-tenants: the app's object in the local tenant T1 (Reader on G) authorizes the
    # linked version, as REST's x-ms-authorization-auxiliary does
    local = cli.json("ad", "tenant", "list", "--query", "[0].tenantId")
    t3 = cli.json("ad", "tenant", "create", "--display-name", "RefThree")["tenantId"]
    for args, code, text in [
        (["--as", obj2, "--aux-tenants", "nowhere.example"], 4, "tenant 'nowhere.example' not found"),
        (["--as", obj2, "--aux-tenants", t2], 3, "the principal's own tenant"),
        (["--as", obj2, "--aux-tenants", f"{local},{local}"], 3, "named twice"),
        (["--as", obj2, "--aux-tenants", f"{local} {t3} {t2} {local}"], 3, "at most 3"),
        (["--as", obj2, "--aux-tenants", t3], 4, "AADSTS700016"),
        (["--aux-tenants", local], 3, "only with --as"),
    ]:
        r = cli(*args, "disk", "create", "-g", "refrg2", "-n", "x1",
                "--gallery-image-reference", V_ID)
        assert r.exit_code == code and text in r.stderr, (args, r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr
    assert cli.json("disk", "list", "-g", "refrg2") == []
    d = cli.json("--as", obj2, "--aux-tenants", local, "disk", "create", "-g", "refrg2", "-n",
                 "x1", "--gallery-image-reference", V_ID)
    assert d["id"] == f"{rg2}/providers/{C}/disks/x1"
    # --as the app id acts as its object in the scope's tenant (T2, as az signed in there)
    d = cli.json("--as", app["appId"], "disk", "create", "-g", "refrg2", "-n", "x2",
                 "--gallery-image-reference", V_ID, "--aux-tenants", local)
    assert d["name"] == "x2"
    r = cli("--as", app["appId"], "disk", "create", "-g", "refrg2", "-n", "x3",
            "--gallery-image-reference", V_ID)
    assert r.exit_code == 14 and "current tenant" in r.stderr, r.stderr
    # the T1 object's Reader removed: the auxiliary tenant no longer helps
    assert cli("role", "assignment", "delete", "--assignee", app["appId"], "--scope",
               G_ID).exit_code == 0
    r = cli("--as", obj2, "--aux-tenants", local, "disk", "create", "-g", "refrg2", "-n",
            "x4", "--gallery-image-reference", V_ID)
    assert r.exit_code == 14 and "LinkedAuthorizationFailed" not in r.stdout, r.stderr
    assert f"action '{C}/galleries/images/versions/read' on the linked scope(s) '{V_ID}'" \
        in r.stderr, r.stderr
    assert sorted(cli.json("disk", "list", "-g", "refrg2", "--query", "[].name")) == ["x1", "x2"]


def test_case_02_identity_from_the_environment_and_its_precedence(world, monkeypatch):
    """IMAGESTORE_AS acts as the principal like --as; --as wins over it; an empty value is
    the store owner."""
    w = world
    monkeypatch.setenv("IMAGESTORE_AS", "ned@elsewhere.example")
    r = w["cli"]("sig", "show", "-g", RG, "-r", "G")
    assert r.exit_code == 14 and r.stderr.strip() == "error: " + authorize.message(
        "ned@elsewhere.example", w["oids"]["ned"], f"{C}/galleries/read", G_ID), r.stderr
    ok(w, "bob", "sig", "show", "-g", RG, "-r", "G")  # --as bob (Reader at G) wins
    cli_denied(w, "carol", ["sig", "show", "-g", RG, "-r", "G"], f"{C}/galleries/read", G_ID)
    monkeypatch.setenv("IMAGESTORE_AS", "")
    assert w["cli"].json("sig", "show", "-g", RG, "-r", "G")["name"] == "G"


def _intact(model_cls, body: dict) -> None:
    """Every key of the JSON, nested ones included, is a field the SDK model declares and
    reads back through its attribute (nothing only reachable as a raw mapping key)."""

    def unknown(o, path: str) -> list[str]:
        if isinstance(o, list):
            return [x for i, v in enumerate(o) for x in unknown(v, f"{path}[{i}]")]
        fields = getattr(type(o), "_attr_to_rest_field", None)
        if fields is None:
            return []
        rest = {f._rest_name: attr for attr, f in fields.items()}
        out = [f"{path}.{k}" for k in o.keys() if k not in rest]
        for k in o.keys():
            if k in rest:
                out += unknown(getattr(o, rest[k]), f"{path}.{k}")
        return out

    obj = model_cls(body)
    assert unknown(obj, model_cls.__name__) == []
    assert obj.as_dict() == body


def test_consumer_views_read_intact_by_the_sdk_models(world):
    """Must show: the shared and community JSON is exactly what SharedGallery* and
    CommunityGallery* models hold — deserialized with nothing left over, serialized back
    equal."""
    w = world
    ok(w, "alice", "sig", "share", "add", "-g", RG, "-r", "hx", "--subscription-ids", S)
    community(w, "CV")
    ok(w, "alice", "sig", "image-definition", "create", "-g", RG, "-r", "CV", "-i", "D", "-p",
       "P", "-f", "O", "-s", "cv", "--os-type", "Linux")
    ok(w, "alice", *vargs("CV", "1.0.0", "--os-vhd-uri", w["src"]))
    ok(w, "alice", "sig", "share", "enable-community", "-g", RG, "-r", "CV")
    [public] = w["cli"].json("sig", "show", "-g", RG, "-r", "CV")["properties"][
        "sharingProfile"]["communityGalleryInfo"]["publicNames"]
    try:
        tok = w["cli"].json("token", "create", "--assignee", upn("tom"))["accessToken"]
        http = w["server"].client(tok)
        loc = f"{SUB}/providers/{C}/locations/local"
        for base, models in ((f"{loc}/sharedGalleries/{S}-HX",
                              (m.SharedGallery, m.SharedGalleryImage, m.SharedGalleryImageVersion)),
                             (f"{loc}/communityGalleries/{public}",
                              (m.CommunityGallery, m.CommunityGalleryImage,
                               m.CommunityGalleryImageVersion))):
            for path, model in zip(("", "/images/D", "/images/D/versions/1.0.0"), models,
                                   strict=True):
                r = http.get(base + path, params={"api-version": GV})
                assert r.status_code == 200, r.text
                _intact(model, r.json())
    finally:
        ok(w, "alice", "sig", "share", "remove", "-g", RG, "-r", "hx", "--subscription-ids", S)
        ok(w, "alice", "sig", "share", "reset", "-g", RG, "-r", "CV")
