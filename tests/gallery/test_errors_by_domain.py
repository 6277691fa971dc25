"""Errors by domain: the gallery library names fields in the resource JSON's terms (``target``)
with an ARM code, never a CLI flag; the CLI maps targets to the flags the user typed; read-only
commands never create a store (issue 10 item 8)."""

from __future__ import annotations

import os

import pytest

from imagestore.cli.targets import TARGET_FLAGS, flag_for
from imagestore.errors import (
    ImagestoreError,
    InvalidArgument,
    NotFound,
    OperationNotAllowed,
    PropertyChangeNotAllowed,
)
from imagestore.gallery import GalleryService
from imagestore.home import Home
from tests.helpers import fails

MiB = 1 << 20


@pytest.fixture
def svc(run, tmp_path):
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    src = tmp_path / "s.raw"
    src.write_bytes(os.urandom(MiB))
    home = Home.open(run.store)
    s = GalleryService(home)
    s.src = str(src)
    yield s
    s.close()
    home.close()


def raised(fn, *a, **kw) -> ImagestoreError:
    with pytest.raises(ImagestoreError) as ei:
        fn(*a, **kw)
    return ei.value


@pytest.mark.parametrize(
    ("kw", "cls", "code", "target"),
    [
        ({}, InvalidArgument, "InvalidParameter", "properties.storageProfile.osDiskImage.source.uri"),
        ({"os_vhd_uri": "/nonexistent.vhd"}, NotFound, "ResourceNotFound",
         "properties.storageProfile.osDiskImage.source.uri"),
        ({"os_vhd_uri": "S", "target_regions": ["mars"]}, NotFound, "ResourceNotFound",
         "properties.publishingProfile.targetRegions"),
        ({"os_vhd_uri": "S", "target_regions": ["west"]}, NotFound, "ResourceNotFound",
         "properties.publishingProfile.targetRegions"),
        ({"os_vhd_uri": "S", "data_vhds_uris": ["/x/y.raw"]}, NotFound, "ResourceNotFound",
         "properties.storageProfile.dataDiskImages[0].source.uri"),
        ({"os_vhd_uri": "S", "data_vhds_uris": ["S"], "data_vhds_luns": [70]}, InvalidArgument,
         "InvalidParameter", "properties.storageProfile.dataDiskImages[0].lun"),
        ({"os_vhd_uri": "S", "replica_count": 0}, InvalidArgument, "InvalidParameter",
         "properties.publishingProfile.replicaCount"),
        ({"os_vhd_uri": "S", "storage_account_type": "Tape"}, InvalidArgument, "InvalidParameter",
         "properties.publishingProfile.storageAccountType"),
        ({"os_vhd_uri": "S", "block_deletion_before_end_of_life": True}, InvalidArgument,
         "InvalidParameter", "properties.safetyProfile.blockDeletionBeforeEndOfLife"),
        ({"os_vhd_uri": "S", "location": "mars"}, NotFound, "ResourceNotFound", "location"),
        ({"image_version": "g/d/9.9.9"}, NotFound, "ResourceNotFound", "galleryImageVersionName"),
    ],
)
def test_library_errors_name_json_fields(svc, kw, cls, code, target):
    kw = {k: ([svc.src if x == "S" else x for x in v] if isinstance(v, list) else
              (svc.src if v == "S" else v)) for k, v in kw.items()}
    e = raised(svc.versions.create, "default", "g", "d", "1.0.0", **kw)
    assert type(e) is cls and e.code == code and e.target == target, (type(e), e.code, e.target)
    assert "--" not in e.message, e.message  # no CLI flag in a library message
    assert e.message.startswith(target.split("[")[0]) or target == "galleryImageVersionName"


