"""Unit checks of the gallery's ids, --set paths and SQLite metadata (migrations, WAL,
foreign keys, one transaction per change)."""

from __future__ import annotations

import sqlite3

import pytest

from imagestore.errors import InvalidArgument
from imagestore.gallery import db, ids, patch
from imagestore.gallery.ids import SUBSCRIPTION, ImageRef, parse_image_ref

BASE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.Compute/galleries/g/images/d"


def test_ids_format():
    assert ids.version_id(SUBSCRIPTION, "rg1", "g", "d", "1.0.0") == BASE + "/versions/1.0.0"
    assert ids.disk_id(SUBSCRIPTION, "rg1", "x").endswith("/resourceGroups/rg1/providers/Microsoft.Compute/disks/x")
    other = "11111111-1111-1111-1111-111111111111"
    assert ids.disk_id(other, "rg1", "x").startswith(f"/subscriptions/{other}/resourceGroups/rg1/")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (BASE + "/versions/1.0.0", ImageRef("rg1", "g", "d", "1.0.0", SUBSCRIPTION)),
        (BASE, ImageRef("rg1", "g", "d", None, SUBSCRIPTION)),
        (BASE + "/versions/latest", ImageRef("rg1", "g", "d", None, SUBSCRIPTION)),
        (BASE.lower().replace("/g/", "/g/") + "/VERSIONS/2.0.0",
         ImageRef("rg1", "g", "d", "2.0.0", SUBSCRIPTION)),
        ("g/d/1.0.0", ImageRef("default", "g", "d", "1.0.0")),
        ("g/d", ImageRef("default", "g", "d", None)),
        ("g/d/latest", ImageRef("default", "g", "d", None)),
    ],
)
def test_parse_refs(text, want):
    assert parse_image_ref(text) == want


@pytest.mark.parametrize(
    "text", ["", "g", "g/d/v/x", "g//v", "/subscriptions/x", BASE + "/versions",
             BASE.replace("Microsoft.Compute", "Microsoft.Storage"),
             BASE.replace("/images/", "/applications/")],
)
def test_parse_refs_invalid(text):
    with pytest.raises(InvalidArgument, match="^--ref: "):
        parse_image_ref(text, field="--ref")


def test_parse_ref_other_subscription():
    # parsing records the subscription; whoever resolves the ref checks it exists and holds
    # the resource group (resource_groups.check_ref; tests/gallery/test_subscriptions.py)
    other = "11111111-1111-1111-1111-111111111111"
    assert parse_image_ref(BASE.replace(SUBSCRIPTION, other)).subscription == other


def test_set_and_diff():
    doc = {"properties": {"a": {"b": 1}, "l": [{"x": 1}]}, "tags": {}}
    shape = {"properties": patch.ANY, "tags": {"*": None}}  # keys below ANY are not checked
    patch.apply(doc, ["properties.A.b=2"], shape)  # keys match case-insensitively
    patch.apply(doc, ["properties.l[0].x=true"], shape)
    patch.apply(doc, ['properties.new={"k": "v"}'], shape)
    patch.apply(doc, ["tags.t=text with = sign"], shape)
    assert doc == {"properties": {"a": {"b": 2}, "l": [{"x": True}], "new": {"k": "v"}},
                   "tags": {"t": "text with = sign"}}
    assert patch.diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3], "c": 0}) == ["b[1]", "c"]
    assert patch.under("properties.x.y[0]", ("properties.x",))
    assert not patch.under("properties.xy", ("properties.x",))
    for bad in ("noequals", "=1", "a..[x]=1"):
        with pytest.raises(patch.PatchError) as e:
            patch.apply({}, [bad], shape)
        assert e.value.operation == "set" and "--" not in e.value.message  # no flag names


def test_db_schema(tmp_path):
    path = str(tmp_path / "g.sqlite")
    con = db.connect(path)
    assert db.applied(con) == [name for name, _ in db.MIGRATIONS]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "regions" not in tables  # regions come from the region registry
    assert {"jobs", "worker_lease", "version_regions"} <= tables
    con.close()
    con = db.connect(path)  # reopening applies nothing twice
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(db.MIGRATIONS)
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are enforced
        with db.transaction(con):
            con.execute("INSERT INTO images(gallery_id, name, location, props, publisher, offer, "
                        "sku, created) VALUES (999, 'x', 'local', '{}', 'p', 'o', 's', 'now')")
    with pytest.raises(RuntimeError):  # a failing change is rolled back entirely
        with db.transaction(con):
            con.execute("INSERT INTO galleries(rg, name, location, props, created) "
                        "VALUES ('rg', 'g', 'local', '{}', 'now')")
            raise RuntimeError("boom")
    assert con.execute("SELECT count(*) FROM galleries").fetchone()[0] == 0
