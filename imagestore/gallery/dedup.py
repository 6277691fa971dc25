"""Which dedup domain (``store/domains.py``) a capture runs in.

A capture writes into the domain of the tenant that owns the target resource: resource ->
its subscription (the ``/subscriptions/{id}/`` of its ARM id) -> the subscription's home tenant
(``ad_subscriptions``). The local tenant captures in the home domain (ids as before domains
existed); any other tenant gets a domain number on its first capture (table ``dedup_domains``,
migration ``0012_dedup_domains``, allocated in one transaction) and its ids are keyed with the
store's dedup key, ``identity/dedup.key`` (32 random bytes, mode 0600, published atomically by
:func:`imagestore.identity.keyfile.create_new` on the first capture of any such tenant).

Everything here runs before the first byte of a capture is stored: a missing or damaged key
is an error then, and nothing has changed (a missing key is only created while no tenant
domain exists yet; recreating it later would silently end dedup for existing domains).
"""

from __future__ import annotations

import os
import re

from ..errors import Conflict, IntegrityError, NotFound
from ..identity import keyfile
from ..identity.account import TENANT as LOCAL_TENANT
from ..store import domains
from . import db
from .backends import Database
from .validate import iso, now_utc

KEY_NAME = "dedup.key"
_SUB = re.compile(r"^/subscriptions/([^/]+)(?:/|$)", re.IGNORECASE)


def subscription_of(resource_id: str) -> str:
    """The subscription id of an ARM resource id (NotFound when it names none)."""
    m = _SUB.match(resource_id)
    if m is None:
        raise NotFound(f"{resource_id}: not a resource id of a subscription")
    return m.group(1)


def tenant_of(con: Database, resource_id: str) -> str:
    """The home tenant of the subscription that owns ``resource_id`` (lower case)."""
    sub = subscription_of(resource_id)
    row = con.execute("SELECT tenant_id FROM ad_subscriptions WHERE lower(id) = lower(?)",
                      (sub,)).fetchone()
    if row is None:
        raise NotFound(f"subscription '{sub}' could not be found")
    return str(row[0]).lower()


def key_path(store_root: str) -> str:
    return keyfile.key_path(store_root, KEY_NAME)


def _load_key(store_root: str, con: Database) -> bytes:
    """The store's dedup key; created only while no tenant domain exists."""
    exists = con.execute("SELECT 1 FROM dedup_domains LIMIT 1").fetchone() is not None
    path = key_path(store_root)
    if exists and not os.path.exists(path):
        raise IntegrityError(
            f"{path}: the dedup key is missing but tenant dedup domains exist; restore it "
            f"from a backup of the store (a new key would end dedup with their chunks)")
    return keyfile.load(store_root, KEY_NAME, domains.KEY_BYTES, create=not exists)


def domain_of_tenant(con: Database, store_root: str, tenant_id: str) -> domains.Domain:
    """The dedup domain of ``tenant_id`` (allocated on first use)."""
    tenant = tenant_id.lower()
    if tenant == LOCAL_TENANT:
        return domains.HOME_DOMAIN
    key = _load_key(store_root, con)  # before anything is written
    for _ in range(5):
        row = con.execute("SELECT tag FROM dedup_domains WHERE tenant_id = ?", (tenant,)).fetchone()
        if row is not None:
            return domains.Domain(int(row[0]), key)
        try:
            with db.transaction(con):
                con.execute(
                    "INSERT INTO dedup_domains(tenant_id, tag, created) "
                    "SELECT ?, COALESCE(MAX(tag), 0) + 1, ? FROM dedup_domains",
                    (tenant, iso(now_utc())))
        except Conflict:  # a concurrent first capture took the number: re-read
            continue
    raise IntegrityError(f"dedup domain of tenant {tenant}: could not be allocated")


def domain_of(con: Database, store_root: str, resource_id: str) -> domains.Domain:
    """The dedup domain a capture into the resource ``resource_id`` runs in."""
    return domain_of_tenant(con, store_root, tenant_of(con, resource_id))
