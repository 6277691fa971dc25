"""The directory: tenants, subscriptions (each in one home tenant), users, groups (members:
users, groups, service principals; resolved transitively) — ``imagestore ad …`` and
``imagestore account create``.

Rows live in the gallery database (migration ``0007_directory``, SQL in
:mod:`imagestore.gallery.directory_repository`), so every host sharing a PostgreSQL gallery
sees one directory. Service principals are :mod:`.principals` (their secret hashes stay in
the store's 0700 ``identity/`` directory); here they are resolved by app id, object id or
display name like users and groups.

Users do not sign in with a password: the store owner issues their tokens
(``imagestore token create --assignee alice@contoso.example``), or acts as them with ``--as``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..gallery.directory_repository import DirectoryRepository
from ..gallery.ids import SUBSCRIPTION as LOCAL_SUBSCRIPTION
from . import keyfile, principals
from .account import TENANT

USER, GROUP, SERVICE_PRINCIPAL = "User", "Group", "ServicePrincipal"
MAX_NAME = 256
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")


@dataclass(frozen=True)
class Principal:
    """Who a token or ``--as`` names: a user, a group or a service principal."""

    object_id: str
    type: str
    tenant_id: str
    name: str  # UPN, group display name, or SP display name


@contextmanager
def open_directory(home: Any) -> Iterator[DirectoryRepository]:  # noqa: ANN401 - a Home
    """The directory of a store (a Home or its path: its gallery database), closed
    afterwards."""
    from ..gallery.repository import Repository
    from ..home import Home

    opened = None
    if not isinstance(home, Home):
        home = opened = Home.open(keyfile.store_root(home), create=False)
    try:
        repo = Repository(home.gallery_database)
        try:
            yield DirectoryRepository(repo.con)
        finally:
            repo.close()
    finally:
        if opened is not None:
            opened.close()


def _text(field: str, value: str | None, *, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or any(
            ord(c) < 32 for c in value):
        raise InvalidArgument(f"{field}: {value!r} must be 1-{limit} printable characters",
                              target=field)
    return value.strip()


def _guid(field: str, value: str | None) -> str:
    if value is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"{field}: '{value}' is not a GUID", target=field) from None


# -- tenants and subscriptions ------------------------------------------------------------------


def tenant_json(row: tuple) -> dict:
    """A tenant as ``az account tenant list`` prints it."""
    return {"id": f"/tenants/{row[0]}", "tenantId": row[0], "displayName": row[1],
            "defaultDomain": row[2], "domains": [row[2]], "tenantCategory": "Home"}


def create_tenant(dr: DirectoryRepository, display_name: str, domain: str | None = None,
                  tenant_id: str | None = None) -> dict:
    """A new tenant; ``domain`` defaults to ``<name>.imagestore.local``."""
    display_name = _text("displayName", display_name)
    tid = _guid("tenantId", tenant_id)
    if domain is None:
        slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-") or tid[:8]
        domain = f"{slug[:60]}.imagestore.local"
    if not _DOMAIN.match(domain) or len(domain) > 253:
        raise InvalidArgument(f"domain: '{domain}' is not a domain name", target="domain")
    with dr.transaction():
        if dr.tenant(tid) or dr.tenant(domain):
            raise Conflict(f"tenant '{tid}' or domain '{domain}' already exists",
                           target="tenantId")
        dr.add_tenant(tid, display_name, domain)
    return tenant_json(dr.tenant(tid))


def tenant(dr: DirectoryRepository, ident: str) -> tuple:
    """A tenant row by id or domain; NotFound when none."""
    row = dr.tenant(ident)
    if row is None:
        raise NotFound(f"tenant '{ident}' not found", target="tenant")
    return row


def subscription_json(row: tuple, user: str) -> dict:
    """A subscription as ``az account show`` prints it."""
    return {"environmentName": "imagestore", "homeTenantId": row[2], "id": row[0],
            "subscriptionId": row[0], "displayName": row[1],
            "isDefault": row[0] == LOCAL_SUBSCRIPTION, "managedByTenants": [], "name": row[1],
            "state": "Enabled", "tenantId": row[2], "user": {"name": user, "type": "user"}}


def subscription(dr: DirectoryRepository, ident: str) -> tuple:
    """A subscription row by id; NotFound (SubscriptionNotFound) when none."""
    row = dr.subscription(ident) if isinstance(ident, str) else None
    if row is None:
        raise NotFound(f"subscription '{ident}' not found", target="subscription",
                       code="SubscriptionNotFound")
    return row


def create_subscription(dr: DirectoryRepository, name: str, tenant_ident: str,
                        subscription_id: str | None = None, *, user: str = "") -> dict:
    """A new subscription whose home tenant is ``tenant_ident``."""
    name = _text("name", name)
    sid = _guid("subscriptionId", subscription_id)
    with dr.transaction():
        t = tenant(dr, tenant_ident)
        if dr.subscription(sid):
            raise Conflict(f"subscription '{sid}' already exists", target="subscriptionId")
        dr.add_subscription(sid, name, t[0])
    return subscription_json(dr.subscription(sid), user)


# -- users and groups ----------------------------------------------------------------------


def user_json(row: tuple) -> dict:
    """A user as ``az ad user show`` prints it (Microsoft Graph names)."""
    return {"id": row[0], "userPrincipalName": row[2], "displayName": row[3],
            "accountEnabled": True, "tenantId": row[1], "mail": None,
            "businessPhones": [], "givenName": None, "surname": None}


def create_user(dr: DirectoryRepository, upn: str, display_name: str,
                tenant_ident: str = TENANT) -> dict:
    """A user; the UPN is unique in the store (``name@domain``)."""
    upn = _text("userPrincipalName", upn)
    local, at, dom = upn.partition("@")
    if not at or not local or not dom or " " in upn:
        raise InvalidArgument(f"userPrincipalName: '{upn}' must be name@domain",
                              target="userPrincipalName")
    display_name = _text("displayName", display_name)
    oid = str(uuid.uuid4())
    with dr.transaction():
        t = tenant(dr, tenant_ident)
        if dr.user(upn):
            raise Conflict(f"Another object with the same value for property "
                           f"userPrincipalName already exists: '{upn}'",
                           target="userPrincipalName")
        dr.add_user(oid, t[0], upn, display_name)
    return user_json(dr.user(oid))


def group_json(row: tuple) -> dict:
    """A group as ``az ad group show`` prints it."""
    return {"id": row[0], "displayName": row[2], "mailNickname": row[3],
            "securityEnabled": True, "mailEnabled": False, "tenantId": row[1],
            "createdDateTime": row[4]}


def create_group(dr: DirectoryRepository, display_name: str, mail_nickname: str | None = None,
                 tenant_ident: str = TENANT) -> dict:
    """A security group (display names are unique in the store)."""
    display_name = _text("displayName", display_name)
    nick = _text("mailNickname", mail_nickname or re.sub(r"\W+", "", display_name) or "group")
    oid = str(uuid.uuid4())
    with dr.transaction():
        t = tenant(dr, tenant_ident)
        if dr.group(display_name):
            raise Conflict(f"group '{display_name}' already exists", target="displayName")
        dr.add_group(oid, t[0], display_name, nick)
    return group_json(dr.group(oid))


def group(dr: DirectoryRepository, ident: str) -> tuple:
    row = dr.group(ident)
    if row is None:
        raise NotFound(f"group '{ident}' not found", target="group")
    return row


def resolve(dr: DirectoryRepository, store: Any, ident: str) -> Principal:  # noqa: ANN401
    """The user (object id or UPN), service principal (app id, object id or display name) or
    group (object id or display name) named ``ident``; NotFound with az's wording."""
    p = find(dr, store, ident)
    if p is None:
        raise NotFound(f"Cannot find user or service principal in graph database for "
                       f"'{ident}'.", target="assignee", code="PrincipalNotFound")
    return p


