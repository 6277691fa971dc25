"""The generic-update engine (imagestore.gallery.patch) on resource JSON, against the real
property tree of the SDK models (arm_shape): az's path rules, the three operations, and
refusals that name the JSON path and never a CLI flag."""

from __future__ import annotations

import copy

import pytest

from imagestore.errors import InvalidArgument
from imagestore.gallery import arm_shape, patch
from imagestore.gallery.patch import Op, PatchError

VERSION = {
    "id": "/subscriptions/0/resourceGroups/default/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0",
    "name": "1.0.0",
    "location": "local",
    "tags": {"Keep": "me"},
    "properties": {
        "publishingProfile": {
            "targetRegions": [
                {"name": "local", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"},
                {"name": "west", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"},
            ],
            "replicaCount": 1,
            "excludeFromLatest": False,
        },
        "safetyProfile": {"blockDeletionBeforeEndOfLife": True},
        "localStorage": {"region": "local"},
    },
}


def apply(*ops, doc=None) -> dict:
    d = copy.deepcopy(VERSION if doc is None else doc)
    return patch.apply(d, list(ops), arm_shape.VERSION)


def refused(op, operation: str, message: str, target: str | None = None) -> PatchError:
    before = copy.deepcopy(VERSION)
    with pytest.raises(PatchError) as e:
        apply(op)
    err = e.value
    assert isinstance(err, InvalidArgument) and err.exit_code == 3
    assert err.operation == operation
    assert err.message == message
    assert err.target == target
    assert "--" not in err.message  # library messages never name a flag
    assert VERSION == before
    return err


def pp(doc: dict) -> dict:
    return doc["properties"]["publishingProfile"]


def test_set_flattened_and_full_paths_are_the_same_property():
    a = apply(Op("set", ("publishingProfile.excludeFromLatest=true",)))
    b = apply(Op("set", ("properties.publishingProfile.excludeFromLatest=true",)))
    c = apply(Op("set", ("PUBLISHINGPROFILE.ExcludeFromLatest=true",)))  # az: case-insensitive
    assert a == b == c
    assert pp(a)["excludeFromLatest"] is True and "publishingProfile" not in a


def test_set_values_are_json_unless_force_string():
    d = apply(Op("set", ("publishingProfile.replicaCount=3", 'tags.obj={"a": [1, 2]}',
                         "tags.word=hello world", "tags.eq=a=b")))
    assert pp(d)["replicaCount"] == 3
    assert d["tags"] == {"Keep": "me", "obj": {"a": [1, 2]}, "word": "hello world", "eq": "a=b"}
    d = apply(Op("set", ("publishingProfile.replicaCount=3", "tags.t=true"), force_string=True))
    assert pp(d)["replicaCount"] == "3" and d["tags"]["t"] == "true"
    d = apply(Op("set", ("safetyProfile.blockDeletionBeforeEndOfLife=null",)))
    assert d["properties"]["safetyProfile"] == {}  # null removes, as the SDK drops a None


def test_set_indexes_and_key_filters():
    d = apply(Op("set", ("publishingProfile.targetRegions[1].regionalReplicaCount=2",
                         "publishingProfile.targetRegions[-2].storageAccountType=Premium_LRS",
                         "publishingProfile.targetRegions[name=WEST].excludeFromLatest=true")))
    local, west = pp(d)["targetRegions"]
    assert local["storageAccountType"] == "Premium_LRS"
    assert west["regionalReplicaCount"] == 2 and west["excludeFromLatest"] is True
    refused(Op("set", ("publishingProfile.targetRegions[2].name=x",)), "set",
            "index [2] out of range in 'properties.publishingProfile.targetRegions' (2 item(s))",
            "properties.publishingProfile.targetRegions")
    refused(Op("set", ("publishingProfile.targetRegions[name=east].name=x",)), "set",
            "no item of 'properties.publishingProfile.targetRegions' has name=east",
            "properties.publishingProfile.targetRegions")
    refused(Op("set", ("publishingProfile.targetRegions[regionalReplicaCount=1].name=x",)),
            "set", "2 items of 'properties.publishingProfile.targetRegions' have "
                   "regionalReplicaCount=1; the key must be unique",
            "properties.publishingProfile.targetRegions")


def test_set_creates_missing_parents_and_keeps_map_keys_as_written():
    d = apply(Op("set", ("storageProfile.osDiskImage.hostCaching=ReadOnly", "tags.MiXeD=1")))
    assert d["properties"]["storageProfile"] == {"osDiskImage": {"hostCaching": "ReadOnly"}}
    assert d["tags"]["MiXeD"] == 1


def test_unknown_properties_are_refused_with_their_json_path():
    refused(Op("set", ("properties.foo=1",)), "set", "unknown property 'properties.foo'",
            "properties.foo")
    refused(Op("set", ("foo=1",)), "set", "unknown property 'foo'", "foo")
    refused(Op("set", ("publishingProfile.targetRegions[0].nme=x",)), "set",
            "unknown property 'properties.publishingProfile.targetRegions[0].nme'",
            "properties.publishingProfile.targetRegions[0].nme")
    refused(Op("set", ('publishingProfile={"replicaCount": 1, "bogus": 2}',)), "set",
            "unknown property 'properties.publishingProfile.bogus'",
            "properties.publishingProfile.bogus")
    refused(Op("set", ("publishingProfile.replicaCount.deeper=1",)), "set",
            "unknown property 'properties.publishingProfile.replicaCount.deeper' "
            "('properties.publishingProfile.replicaCount' has no properties)",
            "properties.publishingProfile.replicaCount.deeper")
    # imagestore's own subtree is known as a whole (the service refuses changing it)
    assert apply(Op("set", ("localStorage.anything=1",)))["properties"]["localStorage"][
        "anything"] == 1


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("noequals", "'noequals' is not PATH=VALUE"),
        ("=1", "'=1' has an empty path (PATH=VALUE)"),
        ("a..b=1", "'a..b' is not a property path (empty name; e.g. "
                   "publishingProfile.targetRegions[0].name)"),
        ("a[x=1", "'a[x=1' is not PATH=VALUE"),  # the = is inside the open bracket
        ("a]=1", "'a]' is not a property path (unexpected ']'; e.g. "
                 "publishingProfile.targetRegions[0].name)"),
        ("tags.[zz]=1", "'tags.[zz]' is not a property path ('[zz]' is neither an index nor "
                        "[key=value]; e.g. publishingProfile.targetRegions[0].name)"),
    ],
)
def test_malformed_set_expressions(expr, message):
    refused(Op("set", (expr,)), "set", message)


