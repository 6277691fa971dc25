"""The directory's service principals: applications that sign in with a client id and a
secret (OAuth2 client credentials), as ``az ad sp create-for-rbac`` makes them.

Kept in ``<store>/identity/directory.sqlite`` (its own small database in the 0700 identity
directory: secret hashes are credentials and stay out of the gallery database, which holds
the rest of the directory — tenants, users, groups, role assignments, :mod:`.directory`).
A secret is shown once, when it is made, and stored only as a salted
scrypt hash; checking one compares in constant time. Every application is registered in the
local tenant (:data:`imagestore.identity.account.TENANT`), where it has its home service
principal object; :func:`consent` gives it a service principal object in another tenant of the
directory (a multi-tenant app consented there: ``ad sp create --id APP --tenant T2``), with
its own object id. The app signs in to either tenant with the same secret and gets a token
with that tenant's ``tid`` and object id (``sp_tenant_objects``).

``create(store, name)`` makes a principal (or, like az, gives the existing principal of that
display name a new secret, the old one stops working) and returns what az prints:
``{appId, displayName, password, tenant}``. ``authenticate(store, app_id, secret)`` returns
the :class:`Principal` or raises :class:`BadCredentials` with the Entra ID (AADSTS) reason.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import InvalidArgument, NotFound, Unauthenticated
from ..store import sqlitedb
from . import keyfile
from .account import TENANT

DB_FILE = "directory.sqlite"
#: scrypt parameters: 16 MiB of memory, ~30 ms per check on this kind of machine
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SECRET_YEARS = 1  # az's default credential lifetime
_SECRET_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def new_secret() -> str:
    """A client secret: 41 URL-safe characters (~246 bits) whose first is a letter or digit.
    A secret may not start with '-': ``az login -p -abc`` reads it as an option and refuses
    it, as Azure's own generated secrets never do."""
    return secrets.choice(_SECRET_FIRST) + secrets.token_urlsafe(30)
MAX_NAME = 120

_SCHEMA = """
CREATE TABLE IF NOT EXISTS service_principals (
    app_id        TEXT PRIMARY KEY,
    object_id     TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    tenant        TEXT NOT NULL,
    secret_salt   BLOB NOT NULL,
    secret_hash   BLOB NOT NULL,
    secret_id     TEXT NOT NULL,
    secret_end    TEXT NOT NULL,
    created       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sp_tenant_objects (
    app_id        TEXT NOT NULL REFERENCES service_principals(app_id) ON DELETE CASCADE,
    tenant        TEXT NOT NULL,
    object_id     TEXT NOT NULL UNIQUE,
    created       TEXT NOT NULL,
    PRIMARY KEY (app_id, tenant)
)
"""


class BadCredentials(Unauthenticated):
    """A client id or secret was refused (the token endpoint's 400/401 with an AADSTS code;
    ``code`` is the OAuth2 error: ``invalid_client``, ``unauthorized_client``)."""

    def __init__(self, message: str, *, aadsts: int, error: str, status: int) -> None:
        super().__init__(message, code=error)
        self.aadsts = aadsts
        self.status = status


@dataclass(frozen=True)
class Principal:
    """A service principal (never its secret)."""

    app_id: str
    object_id: str
    display_name: str
    tenant: str
    secret_id: str
    secret_end: str
    created: str

    def to_json(self) -> dict:
        """The principal as ``az ad sp show`` prints its main fields (Microsoft Graph names)."""
        return {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "appOwnerOrganizationId": TENANT,  # every app is registered in the local tenant
            "accountEnabled": True,
            "servicePrincipalType": "Application",
            "servicePrincipalNames": [self.app_id],
            "passwordCredentials": [{"keyId": self.secret_id, "endDateTime": self.secret_end,
                                     "displayName": "imagestore"}],
        }


def _db_path(store) -> str:  # noqa: ANN001 - a Home or a path
    return os.path.join(keyfile.store_root(store), keyfile.KEY_DIR, DB_FILE)


def _open(store, *, write: bool) -> sqlite3.Connection | None:  # noqa: ANN001
    path = _db_path(store)
    if not write and not os.path.exists(path):
        return None
    if write:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    con = sqlitedb.connect(path, readonly=not write, timeout=30.0)
    con.row_factory = sqlite3.Row
    if write:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.executescript(_SCHEMA)
        os.chmod(path, 0o600)
    return con


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                          dklen=32)


def _row(r: sqlite3.Row) -> Principal:
    return Principal(r["app_id"], r["object_id"], r["display_name"], r["tenant"],
                     r["secret_id"], r["secret_end"], r["created"])


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(
            ord(c) < 32 for c in name):
        raise InvalidArgument(f"displayName: {name!r} must be 1-{MAX_NAME} printable "
                              f"characters", target="displayName")
    return name.strip()


