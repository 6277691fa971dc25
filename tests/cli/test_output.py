"""Output formats and global flags as az has them: -o yaml is YAML (parsed back), -o table has
az's columns (no Id/Type, narrow), -o tsv follows knack's rules, and --only-show-errors /
--verbose / --debug work before or after the command."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from imagestore.cli import output
from imagestore.cli.main import main
from imagestore.gallery import GalleryService
from tests.helpers import make_random, run_with_tty_stderr


@pytest.fixture
def gal(run, tmp_path):
    run.json("sig", "create", "-r", "myGallery", "--description", "team images", "--tags", "a=b")
    run.json("sig", "create", "-r", "other", "-g", "rg2")
    run.json("sig", "image-definition", "create", "-r", "myGallery", "-i", "ubuntu-22.04",
             "-p", "Canonical", "-f", "UbuntuServer", "-s", "22_04-lts-gen2",
             "--os-type", "Linux", "--hyper-v-generation", "V2")
    src = make_random(str(tmp_path / "os.raw"), 1, seed=3)
    for v in ("1.0.0", "10.20.300"):
        run.json("sig", "image-version", "create", "-r", "myGallery", "-i", "ubuntu-22.04",
                 "-e", v, "--os-vhd-uri", src)
    run.src = src
    return run


VLIST = ("sig", "image-version", "list", "-r", "myGallery", "-i", "ubuntu-22.04")
DLIST = ("sig", "image-definition", "list", "-r", "myGallery")


def table(run, *args) -> list[str]:
    r = run(*args, "-o", "table")
    assert r.exit_code == 0, r.stderr
    return r.stdout.rstrip("\n").split("\n")


def test_yaml_is_yaml(gal):
    run = gal
    for args in (("sig", "show", "-r", "myGallery"), ("sig", "list"), VLIST, DLIST):
        y = run(*args, "-o", "yaml")
        assert y.exit_code == 0
        assert not y.stdout.lstrip().startswith(("{", "["))  # block style, not JSON
        assert yaml.safe_load(y.stdout) == run.json(*args)
    # --query results too, and scalars
    y = run(*VLIST, "--query", "[].name", "-o", "yaml")
    assert yaml.safe_load(y.stdout) == ["1.0.0", "10.20.300"]
    assert y.stdout == "- 1.0.0\n- 10.20.300\n"
    y = run("sig", "show", "-r", "myGallery", "--query", "properties.description", "-o", "yaml")
    assert yaml.safe_load(y.stdout) == "team images"


def test_tables_have_azs_columns_and_fit(gal):
    run = gal
    g = table(run, "sig", "list")
    assert g[0].split() == ["Name", "ResourceGroup", "Location", "ProvisioningState"]
    assert g[2].split() == ["myGallery", "default", "local", "Succeeded"]
    assert g[3].split() == ["other", "rg2", "local", "Succeeded"]
    d = table(run, *DLIST)
    assert d[0].split() == ["Name", "ResourceGroup", "Location", "OsType", "OsState", "Publisher",
                            "Offer", "Sku", "HyperVGeneration"]
    assert d[2].split() == ["ubuntu-22.04", "default", "local", "Linux", "Generalized",
                            "Canonical", "UbuntuServer", "22_04-lts-gen2", "V2"]
    v = table(run, *VLIST)
    assert v[0].split() == ["Name", "ResourceGroup", "Location", "ProvisioningState",
                            "ExcludeFromLatest", "TargetRegions"]
    assert [row.split()[0] for row in v[2:]] == ["1.0.0", "10.20.300"]
    e = table(run, "sig", "image-version", "show", "-r", "myGallery", "-i", "ubuntu-22.04",
              "-e", "1.0.0", "--expand", "ReplicationStatus")
    assert e[0].split()[-1] == "ReplicationState" and e[2].split()[-1] == "Completed"
    for t in (g, d, v, e):
        assert "Id" not in t[0].split() and "Type" not in t[0].split()
        assert max(len(line) for line in t) < 120, t
        assert set(t[1]) <= {"-", " "}


def test_table_under_query_and_for_plain_outputs(gal):
    run = gal
    t = table(run, *VLIST, "--query", "[].{name: name, state: properties.provisioningState}")
    assert t[0].split() == ["Name", "State"] and t[2].split() == ["1.0.0", "Succeeded"]
    t = table(run, *VLIST, "--query", "[].name")
    assert t == ["Result", "---------", "1.0.0", "10.20.300"]
    t = table(run, *VLIST, "--query", "[].[name, location]")
    assert t[0].split() == ["Column1", "Column2"]
    # a resource queried whole keeps az's auto columns: scalars only, never id/type
    t = table(run, "sig", "show", "-r", "myGallery", "--query", "@")
    assert t[0].split() == ["Name", "Location", "Description", "ProvisioningState"]
    assert run("sig", "image-definition", "list", "-r", "other", "-g", "rg2", "-o", "table").stdout == ""
    s = table(run, "store", "stats")
    assert "DedupRatio" in s[0] and "Store" in s[0]


def test_tsv_as_az(gal):
    run = gal
    r = run("sig", "show", "-r", "myGallery", "-o", "tsv")
    gid = run.json("sig", "show", "-r", "myGallery")["id"]
    # keys in order; a nested object is an empty field; id, location, name, properties, tags, type
    assert r.stdout == f"{gid}\tlocal\tmyGallery\t\t\tMicrosoft.Compute/galleries\n"
    r = run(*VLIST, "--query", "[].[name, properties.publishingProfile.excludeFromLatest, "
                               "properties.publishingProfile.targetRegions]", "-o", "tsv")
    assert r.stdout == "1.0.0\tFalse\t1\n10.20.300\tFalse\t1\n"  # a list counts its items
    r = run(*VLIST, "--query", "[0].properties.publishingProfile.excludeFromLatest", "-o", "tsv")
    assert r.stdout == "false\n"
    r = run(*VLIST, "--query", "[].{v: name, n: properties.publishingProfile.replicaCount}",
            "-o", "tsv")
    assert r.stdout == "1.0.0\t1\n10.20.300\t1\n"  # a --query object keeps its own order


def test_render_helpers():
    assert output.resource_group("/subscriptions/s/resourceGroups/RG1/providers/x/y/z") == "RG1"
    assert output.resource_group("not an id") is None
    assert output.render([], "table") is None
    assert output.render(None, "yaml") is None
    assert output.render({"b": 1, "a": [1, 2]}, "tsv") == "2\t1"
    assert output.render({"b": 1, "a": [1, 2]}, "tsv", query_active=True) == "1\t2"
    assert output.render({"x": None, "id": "i", "etag": "e", "n": 2}, "table") == "N\n-\n2"


def test_global_flags_before_or_after_the_command(gal, monkeypatch):
    run = gal
    for argv in (("--verbose", "sig", "show", "-r", "myGallery"),
                 ("sig", "show", "-r", "myGallery", "--verbose")):
        r = run(*argv)
        assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "myGallery"
        assert r.stderr.startswith("INFO: Command ran in ") and r.stderr.endswith(" seconds\n")
    r = run("sig", "update", "-r", "myGallery", "--set", "description=x", "--debug", "-o", "none")
    assert r.exit_code == 0 and r.stdout == ""
    assert "DEBUG: imagestore.gallery.patch: set description=x\n" in r.stderr
    r = run("--only-show-errors", "sig", "show", "-r", "myGallery")
    assert r.exit_code == 0 and r.stderr == ""
    # warnings of the library are shown (az's "WARNING: ") unless --only-show-errors
    orig = GalleryService.show_gallery

    def noisy(self, rg, name, **kw):
        logging.getLogger("imagestore.gallery").warning("something to know")
        return orig(self, rg, name, **kw)

    monkeypatch.setattr(GalleryService, "show_gallery", noisy)
    assert run("sig", "show", "-r", "myGallery").stderr == "WARNING: something to know\n"
    assert run("sig", "show", "-r", "myGallery", "--only-show-errors").stderr == ""
    # errors are never suppressed
    r = run("sig", "show", "-r", "nope", "--only-show-errors")
    assert r.exit_code == 4 and r.stderr.startswith("error: gallery 'nope' not found")


def test_debug_prints_a_traceback_for_internal_errors(gal, monkeypatch, capsys):
    def broken(self, rg, name, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(GalleryService, "show_gallery", broken)
    argv = ["--store", gal.store, "sig", "show", "-r", "myGallery"]
    monkeypatch.delenv("IMAGESTORE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 1 and err == "error: internal error: RuntimeError: boom\n"
    with pytest.raises(SystemExit) as e:
        main([*argv, "--debug"])
    err = capsys.readouterr().err
    assert e.value.code == 1
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert err.endswith("error: internal error: RuntimeError: boom\n")


def test_only_show_errors_hides_progress_bars(tmp_path):
    src = make_random(str(tmp_path / "d.raw"), 4, seed=5)
    store = str(tmp_path / "s")
    rc, _out, err = run_with_tty_stderr(["--store", store, "store", "ingest", src])
    assert rc == 0 and "ingest [" in err
    rc, _out, err = run_with_tty_stderr(["--store", store, "store", "ingest", src,
                                         "--only-show-errors"])
    assert rc == 0 and err == ""