def test_add_key_value_pairs_and_json_items():
    d = apply(Op("add", ("publishingProfile.targetRegions", "name=east",
                         "regionalReplicaCount=2")))
    assert pp(d)["targetRegions"][2] == {"name": "east", "regionalReplicaCount": 2}
    d = apply(Op("add", ("publishingProfile.targetRegions",
                         '{"name": "east", "storageAccountType": "Standard_ZRS"}',
                         "name=north", "excludeFromLatest=true")))
    assert [t["name"] for t in pp(d)["targetRegions"]] == ["local", "west", "east", "north"]
    assert pp(d)["targetRegions"][3]["excludeFromLatest"] is True
    d = apply(Op("add", ("publishingProfile.targetRegions", "name=east",
                         "regionalReplicaCount=2"), force_string=True))
    assert pp(d)["targetRegions"][2]["regionalReplicaCount"] == "2"
    # a list that is not there yet is created (az), a key outside the item's model is refused
    d = apply(Op("add", ("storageProfile.dataDiskImages", "lun=1", "hostCaching=None")))
    assert d["properties"]["storageProfile"]["dataDiskImages"] == [{"lun": 1, "hostCaching": "None"}]
    refused(Op("add", ("publishingProfile.targetRegions", "nme=east")), "add",
            "unknown property 'properties.publishingProfile.targetRegions[2].nme'",
            "properties.publishingProfile.targetRegions[2].nme")
    refused(Op("add", ("tags", "a=b")), "add",
            "'tags' is not a list (set its properties instead)", "tags")
    refused(Op("add", ("publishingProfile.targetRegions",)), "add",
            "'publishingProfile.targetRegions' needs a list path and at least one item "
            "(key=value pairs or JSON)")


