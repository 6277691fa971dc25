"""Export grants on disks: ActiveSAS while granted, one grant per disk, revoke, expiry,
deletion refused while exported, bad requests named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imagestore.errors import Conflict, InvalidArgument, NotFound, OperationNotAllowed
from imagestore.gallery import disk_access
from imagestore.home import Home
from imagestore.worker import open_gallery

MiB = 1 << 20


@pytest.fixture
def svc(run, tmp_path):
    src = tmp_path / "os.raw"
    with open(src, "wb") as f:
        f.truncate(4 * MiB)
        f.seek(MiB)
        f.write(b"\x5a" * 70000)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", str(src))
    run.json("disk", "create", "-n", "d1", "--gallery-image-reference", "g/d/1.0.0",
             "--format", "vhdx")
    s = open_gallery(Home.open(run.store, create=False))
    yield s
    s.close()


def test_grant_revoke_and_state(svc, run):
    assert svc.disks.show("default", "d1")["properties"]["diskState"] == "Unattached"
    g = svc.disk_access.grant("default", "d1", "a" * 32, access="read", duration_in_seconds=60)
    assert g.access == "Read" and g.disk_id.endswith("/disks/d1")
    shown = svc.disks.show("default", "d1")
    assert shown["properties"]["diskState"] == "ActiveSAS"
    assert "_access" not in shown["properties"]  # the grant is never part of the JSON
    assert run.json("disk", "show", "-n", "d1")["properties"]["diskState"] == "ActiveSAS"
    row, held = svc.disk_access.holder("a" * 32)
    assert row.name == "d1" and held == g
    with pytest.raises(OperationNotAllowed, match="revoke it first"):
        svc.disks.delete("default", "d1")
    # a new grant replaces the old one
    svc.disk_access.grant("default", "d1", "b" * 32, duration_in_seconds=60)
    assert svc.disk_access.holder("a" * 32) is None
    assert svc.disk_access.revoke("default", "d1") is True
    assert svc.disk_access.revoke("default", "d1") is False
    assert svc.disk_access.holder("b" * 32) is None
    assert svc.disks.show("default", "d1")["properties"]["diskState"] == "Unattached"
    svc.disks.delete("default", "d1")


def test_expired_grant_reads_as_none(svc):
    past = datetime.now(UTC) - timedelta(hours=2)
    g = svc.disk_access.grant("default", "d1", "c" * 32, duration_in_seconds=60, now=past)
    assert not g.active()
    assert svc.disks.show("default", "d1")["properties"]["diskState"] == "Unattached"
    row, _ = svc.disk_access.holder("c" * 32)  # still recorded: the SAS check says "expired"
    disk_access.check_deletable(row)  # an expired grant does not block deletion


@pytest.mark.parametrize("kw, err, needle", [
    ({"access": "Write", "duration_in_seconds": 60}, OperationNotAllowed, "Upload"),
    ({"access": "None", "duration_in_seconds": 60}, InvalidArgument, "grants nothing"),
    ({"access": "Delete", "duration_in_seconds": 60}, InvalidArgument, "access"),
    ({"duration_in_seconds": 0}, InvalidArgument, "durationInSeconds"),
    ({"duration_in_seconds": 2**31}, InvalidArgument, "durationInSeconds"),
    ({"duration_in_seconds": "60"}, InvalidArgument, "durationInSeconds"),
    ({"duration_in_seconds": True}, InvalidArgument, "durationInSeconds"),
    ({"duration_in_seconds": 60, "file_format": "VHDX"}, InvalidArgument, "VHD only"),
    ({"duration_in_seconds": 60, "file_format": "qcow2"}, InvalidArgument, "fileFormat"),
])
def test_bad_grants(svc, kw, err, needle):
    with pytest.raises(err, match=needle):
        svc.disk_access.grant("default", "d1", "d" * 32, **kw)
    assert svc.disks.show("default", "d1")["properties"]["diskState"] == "Unattached"


def test_missing_disk(svc):
    with pytest.raises(NotFound):
        svc.disk_access.grant("default", "nope", "e" * 32, duration_in_seconds=60)
    with pytest.raises(NotFound):
        svc.disk_access.revoke("default", "nope")


def test_attached_disk_is_refused(svc):
    row = svc.repo.disk("default", "d1")
    props = row.properties
    props["diskState"] = "Attached"
    with svc.repo.transaction():
        svc.repo.update_disk_props(row.id, props)
    with pytest.raises(Conflict, match="Attached"):
        svc.disk_access.grant("default", "d1", "f" * 32, duration_in_seconds=60)


def test_export_view_is_the_disk_as_vhd(svc, tmp_path):
    row = svc.repo.disk("default", "d1")
    view = disk_access.export_view(row)
    try:
        assert view.size == 4 * MiB + 512
        assert view.read(MiB, 70000) == b"\x5a" * 70000
        again = disk_access.export_view(row)
        assert again.footer == view.footer  # stable across requests
        again.reader.close()
    finally:
        view.reader.close()
