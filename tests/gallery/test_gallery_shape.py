"""Shape check against a real client: azure-mgmt-compute deserializes our JSON for Gallery,
GalleryImage, GalleryImageVersion (and Disk) with every value intact, and serializing those
models gives back the same property names and values.

azure-mgmt-compute >= 35 generates mapping-based models: ``Model(json)`` deserializes and
``model.as_dict()`` serializes (the older msrest ``Model.deserialize``/``serialize`` are gone).
The test reads every value through the typed attributes and rebuilds a fresh model from those
attributes alone, so a name the SDK does not know, or a value it reads differently, fails.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

models = pytest.importorskip("azure.mgmt.compute.models")
from azure.mgmt.compute._utils.model_base import Model  # noqa: E402

MiB = 1 << 20
#: our clearly named local extras: not Azure properties, so not checked against the SDK
LOCAL_EXTRAS = {"localStorage"}


def rest_fields(obj: Model) -> dict[str, str]:
    return {f._rest_name: attr for attr, f in obj._attr_to_rest_field.items()}


def check_intact(obj, data, path="$") -> None:
    """Every key of ``data`` is a known REST property of ``obj`` and reads back equal."""
    if isinstance(obj, Model):
        assert isinstance(data, dict), path
        fields = rest_fields(obj)
        for key, val in data.items():
            if key in LOCAL_EXTRAS and path.endswith(".properties"):
                continue
            assert key in fields, f"{path}.{key}: unknown to {type(obj).__name__}"
            check_intact(getattr(obj, fields[key]), val, f"{path}.{key}")
    elif isinstance(obj, list):
        assert isinstance(data, list) and len(obj) == len(data), path
        for i, (o, d) in enumerate(zip(obj, data, strict=True)):
            check_intact(o, d, f"{path}[{i}]")
    elif isinstance(obj, dt.datetime):
        assert obj == dt.datetime.fromisoformat(data), path
    else:
        if hasattr(obj, "value") and not isinstance(obj, (str, int)):  # an enum
            obj = obj.value
        assert obj == data, (path, obj, data)


def rebuild(obj):
    """A fresh model built from the typed attribute values only (keyword construction)."""
    if isinstance(obj, Model):
        kw = {}
        for attr, f in obj._attr_to_rest_field.items():
            if f._rest_name in obj and f._rest_name not in LOCAL_EXTRAS:
                kw[attr] = rebuild(getattr(obj, attr))
        return type(obj)(**kw)
    if isinstance(obj, list):
        return [rebuild(x) for x in obj]
    if isinstance(obj, dict):
        return {k: rebuild(v) for k, v in obj.items()}
    return obj


def normalize(data):
    """Our JSON minus local extras, dates as datetimes (the SDK writes 'Z' for '+00:00')."""
    if isinstance(data, dict):
        return {k: normalize(v) for k, v in data.items() if k not in LOCAL_EXTRAS}
    if isinstance(data, list):
        return [normalize(v) for v in data]
    if isinstance(data, str) and len(data) >= 20 and data[4] == "-" and data[10] == "T":
        return dt.datetime.fromisoformat(data)
    return data


def roundtrip(cls, data: dict) -> None:
    model = cls(data)
    check_intact(model, data)
    again = rebuild(model).as_dict()
    assert normalize(again) == normalize(data)


def test_azure_models_roundtrip(run, tmp_path):
    src = tmp_path / "os.raw"
    with open(src, "wb") as f:
        f.truncate(2 * MiB)
        f.write(b"\x5a" * 4096)
    data = tmp_path / "data.raw"
    with open(data, "wb") as f:
        f.truncate(MiB)
        f.seek(8192)
        f.write(b"\xa5" * 4096)
    g = run.json("sig", "create", "-r", "g", "--description", "d", "--tags", "a=b")
    roundtrip(models.Gallery, g)
    i = run.json(
        "sig", "image-definition", "create", "-r", "g", "-i", "img", "-p", "P", "-f", "O", "-s",
        "S", "--os-type", "Windows", "--os-state", "Specialized", "--hyper-v-generation", "V2",
        "--architecture", "Arm64", "--features", "SecurityType=TrustedLaunchSupported",
        "IsAcceleratedNetworkSupported=True", "DiskControllerTypes=SCSI,NVMe",
        "IsHibernateSupported=False", "--description", "x", "--eula", "e",
        "--privacy-statement-uri", "https://p", "--release-note-uri", "https://r",
        "--end-of-life-date", "2099-06-30", "--minimum-cpu-core", "1", "--maximum-cpu-core", "4",
        "--minimum-memory", "1", "--maximum-memory", "16", "--disallowed-disk-types",
        "Standard_LRS", "--plan-publisher", "pp", "--plan-name", "pn", "--plan-product", "pr",
        "--tags", "t=1",
    )
    roundtrip(models.GalleryImage, i)
    m = models.GalleryImage(i)
    assert m.properties.identifier.publisher == "P"
    assert m.properties.recommended.v_cp_us.max == 4
    assert m.properties.features[0].name == "SecurityType"
    assert m.properties.purchase_plan.product == "pr"
    v = run.json("sig", "image-version", "create", "-r", "g", "-i", "img", "-e", "1.2.3",
                 "--os-vhd-uri", str(src), "--data-vhds-uris", str(data), "--data-vhds-luns", "4",
                 "--end-of-life-date", "2099-01-01", "--block-deletion-before-end-of-life",
                 "--replication-mode", "Shallow", "--exclude-from-latest")
    roundtrip(models.GalleryImageVersion, v)
    run.json("sig", "image-version", "update", "-r", "g", "-i", "img", "-e", "1.2.3", "--set",
             "properties.publishingProfile.targetRegions[0].excludeFromLatest=false")
    ve = run.json("sig", "image-version", "show", "-r", "g", "-i", "img", "-e", "1.2.3",
                  "--expand", "ReplicationStatus")
    roundtrip(models.GalleryImageVersion, ve)
    mv = models.GalleryImageVersion(ve)
    pp = mv.properties.publishing_profile
    assert pp.target_regions[0].regional_replica_count == 1
    assert pp.target_regions[0].exclude_from_latest is False
    assert pp.exclude_from_latest is True and pp.replication_mode == "Shallow"
    assert pp.end_of_life_date == dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    assert mv.properties.safety_profile.block_deletion_before_end_of_life is True
    assert mv.properties.storage_profile.data_disk_images[0].lun == 4
    assert mv.properties.storage_profile.os_disk_image.source.uri == src.as_uri()
    assert mv.properties.replication_status.aggregated_state == "Completed"
    assert mv.properties.replication_status.summary[0].progress == 100
    c = run.json("sig", "image-version", "create", "-r", "g", "-i", "img", "-e", "1.2.4",
                 "--image-version", "g/img/1.2.3")
    roundtrip(models.GalleryImageVersion, c)
    assert models.GalleryImageVersion(c).properties.storage_profile.source.id == v["id"]
    d = run.json("disk", "create", "-n", "disk1", "--gallery-image-reference", "g/img/1.2.3",
                 "--gallery-image-reference-lun", "4", "--format", "vhdx")
    roundtrip(models.Disk, d)
    md = models.Disk(d)
    assert md.properties.creation_data.gallery_image_reference.lun == 4
    assert md.properties.disk_size_bytes == MiB
    assert os.path.exists(d["properties"]["localStorage"]["path"])
