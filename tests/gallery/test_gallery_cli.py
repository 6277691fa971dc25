"""Galleries and image definitions through the CLI: every command, validation, update and
deletion rule, each asserting the message and the exit code."""

from __future__ import annotations

import pytest

from imagestore.cli.main import cli
from imagestore.gallery.ids import SUBSCRIPTION
from tests.helpers import fails

INVALID, NOT_FOUND, CONFLICT = 3, 4, 5
PFX = f"/subscriptions/{SUBSCRIPTION}/resourceGroups"


def mkdef(run, gallery="g", name="d", pub="Contoso", offer="Finance", sku="Backend", *extra):
    return run("sig", "image-definition", "create", "-r", gallery, "-i", name, "-p", pub,
               "-f", offer, "-s", sku, "--os-type", "Linux", *extra)


@pytest.fixture
def gal(run):
    run.json("sig", "create", "-r", "g")
    return run


# -- galleries ------------------------------------------------------------------------------


def test_gallery_create_show_list(run):
    g = run.json("sig", "create", "-r", "myGallery", "--description", "team images",
                 "--tags", "team=infra", "env=dev")
    assert g["id"] == f"{PFX}/default/providers/Microsoft.Compute/galleries/myGallery"
    assert g["name"] == "myGallery"
    assert g["type"] == "Microsoft.Compute/galleries"
    assert g["location"] == "local"
    assert g["tags"] == {"team": "infra", "env": "dev"}
    assert g["properties"]["description"] == "team images"
    assert g["properties"]["provisioningState"] == "Succeeded"
    assert g["properties"]["identifier"]["uniqueName"].endswith("-MYGALLERY")
    run.json("sig", "create", "-r", "other", "-g", "rg2")
    assert run.json("sig", "show", "-r", "mygallery") == g  # names are case-insensitive
    assert [x["name"] for x in run.json("sig", "list")] == ["myGallery", "other"]
    assert [x["name"] for x in run.json("sig", "list", "-g", "rg2")] == ["other"]
    assert run.json("sig", "list", "-g", "nothing") == []
    # -o/--query before or after the command
    r = run("-o", "tsv", "--query", "[].name", "sig", "list", "-g", "rg2")
    assert r.exit_code == 0 and r.stdout.strip() == "other"
    r = run("sig", "show", "-r", "myGallery", "--query", "properties.description", "-o", "tsv")
    assert r.stdout.strip() == "team images"
    r = run("sig", "list", "-o", "table")
    assert r.exit_code == 0 and "myGallery" in r.stdout and "Name" in r.stdout
    assert run("sig", "list", "-o", "none").stdout == ""


def test_gallery_names(run):
    fails(run("sig", "create", "-r", "bad-name"), INVALID, "--gallery-name", "'bad-name'")
    fails(run("sig", "create", "-r", "_x"), INVALID, "--gallery-name")
    fails(run("sig", "create", "-r", "x."), INVALID, "--gallery-name")
    fails(run("sig", "create", "-r", "a" * 81), INVALID, "--gallery-name")
    assert run.json("sig", "create", "-r", "a" * 80)["name"] == "a" * 80
    assert run.json("sig", "create", "-r", "a_b.c9")["name"] == "a_b.c9"
    fails(run("sig", "create", "-r", "g", "-g", "bad rg"), INVALID, "--resource-group")


def test_gallery_conflicts_and_not_found(gal):
    run = gal
    fails(run("sig", "create", "-r", "G"), CONFLICT, "gallery 'G' already exists")
    fails(run("sig", "show", "-r", "nope"), NOT_FOUND, "gallery 'nope' not found")
    fails(run("sig", "show", "-r", "g", "-g", "rg2"), NOT_FOUND, "resource group 'rg2'")
    fails(run("sig", "create", "-r", "w", "-l", "westeurope"), NOT_FOUND,
          "--location", "region 'westeurope' not found")
    fails(run("sig", "delete", "-r", "nope"), NOT_FOUND, "gallery 'nope' not found")


def test_gallery_update(gal):
    run = gal
    g = run.json("sig", "update", "-r", "g", "--description", "one")
    assert g["properties"]["description"] == "one"
    g = run.json("sig", "update", "-r", "g", "--set", "properties.description=two", "tags.a=b")
    assert g["properties"]["description"] == "two" and g["tags"] == {"a": "b"}
    fails(run("sig", "update", "-r", "g", "--set", "location=elsewhere"), CONFLICT,
          "Changing property 'location' is not allowed")
    fails(run("sig", "update", "-r", "g", "--set", "properties.identifier.uniqueName=x"),
          CONFLICT, "Changing property 'properties.identifier.uniqueName' is not allowed")
    fails(run("sig", "update", "-r", "g", "--set", "name=h"), CONFLICT,
          "Changing property 'name' is not allowed")
    fails(run("sig", "update", "-r", "g", "--set", "properties.description"), INVALID, "--set")
    assert run.json("sig", "show", "-r", "g")["properties"]["description"] == "two"