def test_update_and_delete_errors_have_their_codes(svc):
    svc.versions.create("default", "g", "d", "1.0.0", os_vhd_uri=svc.src,
                        end_of_life_date="2099-01-01", block_deletion_before_end_of_life=True)
    e = raised(svc.versions.update, "default", "g", "d", "1.0.0",
               sets=["properties.publishingProfile.replicationMode=Shallow"])
    assert isinstance(e, PropertyChangeNotAllowed) and e.code == "PropertyChangeNotAllowed"
    assert e.target == "properties.publishingProfile.replicationMode" and e.exit_code == 5
    e = raised(svc.versions.delete, "default", "g", "d", "1.0.0")
    assert isinstance(e, OperationNotAllowed) and e.code == "OperationNotAllowed"
    assert e.target == "properties.safetyProfile.blockDeletionBeforeEndOfLife"
    # the safety flag can be changed by update; then the version is deletable
    v = svc.versions.update("default", "g", "d", "1.0.0", block_deletion_before_end_of_life=False)
    assert v["properties"]["safetyProfile"]["blockDeletionBeforeEndOfLife"] is False
    svc.versions.delete("default", "g", "d", "1.0.0")
    e = raised(svc.definitions.show, "default", "g", "nope")
    assert isinstance(e, NotFound) and e.target == "galleryImageName"


def test_every_target_maps_to_one_flag():
    targets = [t for t, _f in TARGET_FLAGS]
    assert len(targets) == len(set(targets))
    assert flag_for("properties.publishingProfile.targetRegions[2].regionalReplicaCount") == (
        "properties.publishingProfile.targetRegions", "--target-regions")
    assert flag_for("properties.storageProfile.dataDiskImages[3].source.uri") == (
        "properties.storageProfile.dataDiskImages[3].source.uri", "--data-vhds-uris")
    assert flag_for("properties.recommended.vCPUs.min") == (
        "properties.recommended.vCPUs.min", "--minimum-cpu-core")
    assert flag_for("properties.osTypeX") is None
    assert flag_for("nothing.here") is None


def test_cli_maps_targets_to_the_flags_typed(svc, run):
    c = ["sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0"]
    fails(run(*c), 3, "error: --os-vhd-uri: required (or properties.storageProfile.source.id")
    fails(run(*c, "--os-vhd-uri", svc.src, "--data-vhds-uris", "/x/2.raw"), 4,
          "error: --data-vhds-uris: /x/2.raw: no such file")
    fails(run(*c, "--os-vhd-uri", svc.src, "--target-regions", "local=0"), 3,
          "error: --target-regions: local: '0' must be an integer from 1 to 100")
    assert run(*c, "--os-vhd-uri", svc.src).exit_code == 0
    u = ["sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0"]
    # the value came from --set: the message keeps the path the user wrote
    fails(run(*u, "--set", "properties.publishingProfile.targetRegions[0].regionalReplicaCount=0"),
          3, "error: properties.publishingProfile.targetRegions[0].regionalReplicaCount: '0'")
    fails(run(*u, "--target-regions", "local", "mars"), 4,
          "error: --target-regions: region 'mars' not found")
    fails(run("disk", "create", "-n", "x", "--gallery-image-reference", "g/d",
              "--gallery-image-reference-lun", "3"), 4,
          "error: --gallery-image-reference-lun: image version", "has no data disk image with LUN 3")


@pytest.mark.parametrize(
    "args",
    [
        ["sig", "list"],
        ["sig", "show", "-r", "g"],
        ["sig", "image-definition", "list", "-r", "g"],
        ["sig", "image-definition", "show", "-r", "g", "-i", "d"],
        ["sig", "image-version", "list", "-r", "g", "-i", "d"],
        ["sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0"],
        ["sig", "image-version", "wait", "-r", "g", "-i", "d", "-e", "1.0.0", "--created"],
        ["disk", "list"],
        ["disk", "show", "-n", "x"],
    ],
)
def test_read_only_commands_never_create_a_store(run, tmp_path, args):
    typo = tmp_path / "typo"
    fails(run("--store", str(typo), *args, store=False), 8, "no imagestore store at", str(typo))
    assert not typo.exists()


def test_python_m_imagestore_worker(run, tmp_path):
    """The worker runs as its own module (the library never starts the CLI): a missing store
    is exit 8 and nothing is created; on a store it takes the lease and reports its run."""
    import json
    import subprocess
    import sys

    typo = tmp_path / "typo"
    p = subprocess.run([sys.executable, "-m", "imagestore.worker", "--store", str(typo), "--once"],
                       capture_output=True, text=True)
    assert p.returncode == 8 and p.stderr.startswith("error: ") and not typo.exists(), p.stderr
    run.json("sig", "create", "-r", "g")
    p = subprocess.run([sys.executable, "-m", "imagestore.worker", "--store", run.store, "--once",
                        "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"ran": 0, "leaseHeldBy": None, "pending": 0}