def test_remove_properties_map_keys_and_list_items():
    d = apply(Op("remove", ("tags.Keep",)))
    assert d["tags"] == {}
    d = apply(Op("remove", ("publishingProfile.targetRegions", "0")))
    assert [t["name"] for t in pp(d)["targetRegions"]] == ["west"]
    d = apply(Op("remove", ("publishingProfile.targetRegions[name=west]",)))
    assert [t["name"] for t in pp(d)["targetRegions"]] == ["local"]
    d = apply(Op("remove", ("safetyProfile",)))
    assert "safetyProfile" not in d["properties"]
    assert apply(Op("remove", ("publishingProfile.endOfLifeDate",))) == VERSION  # known, unset
    refused(Op("remove", ("tags.nothere",)), "remove", "'tags.nothere' does not exist", "tags.nothere")
    refused(Op("remove", ("publishingProfile.targetRegions", "5")), "remove",
            "index [5] out of range in 'properties.publishingProfile.targetRegions' (2 item(s))",
            "properties.publishingProfile.targetRegions")
    refused(Op("remove", ("publishingProfile.targetRegions", "one")), "remove",
            "'one' is not a list index")
    refused(Op("remove", ("publishingProfile.replicaCount", "0")), "remove",
            "'properties.publishingProfile.replicaCount' is not a list",
            "properties.publishingProfile.replicaCount")
    refused(Op("remove", ("tags[0",)), "remove", "'tags[0' is not a property path "
            "(unclosed '['; e.g. publishingProfile.targetRegions[0].name)")
    refused(Op("remove", ("publishingProfile.bogus",)), "remove",
            "unknown property 'properties.publishingProfile.bogus'",
            "properties.publishingProfile.bogus")


def test_operations_apply_in_the_order_given():
    d = apply(Op("set", ("tags.a=1",)), Op("remove", ("tags.a",)))
    assert "a" not in d["tags"]
    d = apply(Op("add", ("publishingProfile.targetRegions", "name=east")),
              Op("set", ("publishingProfile.targetRegions[2].regionalReplicaCount=4",)),
              Op("remove", ("publishingProfile.targetRegions", "0")))
    assert pp(d)["targetRegions"][1] == {"name": "east", "regionalReplicaCount": 4}
    # plain strings are set expressions (the library's simple form)
    assert apply("publishingProfile.replicaCount=2") == apply(
        Op("set", ("publishingProfile.replicaCount=2",)))


def test_gallery_and_definition_shapes():
    g = {"name": "g", "tags": {}, "properties": {"identifier": {"uniqueName": "x"}}}
    patch.apply(g, ["description=team", "softDeletePolicy.isSoftDeleteEnabled=true"], arm_shape.GALLERY)
    assert g["properties"]["description"] == "team"
    with pytest.raises(PatchError, match="unknown property 'properties.publishingProfile'"):
        patch.apply(g, ["properties.publishingProfile.x=1"], arm_shape.GALLERY)
    i = {"name": "d", "tags": {}, "properties": {}}
    patch.apply(i, ["recommended.vCPUs.max=8", "properties.recommended.memory.min=2"], arm_shape.IMAGE)
    assert i["properties"]["recommended"] == {"vCPUs": {"max": 8}, "memory": {"min": 2}}