def find(dr: DirectoryRepository, store: Any, ident: str) -> Principal | None:  # noqa: ANN401
    """Like :func:`resolve`; None when nothing is named so."""
    if not isinstance(ident, str) or not ident.strip():
        return None
    ident = ident.strip()
    u = dr.user(ident)
    if u:
        return Principal(u[0], USER, u[1], u[2])
    sp = principals.find(store, ident)
    if sp:
        return Principal(sp.object_id, SERVICE_PRINCIPAL, sp.tenant, sp.display_name)
    g = dr.group(ident)
    if g:
        return Principal(g[0], GROUP, g[1], g[2])
    return None


def in_tenant(dr: DirectoryRepository, store: Any, p: Principal | None,  # noqa: ANN401
              tenant_id: str, ident: str) -> Principal:
    """``p``'s object in ``tenant_id``: a service principal's object there (consented with
    ``ad sp create --tenant``), AADSTS700016's wording when it has none; users and groups
    live in their home tenant only."""
    if p is None or p.type != SERVICE_PRINCIPAL:
        if p is not None and p.tenant_id.lower() == tenant_id.lower():
            return p
        raise InvalidArgument(f"tenant: '{ident}' is not a service principal with an object "
                              f"in tenant '{tenant_id}'", target="tenant")
    sp = principals.in_tenant(store, p.object_id, tenant_id)
    if sp is None:
        raise NotFound(f"AADSTS700016: Application with identifier '{ident}' was not found "
                       f"in the directory '{tenant_id}'.", target="tenant",
                       code="PrincipalNotFound")
    return Principal(sp.object_id, SERVICE_PRINCIPAL, sp.tenant, sp.display_name)


