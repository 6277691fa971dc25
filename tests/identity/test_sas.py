"""Disk export SAS URLs: signed with the store's key, refused when altered, expired, of
another store, or when their grant is no longer the disk's."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from imagestore.identity import sas

pytestmark = pytest.mark.one_pass  # no native/pure backend code involved

DISK = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _url(store, grant="a" * 32, expires=NOW + timedelta(hours=1)):
    return sas.make_url(store, "https://127.0.0.1:8443/", grant_id=grant, disk_id=DISK,
                        access="Read", expires=expires)


def test_round_trip_and_shape(tmp_path):
    url = _url(tmp_path)
    u = urlparse(url)
    assert u.path == "/md-impexp/" + "a" * 32 + "/abcd"
    q = parse_qs(u.query)
    assert q["sv"] == ["2018-03-28"] and q["sr"] == ["b"] and q["sp"] == ["r"]
    assert q["se"] == ["2026-12-02T13:00:00Z"]
    c = sas.verify(tmp_path, "a" * 32, u.query, DISK, now=NOW)
    assert c.disk_id == DISK and c.permissions == "r"
    # the key is a 0600 file in the store, in a 0700 directory
    key = os.path.join(tmp_path, "identity", sas.KEY_FILE)
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(key)).st_mode & 0o777 == 0o700


def _tamper(query: str, **change) -> str:
    q = {k: v[0] for k, v in parse_qs(query).items()}
    q.update(change)
    return urlencode(q)


@pytest.mark.parametrize("change", [
    {"se": "2027-12-02T13:00:00Z"}, {"sp": "rw"}, {"sig": "AAAA" + "B" * 40},
    {"sv": "2020-01-01"}, {"sr": "c"}, {"si": "b" * 32},
])
def test_tampered_is_rejected(tmp_path, change):
    q = urlparse(_url(tmp_path)).query
    with pytest.raises(sas.SasRejected):
        sas.verify(tmp_path, "a" * 32, _tamper(q, **change), DISK, now=NOW)


def test_missing_field_or_other_disk(tmp_path):
    q = urlparse(_url(tmp_path)).query
    stripped = "&".join(p for p in q.split("&") if not p.startswith("sig="))
    with pytest.raises(sas.SasRejected, match="sig"):
        sas.verify(tmp_path, "a" * 32, stripped, DISK, now=NOW)
    with pytest.raises(sas.SasRejected, match="did not match"):
        sas.verify(tmp_path, "a" * 32, q, DISK.replace("d1", "d2"), now=NOW)
    with pytest.raises(sas.SasRejected, match="revoked"):
        sas.verify(tmp_path, "a" * 32, q, None, now=NOW)


def test_expired(tmp_path):
    q = urlparse(_url(tmp_path)).query
    sas.verify(tmp_path, "a" * 32, q, DISK, now=NOW + timedelta(minutes=59))
    with pytest.raises(sas.SasRejected, match="expiry"):
        sas.verify(tmp_path, "a" * 32, q, DISK, now=NOW + timedelta(hours=1))


def test_another_store_key(tmp_path):
    q = urlparse(_url(tmp_path / "one")).query
    _url(tmp_path / "two")  # the other store has a key of its own
    with pytest.raises(sas.SasRejected, match="did not match"):
        sas.verify(tmp_path / "two", "a" * 32, q, DISK, now=NOW)
    with pytest.raises(sas.SasRejected, match="signed no SAS"):
        sas.verify(tmp_path / "three", "a" * 32, q, DISK, now=NOW)


def test_grant_ids_are_random():
    ids = {sas.new_grant_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 for i in ids)