def _grant(store, role: str | None, scopes: list[str] | None) -> list[str]:  # noqa: ANN001
    """The scopes a new principal gets ``role`` at (checked: role and scopes exist). A bare
    identity directory, without a store and so without a gallery database, has no scope to
    assign on: nothing is granted there."""
    if role is None or not os.path.exists(
            os.path.join(keyfile.store_root(store), "imagestore.json")):
        return []
    from ..gallery import ids
    from . import assignments, directory, roles

    wanted = list(scopes or [f"/subscriptions/{ids.SUBSCRIPTION}"])
    with directory.open_directory(store) as dr:
        r = roles.get(role, dr)
        out = [assignments.check_scope(dr, s) for s in wanted]
        bad = next((s for s in out if not r.assignable_at(s)), None)
        if bad is not None:
            raise InvalidArgument(f"--scopes: role '{r.name}' is not assignable at '{bad}'",
                                  target="scopes")
        return out


def create(store, name: str, *, years: int = SECRET_YEARS,  # noqa: ANN001
           role: str | None = "Contributor", scopes: list[str] | None = None) -> dict:
    """A new service principal named ``name`` with a new secret, or a new secret for the one
    already named so. Returns ``{appId, displayName, password, tenant}`` (the only time the
    secret is seen). A new principal gets ``role`` at ``scopes`` (default: Contributor on the
    local subscription, as ``az ad sp create-for-rbac`` did before az 2.37; ``role=None``:
    no assignment)."""
    name = _check_name(name)
    grant = _grant(store, role, scopes)  # checked before anything is written
    secret = new_secret()
    salt = secrets.token_bytes(16)
    digest = _hash(secret, salt)
    now = datetime.now(UTC)
    end = _iso(now + timedelta(days=365 * years))
    con = _open(store, write=True)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            old = con.execute("SELECT * FROM service_principals WHERE display_name = ?",
                              (name,)).fetchone()
            if old is not None:
                app_id = old["app_id"]
                con.execute("UPDATE service_principals SET secret_salt=?, secret_hash=?, "
                            "secret_id=?, secret_end=? WHERE app_id=?",
                            (salt, digest, str(uuid.uuid4()), end, app_id))
            else:
                app_id = str(uuid.uuid4())
                con.execute("INSERT INTO service_principals VALUES (?,?,?,?,?,?,?,?,?)",
                            (app_id, str(uuid.uuid4()), name, TENANT, salt, digest,
                             str(uuid.uuid4()), end, _iso(now)))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    if old is None and grant:
        from . import assignments, directory

        with directory.open_directory(store) as dr:
            for scope in grant:
                assignments.create(dr, store, app_id, role, scope)
    return {"appId": app_id, "displayName": name, "password": secret, "tenant": TENANT}


def find(store, app_or_name: str) -> Principal | None:  # noqa: ANN001
    """The principal with this app id, object id or display name, or None. The object id of
    the app's service principal in another tenant gives that object (its id and tenant)."""
    con = _open(store, write=False)
    if con is None:
        return None
    try:
        r = con.execute("SELECT * FROM service_principals WHERE app_id = ? OR object_id = ? "
                        "OR display_name = ?", (app_or_name,) * 3).fetchone()
        if r is not None:
            return _row(r)
        t = _tenant_object(con, "object_id = ?", (app_or_name,))
        return t
    finally:
        con.close()


def _tenant_object(con: sqlite3.Connection, where: str, args: tuple) -> Principal | None:
    if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'sp_tenant_objects'").fetchone():
        return None  # a directory written before tenant objects existed (read-only open)
    r = con.execute("SELECT s.*, t.object_id AS t_oid, t.tenant AS t_tenant FROM "
                    "sp_tenant_objects t JOIN service_principals s ON s.app_id = t.app_id "
                    f"WHERE t.{where}", args).fetchone()
    if r is None:
        return None
    p = _row(r)
    return Principal(p.app_id, r["t_oid"], p.display_name, r["t_tenant"], p.secret_id,
                     p.secret_end, p.created)


def in_tenant(store, app_or_name: str, tenant: str) -> Principal | None:  # noqa: ANN001
    """The app's service principal object in ``tenant`` (its home one, or one made by
    :func:`consent`), or None."""
    found = find(store, app_or_name)
    if found is None:
        return None
    home = show(store, found.app_id)  # by app id: the home object
    if home.tenant.lower() == tenant.lower():
        return home
    con = _open(store, write=False)
    try:
        return _tenant_object(con, "app_id = ? AND lower(t.tenant) = lower(?)",
                              (home.app_id, tenant))
    finally:
        con.close()