def test_gallery_delete(gal):
    run = gal
    mkdef(run, "g", "d1")
    mkdef(run, "g", "d2", "P", "O", "S")
    fails(run("sig", "delete", "-r", "g"), CONFLICT,
          "gallery 'g' still contains 2 image definition(s): d1, d2")
    assert run("sig", "image-definition", "delete", "-r", "g", "-i", "d1").exit_code == 0
    assert run("sig", "image-definition", "delete", "-r", "g", "-i", "d2").exit_code == 0
    r = run("sig", "delete", "-r", "g")
    assert r.exit_code == 0 and r.stdout == ""
    fails(run("sig", "show", "-r", "g"), NOT_FOUND)


# -- image definitions ----------------------------------------------------------------------


def test_definition_full(gal):
    run = gal
    d = run.json(
        "sig", "image-definition", "create", "-r", "g", "-i", "my-image.1", "-p", "Contoso",
        "-f", "Finance", "-s", "Backend", "--os-type", "windows", "--os-state", "specialized",
        "--hyper-v-generation", "v2", "--architecture", "arm64",
        "--features", "SecurityType=TrustedLaunch IsAcceleratedNetworkSupported=true",
        "--features", "IsHibernateSupported=False", "DiskControllerTypes=SCSI,NVMe",
        "--description", "desc", "--eula", "eula text",
        "--privacy-statement-uri", "https://example.com/privacy",
        "--release-note-uri", "https://example.com/notes", "--end-of-life-date", "2099-12-31",
        "--minimum-cpu-core", "2", "--maximum-cpu-core", "8", "--minimum-memory", "4",
        "--maximum-memory", "32", "--disallowed-disk-types", "standard_lrs", "Premium_LRS",
        "--plan-publisher", "pp", "--plan-name", "pn", "--plan-product", "pr",
        "--tags", "k=v",
    )
    assert d["id"] == f"{PFX}/default/providers/Microsoft.Compute/galleries/g/images/my-image.1"
    assert d["type"] == "Microsoft.Compute/galleries/images"
    p = d["properties"]
    assert p["identifier"] == {"publisher": "Contoso", "offer": "Finance", "sku": "Backend"}
    assert (p["osType"], p["osState"], p["hyperVGeneration"], p["architecture"]) == (
        "Windows", "Specialized", "V2", "Arm64")
    assert p["features"] == [
        {"name": "SecurityType", "value": "TrustedLaunch"},
        {"name": "IsAcceleratedNetworkSupported", "value": "True"},
        {"name": "IsHibernateSupported", "value": "False"},
        {"name": "DiskControllerTypes", "value": "SCSI, NVMe"},
    ]
    assert p["description"] == "desc" and p["eula"] == "eula text"
    assert p["privacyStatementUri"] == "https://example.com/privacy"
    assert p["releaseNoteUri"] == "https://example.com/notes"
    assert p["endOfLifeDate"] == "2099-12-31T00:00:00+00:00"
    assert p["recommended"] == {"vCPUs": {"min": 2, "max": 8}, "memory": {"min": 4, "max": 32}}
    assert p["disallowed"] == {"diskTypes": ["Standard_LRS", "Premium_LRS"]}
    assert p["purchasePlan"] == {"name": "pn", "publisher": "pp", "product": "pr"}
    assert p["provisioningState"] == "Succeeded"
    assert d["tags"] == {"k": "v"}
    assert run.json("sig", "image-definition", "show", "-r", "g", "-i", "MY-IMAGE.1") == d
    assert [x["name"] for x in run.json("sig", "image-definition", "list", "-r", "g")] == ["my-image.1"]


def test_definition_defaults(gal):
    d = mkdef(gal, "g", "d")
    assert d.exit_code == 0
    import json

    p = json.loads(d.stdout)["properties"]
    assert (p["osState"], p["hyperVGeneration"], p["architecture"]) == ("Generalized", "V1", "x64")


def test_definition_names(gal):
    run = gal
    fails(mkdef(run, "g", "-bad"), INVALID, "--gallery-image-definition", "'-bad'")
    fails(mkdef(run, "g", "bad_"), INVALID, "--gallery-image-definition", "'bad_'")
    fails(mkdef(run, "g", "a b"), INVALID, "--gallery-image-definition")
    fails(mkdef(run, "g", "x" * 81), INVALID, "--gallery-image-definition")
    assert mkdef(run, "g", "x" * 80).exit_code == 0
    fails(mkdef(run, "nope", "d"), NOT_FOUND, "gallery 'nope' not found")