def add_member(dr: DirectoryRepository, store: Any, group_ident: str,  # noqa: ANN401
               member_ident: str) -> None:
    """Make ``member_ident`` (user, SP or group) a direct member of the group. A group that
    would (transitively) contain itself is refused."""
    with dr.transaction():
        g = group(dr, group_ident)
        m = resolve(dr, store, member_ident)
        if m.type == GROUP and (m.object_id == g[0] or g[0] in _transitive_members(dr, m.object_id)):
            raise Conflict(f"group '{m.name}' cannot be a member of '{g[2]}': it would "
                           f"contain itself", target="memberId")
        if any(r[0] == m.object_id for r in dr.members(g[0])):
            raise Conflict("One or more added object references already exist for the "
                           "following modified properties: 'members'.", target="memberId")
        dr.add_member(g[0], m.object_id, m.type)


def remove_member(dr: DirectoryRepository, store: Any, group_ident: str,  # noqa: ANN401
                  member_ident: str) -> None:
    """Remove a direct member: access it had through the group ends at once."""
    with dr.transaction():
        g = group(dr, group_ident)
        m = resolve(dr, store, member_ident)
        if not dr.remove_member(g[0], m.object_id):
            raise NotFound(f"'{m.name}' is not a member of group '{g[2]}'", target="memberId")


def _transitive_members(dr: DirectoryRepository, group_id: str) -> set[str]:
    seen: set[str] = set()
    todo = [group_id]
    while todo:
        for mid, mtype in dr.members(todo.pop()):
            if mid not in seen:
                seen.add(mid)
                if mtype == GROUP:
                    todo.append(mid)
    return seen


def member_json(dr: DirectoryRepository, store: Any, member_id: str,  # noqa: ANN401
                member_type: str) -> dict:
    if member_type == USER and (u := dr.user(member_id)):
        return {**user_json(u), "@odata.type": "#microsoft.graph.user"}
    if member_type == GROUP and (g := dr.group(member_id)):
        return {**group_json(g), "@odata.type": "#microsoft.graph.group"}
    sp = principals.find(store, member_id)
    if sp:
        return {**sp.to_json(), "@odata.type": "#microsoft.graph.servicePrincipal"}
    return {"id": member_id, "@odata.type": "#microsoft.graph.directoryObject"}


def members(dr: DirectoryRepository, store: Any, group_ident: str) -> list[dict]:  # noqa: ANN401
    """The direct members of a group, as ``az ad group member list`` prints them."""
    g = group(dr, group_ident)
    return [member_json(dr, store, mid, mtype) for mid, mtype in dr.members(g[0])]


def transitive_groups(dr: DirectoryRepository, object_id: str) -> set[str]:
    """Every group ``object_id`` is a member of, directly or through other groups."""
    seen: set[str] = set()
    todo = [object_id]
    while todo:
        for gid in dr.groups_of(todo.pop()):
            if gid not in seen:
                seen.add(gid)
                todo.append(gid)
    return seen


def is_member(dr: DirectoryRepository, store: Any, group_ident: str,  # noqa: ANN401
              member_ident: str) -> bool:
    """``az ad group member check``: transitive membership."""
    g = group(dr, group_ident)
    m = resolve(dr, store, member_ident)
    return g[0] in transitive_groups(dr, m.object_id)