def objects(store, app_or_name: str) -> list[Principal]:  # noqa: ANN001
    """Every service principal object of the app: the home one first."""
    home = show(store, show(store, app_or_name).app_id)
    con = _open(store, write=False)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'sp_tenant_objects'"
                           ).fetchone():
            return [home]
        rows = con.execute("SELECT tenant, object_id FROM sp_tenant_objects WHERE app_id = ? "
                           "ORDER BY created, tenant", (home.app_id,)).fetchall()
    finally:
        con.close()
    return [home] + [Principal(home.app_id, r["object_id"], home.display_name, r["tenant"],
                               home.secret_id, home.secret_end, home.created) for r in rows]


def consent(store, app_or_name: str, tenant: str) -> Principal:  # noqa: ANN001
    """Create the app's service principal object in ``tenant`` (a tenant id the caller has
    checked exists): what consenting a multi-tenant app into a tenant does. Conflict when
    the app already has one there (its home tenant included)."""
    from ..errors import Conflict

    home = show(store, show(store, app_or_name).app_id)
    if in_tenant(store, home.app_id, tenant) is not None:
        raise Conflict(f"The service principal of application '{home.app_id}' already "
                       f"exists in tenant '{tenant}'.", target="tenant")
    oid = str(uuid.uuid4())
    con = _open(store, write=True)
    try:
        con.execute("INSERT INTO sp_tenant_objects VALUES (?,?,?,?)",
                    (home.app_id, tenant, oid, _iso(datetime.now(UTC))))
        con.commit()
    finally:
        con.close()
    p = in_tenant(store, home.app_id, tenant)
    assert p is not None
    return p


def show(store, app_or_name: str) -> Principal:  # noqa: ANN001
    """Like :func:`find`; NotFound when there is none."""
    p = find(store, app_or_name)
    if p is None:
        raise NotFound(f"service principal '{app_or_name}' not found", target="id")
    return p


def list_all(store) -> list[Principal]:  # noqa: ANN001
    """Every principal, by display name."""
    con = _open(store, write=False)
    if con is None:
        return []
    try:
        return [_row(r) for r in con.execute(
            "SELECT * FROM service_principals ORDER BY display_name")]
    finally:
        con.close()


def delete(store, app_or_name: str) -> None:  # noqa: ANN001
    """Remove a principal: its secret stops working at once (tokens already issued run to
    their expiry, as in Entra ID)."""
    p = show(store, app_or_name)
    con = _open(store, write=True)
    try:
        con.execute("DELETE FROM sp_tenant_objects WHERE app_id = ?", (p.app_id,))
        con.execute("DELETE FROM service_principals WHERE app_id = ?", (p.app_id,))
    finally:
        con.close()


def authenticate(store, app_id: str, secret: str, tenant: str = TENANT,  # noqa: ANN001
                 now: datetime | None = None) -> Principal:
    """The principal whose client id is ``app_id`` if ``secret`` is its current secret."""
    con = _open(store, write=False)
    r = None
    if con is not None:
        try:
            r = con.execute("SELECT * FROM service_principals WHERE app_id = ?",
                            (app_id,)).fetchone()
        finally:
            con.close()
    obj = None
    if r is not None and r["tenant"] != tenant:
        obj = in_tenant(store, app_id, tenant)  # the app consented into another tenant
        if obj is None:
            r = None
    if r is None:
        _hash(secret or "-", b"\0" * 16)  # the same work as a real check: no timing oracle
        raise BadCredentials(
            f"AADSTS700016: Application with identifier '{app_id}' was not found in the "
            f"directory '{tenant}'. This can happen if the application has not been installed "
            f"by the administrator of the tenant or consented to by any user in the tenant. "
            f"You may have sent your authentication request to the wrong tenant.",
            aadsts=700016, error="unauthorized_client", status=400)
    if not hmac.compare_digest(_hash(secret, r["secret_salt"]), r["secret_hash"]):
        raise BadCredentials(
            f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
            f"the request is the client secret value, not the client secret ID, for a secret "
            f"added to app '{app_id}'.", aadsts=7000215, error="invalid_client", status=401)
    if (now or datetime.now(UTC)) >= datetime.strptime(
            r["secret_end"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC):
        raise BadCredentials(
            f"AADSTS7000222: The provided client secret keys for app '{app_id}' are expired. "
            f"Create a new one ('imagestore ad sp create-for-rbac --name "
            f"{r['display_name']}').", aadsts=7000222, error="invalid_client", status=401)
    return obj or _row(r)