@pytest.mark.parametrize(
    ("pub", "offer", "sku", "field", "why"),
    [
        ("", "O", "S", "--publisher", "must not be empty"),
        ("Con toso", "O", "S", "--publisher", "may contain only"),
        ("Contoso.", "O", "S", "--publisher", "must not end with '.'"),
        ("P" * 129, "O", "S", "--publisher", "longer than 128"),
        ("P", "O/x", "S", "--offer", "may contain only"),
        ("P", "O" * 65, "S", "--offer", "longer than 64"),
        ("P", "O", "S.", "--sku", "must not end with '.'"),
        ("P", "O", "S" * 65, "--sku", "longer than 64"),
        ("P", "O", "", "--sku", "must not be empty"),
    ],
)
def test_definition_identifier_rules(gal, pub, offer, sku, field, why):
    fails(mkdef(gal, "g", "d", pub, offer, sku), INVALID, field, why)


def test_definition_identifier_limits_ok(gal):
    assert mkdef(gal, "g", "d", "P-_." + "p" * 124, "o" * 64, "s" * 64).exit_code == 0


def test_definition_identifier_unique(gal):
    run = gal
    assert mkdef(run, "g", "d1", "Contoso", "Finance", "Backend").exit_code == 0
    fails(mkdef(run, "g", "d2", "contoso", "FINANCE", "backend"), CONFLICT,
          "properties.identifier", "already used by image definition 'd1'")
    fails(mkdef(run, "g", "D1", "A", "B", "C"), CONFLICT, "image definition 'g/D1' already exists")
    run.json("sig", "create", "-r", "g2")
    assert mkdef(run, "g2", "d2", "Contoso", "Finance", "Backend").exit_code == 0  # other gallery


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--os-state", "Frozen"], "--os-state"),
        (["--hyper-v-generation", "V3"], "--hyper-v-generation"),
        (["--architecture", "riscv"], "--architecture"),
        (["--disallowed-disk-types", "Floppy"], "--disallowed-disk-types"),
        (["--end-of-life-date", "2001-01-01"], "--end-of-life-date"),
        (["--end-of-life-date", "someday"], "--end-of-life-date"),
        (["--features", "IsCool=True"], "unknown feature 'IsCool'"),
        (["--features", "IsHibernateSupported=maybe"], "IsHibernateSupported"),
        (["--features", "IsHibernateSupported"], "is not NAME=VALUE"),
        (["--features", "DiskControllerTypes=NVMe"], "DiskControllerTypes"),
        (["--features", "SecurityType=Nope", "--hyper-v-generation", "V2"], "SecurityType"),
        (["--features", "SecurityType=TrustedLaunch"], "needs properties.hyperVGeneration V2"),
        (["--features", "IsHibernateSupported=True IsHibernateSupported=False"], "given twice"),
        (["--minimum-cpu-core", "8", "--maximum-cpu-core", "2"], "--minimum-cpu-core/--maximum-cpu-core: min 8 is greater than max 2"),
        (["--minimum-memory", "64", "--maximum-memory", "4"], "--minimum-memory/--maximum-memory: min 64 is greater than max 4"),
        (["--minimum-cpu-core", "0"], "--minimum-cpu-core/--maximum-cpu-core.min"),
        (["--plan-name", "x"], "--plan-publisher"),
        (["--plan-publisher", "x"], "--plan-name"),
        (["--privacy-statement-uri", "not a uri"], "--privacy-statement-uri"),
        (["-l", "mars"], "region 'mars' not found"),
    ],
)
def test_definition_validation(gal, args, field):
    r = mkdef(gal, "g", "d", "P", "O", "S", *args)
    fails(r, NOT_FOUND if "not found" in field else INVALID, field)
    fails(gal("sig", "image-definition", "show", "-r", "g", "-i", "d"), NOT_FOUND)


def test_definition_os_type(gal):
    r = gal("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
            "-s", "S", "--os-type", "Plan9")
    fails(r, INVALID, "--os-type: 'Plan9' is not one of Linux, Windows")


@pytest.mark.parametrize(
    "sec", ["ConfidentialVMSupported", "ConfidentialVM", "TrustedLaunchSupported",
            "TrustedLaunch", "TrustedLaunchAndConfidentialVmSupported"],
)
def test_definition_security_types(gal, sec):
    r = mkdef(gal, "g", "d", "P", "O", "S", "--hyper-v-generation", "V2",
              "--features", f"SecurityType={sec.lower()}")
    assert r.exit_code == 0, r.stderr
    assert gal.json("sig", "image-definition", "show", "-r", "g", "-i", "d")["properties"][
        "features"] == [{"name": "SecurityType", "value": sec}]


