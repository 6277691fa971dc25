"""Role assignments: (principal, role definition, scope), at subscription, resource group,
gallery, image definition or version scope (or any ARM resource path under a subscription of
the directory). ``imagestore role assignment create|list|delete`` prints what az prints.

A scope must be a well-formed ARM scope under a subscription of the directory; the resource
need not exist yet (decision: a gallery created later under an assigned path is covered —
Azure checks that the scope exists; imagestore has no resource-group objects to check
against). Scopes compare case-insensitively, as ARM's.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..gallery.directory_repository import DirectoryRepository
from . import directory, roles

_NAME = r"[^/\s]+"
_SCOPE = re.compile(
    rf"^/subscriptions/(?P<sub>{_NAME})"
    rf"(?:/resourceGroups/{_NAME}(?:/providers/[A-Za-z][\w.]*(?:/{_NAME}/{_NAME})+)?)?$",
    re.IGNORECASE)
OWNER_ID = "imagestore-store-owner"


def check_scope(dr: DirectoryRepository, scope: str) -> str:
    """The scope (trailing slash removed) when well formed and under a known subscription."""
    if not isinstance(scope, str):
        raise InvalidArgument("scope: required", target="scope")
    s = scope.strip().rstrip("/")
    m = _SCOPE.match(s)
    if m is None:
        raise InvalidArgument(
            f"scope: '{scope}' is not a valid scope: /subscriptions/SUB[/resourceGroups/RG"
            f"[/providers/NAMESPACE/TYPE/NAME[/TYPE/NAME...]]]", target="scope")
    if dr.subscription(m["sub"]) is None:
        raise NotFound(f"scope: subscription '{m['sub']}' not found in the directory",
                       target="scope", code="SubscriptionNotFound")
    return s


def covers(assigned_scope: str, scope: str) -> bool:
    """An assignment at ``assigned_scope`` applies at ``scope`` (itself or below)."""
    a, s = assigned_scope.lower().rstrip("/"), scope.lower().rstrip("/")
    return s == a or s.startswith(a + "/")


def to_json(row: tuple, dr: DirectoryRepository, store: Any) -> dict:  # noqa: ANN401
    """An assignment as ``az role assignment list`` prints it."""
    ident, pid, ptype, role_id, scope, created, created_by = row
    role = roles.find(role_id, dr)
    sub = scope.split("/")[2]
    p = directory.find(dr, store, pid)
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{ident}",
        "name": ident,
        "principalId": pid,
        "principalName": p.name if p else "",
        "principalType": ptype,
        "roleDefinitionId": (role.definition_id(sub) if role else role_id),
        "roleDefinitionName": role.name if role else "",
        "scope": scope,
        "type": "Microsoft.Authorization/roleAssignments",
        "condition": None, "conditionVersion": None, "description": None,
        "createdOn": created, "createdBy": created_by, "updatedOn": created,
        "updatedBy": created_by, "delegatedManagedIdentityResourceId": None,
    }


def in_scope_tenant(dr: DirectoryRepository, store: Any,  # noqa: ANN401
                     p: directory.Principal, scope: str) -> directory.Principal:
    """A service principal named by app id is its object in the scope's tenant when the app
    has one there (as az resolves an app id in the tenant it is signed in to)."""
    if p.type != directory.SERVICE_PRINCIPAL:
        return p
    segs = scope.strip("/").split("/")
    sub = dr.subscription(segs[1]) if len(segs) > 1 and segs[0].lower() == "subscriptions" \
        else None
    if sub is None or sub[2].lower() == p.tenant_id.lower():
        return p
    from . import principals

    sp = principals.in_tenant(store, p.object_id, sub[2])
    if sp is None:
        return p
    return directory.Principal(sp.object_id, directory.SERVICE_PRINCIPAL, sp.tenant,
                               sp.display_name)


def create(dr: DirectoryRepository, store: Any, assignee: str, role: str,  # noqa: ANN401
           scope: str, *, created_by: str = OWNER_ID, name: str | None = None) -> dict:
    """Assign ``role`` to ``assignee`` at ``scope`` (az: the same triple again is a
    Conflict ``RoleAssignmentExists``). ``name``: the assignment's GUID (the REST PUT's;
    default a new one)."""
    r = roles.get(role, dr)
    p = directory.resolve(dr, store, assignee)
    with dr.transaction():
        s = check_scope(dr, scope)
        if assignee.strip().lower() != p.object_id.lower():  # named by app id or name
            p = in_scope_tenant(dr, store, p, s)
        if not r.assignable_at(s):
            # ARM looks the definition up at the assignment's scope, where it does not exist
            raise InvalidArgument(
                f"The specified role definition with ID '{r.guid}' does not exist. (role "
                f"'{r.name}' is assignable only at or under: {', '.join(r.assignable_scopes)})",
                target="role", code="RoleDefinitionDoesNotExist")
        if dr.assignment(p.object_id, r.guid, s):
            raise Conflict("The role assignment already exists.", target="roleAssignment",
                           code="RoleAssignmentExists")
        ident = name or str(uuid.uuid4())
        dr.add_assignment(ident, p.object_id, p.type, r.guid, s, created_by)
    return to_json(next(a for a in dr.assignments() if a[0] == ident), dr, store)


def list_(dr: DirectoryRepository, store: Any, *, assignee: str | None = None,  # noqa: ANN401
          role: str | None = None, scope: str | None = None,
          include_inherited: bool = False) -> list[dict]:
    """Assignments, filtered: by principal, role, and scope (exactly, or also those at an
    enclosing scope with ``include_inherited``)."""
    rows = dr.assignments()
    if assignee is not None:
        p = directory.resolve(dr, store, assignee)
        pids = {p.object_id}
        if p.type == directory.SERVICE_PRINCIPAL and assignee.strip().lower() != p.object_id.lower():
            from . import principals  # an app id names the app's objects in every tenant

            pids |= {o.object_id for o in principals.objects(store, p.object_id)}
        rows = [a for a in rows if a[1] in pids]
    if role is not None:
        rid = roles.get(role, dr).guid
        rows = [a for a in rows if a[3] == rid]
    if scope is not None:
        s = scope.rstrip("/").lower()
        rows = [a for a in rows if a[4].lower() == s or (include_inherited and covers(a[4], s))]
    return [to_json(a, dr, store) for a in rows]


def delete(dr: DirectoryRepository, store: Any, *, ids: list[str] | None = None,  # noqa: ANN401
           assignee: str | None = None, role: str | None = None,
           scope: str | None = None) -> list[dict]:
    """Delete assignments by id, or by assignee/role/scope; returns what was deleted. Access
    they granted ends at once (every request reads the assignments)."""
    if not ids and assignee is None and role is None and scope is None:
        raise InvalidArgument("Please provide at least one of these arguments: --ids, "
                              "--assignee, --role, --scope", target="ids")
    with dr.transaction():
        if ids:
            wanted = {i.rstrip("/").rsplit("/", 1)[-1].lower() for i in ids}
            gone = [a for a in dr.assignments() if a[0].lower() in wanted]
        else:
            gone = [a for a in dr.assignments()
                    if a[0] in {x["name"] for x in list_(dr, store, assignee=assignee,
                                                           role=role, scope=scope)}]
        if not gone:
            raise NotFound("No matched assignments were found to delete",
                           target="roleAssignment", code="RoleAssignmentNotFound")
        out = [to_json(a, dr, store) for a in gone]
        for a in gone:
            dr.delete_assignment(a[0])
    return out
