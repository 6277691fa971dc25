"""Shared access signatures for exported disks (``beginGetAccess``'s ``accessSAS``).

A SAS is a URL that grants reading one disk's exported VHD until a time, with no other
credential, the way Azure Storage's service SAS does. Its query carries Azure's field names
(``sv`` version, ``sr=b`` a blob, ``si`` the grant's id — Azure's stored access policy —,
``sp`` permissions, ``se`` expiry) and ``sig``: base64 of HMAC-SHA256, under a key kept in the
store (``identity/sas-signing.key``), over those fields and the disk's ARM id. So a SAS cannot
be guessed or altered (another disk, a later expiry, write permission), keeps working across
a server restart until it expires, and stops working when the grant it names is revoked
(``endGetAccess``: the grant id is no longer the disk's; checked by the caller).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from . import keyfile

KEY_FILE = "sas-signing.key"
SIGNED_VERSION = "2018-03-28"  # the sv Azure's disk export SAS URLs carry
#: the account and blob parts of the URL path: /md-impexp/<grant id>/abcd, as Azure's
#: ``md-impexp-….blob.storage.azure.net/<container>/abcd``
ACCOUNT = "md-impexp"
BLOB = "abcd"
PERMISSIONS = {"Read": "r", "Write": "rw"}


class SasRejected(Exception):
    """The SAS is not valid: 403 AuthenticationFailed (``detail`` says why)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class SasClaims:
    """What a verified SAS grants."""

    grant_id: str
    disk_id: str
    permissions: str
    expires: datetime


def new_grant_id() -> str:
    """A grant id: 128 random bits, hex (the URL's container name and ``si``)."""
    return secrets.token_hex(16)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sign(key: bytes, grant_id: str, disk_id: str, sp: str, se: str) -> str:
    msg = "\n".join(("imagestore-sas-v1", SIGNED_VERSION, "b", grant_id, disk_id.lower(), sp,
                     se)).encode()
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def path_for(grant_id: str) -> str:
    """The URL path of a grant's blob."""
    return f"/{ACCOUNT}/{grant_id}/{BLOB}"


def make_url(store: Any, base_url: str, *, grant_id: str, disk_id: str, access: str,
             expires: datetime) -> str:
    """The SAS URL (``base_url`` is where the server listens, e.g. ``https://127.0.0.1:8443``)."""
    key = keyfile.load(store, KEY_FILE)
    sp = PERMISSIONS[access]
    se = _iso(expires)
    query = urlencode({"sv": SIGNED_VERSION, "sr": "b", "si": grant_id, "sp": sp, "se": se,
                       "sig": _sign(key, grant_id, disk_id, sp, se)}, quote_via=quote)
    return f"{base_url.rstrip('/')}{path_for(grant_id)}?{query}"


def verify(store: Any, grant_id: str, query: str, disk_id: str | None,
           now: datetime | None = None) -> SasClaims:
    """Check the SAS ``query`` of a request for ``path_for(grant_id)``. ``disk_id`` is the
    disk that currently holds that grant (None: no disk does — revoked, or never granted).
    Raises :class:`SasRejected`."""
    q = parse_qs(query, keep_blank_values=True)
    fields = {}
    for name in ("sv", "sr", "si", "sp", "se", "sig"):
        vals = q.get(name)
        if not vals or len(vals) != 1 or not vals[0]:
            raise SasRejected(f"the SAS field '{name}' is missing or repeated")
        fields[name] = vals[0]
    if fields["sv"] != SIGNED_VERSION or fields["sr"] != "b" or fields["si"] != grant_id:
        raise SasRejected("Signature fields not well formed (sv, sr or si)")
    try:
        key = keyfile.load(store, KEY_FILE, create=False)
    except Exception:
        raise SasRejected("this store has signed no SAS") from None
    if disk_id is None:
        raise SasRejected("the access was revoked (endGetAccess) or never granted")
    want = _sign(key, grant_id, disk_id, fields["sp"], fields["se"])
    if not hmac.compare_digest(want.encode(), fields["sig"].encode()):
        raise SasRejected("Signature did not match")
    try:
        expires = datetime.strptime(fields["se"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SasRejected("the signed expiry time is malformed") from None
    now = now or datetime.now(UTC)
    if now >= expires:
        raise SasRejected(f"Signed expiry time [{_iso(expires)}] must be after the current "
                          f"time [{_iso(now)}]")
    return SasClaims(grant_id, disk_id, fields["sp"], expires)