def test_definition_update_allowed(gal):
    run = gal
    mkdef(run, "g", "d", "P", "O", "S", "--minimum-cpu-core", "1", "--maximum-cpu-core", "4")
    d = run.json("sig", "image-definition", "update", "-r", "g", "-i", "d", "--description", "x",
                 "--end-of-life-date", "2099-01-01", "--release-note-uri", "https://n",
                 "--maximum-cpu-core", "16", "--minimum-memory", "2", "--maximum-memory", "8")
    p = d["properties"]
    assert p["description"] == "x" and p["releaseNoteUri"] == "https://n"
    assert p["endOfLifeDate"] == "2099-01-01T00:00:00+00:00"
    assert p["recommended"] == {"vCPUs": {"min": 1, "max": 16}, "memory": {"min": 2, "max": 8}}
    d = run.json("sig", "image-definition", "update", "-r", "g", "-i", "d",
                 "--set", "properties.recommended.vCPUs.min=2", "properties.description=y",
                 "tags.t=1")
    assert d["properties"]["recommended"]["vCPUs"] == {"min": 2, "max": 16}
    assert d["properties"]["description"] == "y" and d["tags"] == {"t": "1"}


@pytest.mark.parametrize(
    ("expr", "name"),
    [
        ("properties.osType=Windows", "properties.osType"),
        ("properties.osState=Specialized", "properties.osState"),
        ("properties.hyperVGeneration=V2", "properties.hyperVGeneration"),
        ("properties.identifier.publisher=X", "properties.identifier.publisher"),
        ("properties.architecture=Arm64", "properties.architecture"),
        ("properties.eula=new", "properties.eula"),
        ("properties.privacyStatementUri=https://x", "properties.privacyStatementUri"),
        ('properties.features=[]', "properties.features"),
        ('properties.disallowed={"diskTypes":["Premium_LRS"]}', "properties.disallowed"),
        ("properties.purchasePlan.name=x", "properties.purchasePlan"),
        ("location=elsewhere", "location"),
    ],
)
def test_definition_update_refused(gal, expr, name):
    mkdef(gal, "g", "d", "P", "O", "S", "--features", "IsHibernateSupported=True")
    before = gal.json("sig", "image-definition", "show", "-r", "g", "-i", "d")
    fails(gal("sig", "image-definition", "update", "-r", "g", "-i", "d", "--set", expr), CONFLICT,
          f"Changing property '{name}")
    assert gal.json("sig", "image-definition", "show", "-r", "g", "-i", "d") == before


def test_definition_update_validation(gal):
    run = gal
    mkdef(run, "g", "d", "P", "O", "S", "--minimum-cpu-core", "2", "--maximum-cpu-core", "4")
    fails(run("sig", "image-definition", "update", "-r", "g", "-i", "d", "--minimum-cpu-core", "8"),
          INVALID, "--minimum-cpu-core/--maximum-cpu-core: min 8 is greater than max 4")
    fails(run("sig", "image-definition", "update", "-r", "g", "-i", "d", "--end-of-life-date",
              "2000-01-01"), INVALID, "--end-of-life-date: 2000-01-01", "not in the future")
    fails(run("sig", "image-definition", "update", "-r", "g", "-i", "d", "--set",
              "properties.recommended.vCPUs.max=\"many\""), INVALID, "properties.recommended.vCPUs.max")
    fails(run("sig", "image-definition", "update", "-r", "g", "-i", "nope", "--description", "x"),
          NOT_FOUND, "image definition 'g/nope' not found")


def test_definition_delete(gal):
    run = gal
    mkdef(run, "g", "d", "P", "O", "S")
    assert run("sig", "image-definition", "delete", "-r", "g", "-i", "d").exit_code == 0
    fails(run("sig", "image-definition", "delete", "-r", "g", "-i", "d"), NOT_FOUND)
    assert run.json("sig", "image-definition", "list", "-r", "g") == []


def _commands(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_help_has_example(run):
    cmds = [c for c in _commands(cli) if c[0] in ("sig", "disk")]
    assert len(cmds) >= 20
    for c in cmds:
        r = run(*c, "--help")
        assert r.exit_code == 0, c
        assert "Example:" in r.stdout, c
        assert "imagestore " + " ".join(c) in r.stdout, c
        assert "--query" in r.stdout and "--output" in r.stdout, c
