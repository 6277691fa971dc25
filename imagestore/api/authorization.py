"""``Microsoft.Authorization``: role definitions and role assignments over REST, at any scope
(``az role assignment|definition``, Terraform's azurerm_role_assignment,
azure-mgmt-authorization)::

    GET              {scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=…]
    GET|PUT|DELETE   {scope}/providers/Microsoft.Authorization/roleDefinitions/{id}
    GET              {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]
    GET|PUT|DELETE   {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}

``{scope}`` is a subscription, a resource group or any resource id under them (the SDK's
``…_by_id`` calls send the assignment's or definition's full id, which is the same path);
role definitions are also served at the root (``/providers/…/roleDefinitions``: the
built-ins' ids). The validation and error codes are the CLI's (:mod:`imagestore.identity.
assignments`, :mod:`imagestore.identity.custom_roles`); the bodies are the SDK models'
(``properties`` holding what az prints flat). Authorization is the generic one
(:func:`.authz.action_and_scope`: ``Microsoft.Authorization/roleAssignments/write`` over the
assignment's id, which Owner has and Contributor's notActions forbid); a custom role's write
or delete also needs ``roleDefinitions/write|delete`` on each of its assignable scopes, as
under ``--as``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.routing import Route

from ..errors import Conflict, InvalidArgument, NotFound
from ..gallery.directory_repository import DirectoryRepository
from ..identity import assignments, authorize, custom_roles, roles
from . import authz
from .context import ApiContext
from .routing import ArmRequest, Reply, arm_route, page

NS = "/providers/Microsoft.Authorization"
#: what azure-mgmt-authorization 4.0.0 (2022-04-01 for both) and az's vendored client
#: (assignments 2022-04-01, definitions 2022-05-01-preview) send, and older stable versions
API_VERSIONS: tuple[str, ...] = ("2022-04-01", "2022-05-01-preview", "2022-01-01-preview",
                                 "2020-10-01-preview", "2020-04-01-preview", "2018-07-01",
                                 "2018-01-01-preview", "2015-07-01")
_FILTER_EQ = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_AT_SCOPE = re.compile(r"^\s*atScope\(\)\s*$", re.IGNORECASE)
_ASSIGNED_TO = re.compile(r"^\s*assignedTo\('([^']*)'\)\s*$", re.IGNORECASE)


def _dr(req: ArmRequest) -> DirectoryRepository:
    return DirectoryRepository(req.svc.repo.con)


def _scope(req: ArmRequest) -> str:
    """The request's ``{scope}`` ('' for the root), checked as the CLI checks ``--scope``."""
    raw = req.path.get("scope", "")
    if not raw:
        return ""
    return assignments.check_scope(_dr(req), "/" + raw.strip("/"))


def _filter(req: ArmRequest) -> tuple[str, str] | None:
    """The ``$filter`` as (kind, value): ('atScope', ''), ('assignedTo', oid) or
    (property, value); 400 InvalidFilter for anything else."""
    text = req.query.get("$filter")
    if text is None or not text.strip():
        return None
    if _AT_SCOPE.match(text):
        return ("atScope", "")
    m = _ASSIGNED_TO.match(text)
    if m:
        return ("assignedTo", m[1])
    m = _FILTER_EQ.match(text)
    if m:
        return (m[1], m[2])
    raise InvalidArgument(f"$filter: '{text[:200]}' is not supported (atScope(), "
                          f"assignedTo('ID'), principalId eq 'ID', roleName eq 'NAME', type eq "
                          f"'CustomRole')", target="$filter", code="InvalidFilter")


def _by(req: ArmRequest) -> str:
    return assignments.OWNER_ID if authorize.is_owner(req.claims) else req.claims.oid


# -- role assignments --------------------------------------------------------------------------


def assignment_json(flat: dict) -> dict:
    """azure-mgmt-authorization's ``RoleAssignment``: what az prints flat, under
    ``properties`` (the principal's and role's names are az's own look-ups, not ARM's)."""
    props = {k: v for k, v in flat.items()
             if k not in ("id", "name", "type", "principalName", "roleDefinitionName")}
    return {"id": flat["id"], "name": flat["name"], "type": flat["type"], "properties": props}


def _guid(name: str) -> str:
    try:
        return str(uuid.UUID(name))
    except ValueError:
        raise InvalidArgument(f"The role assignment ID '{name[:100]}' is not valid. The role "
                              f"assignment ID must be a GUID.", target="roleAssignmentName",
                              code="InvalidRoleAssignmentId") from None


def _find_assignment(req: ArmRequest, scope: str, name: str) -> dict | None:
    rows = assignments.list_(_dr(req), req.ctx.home, scope=scope)
    return next((a for a in rows if a["name"].lower() == name.lower()), None)


def put_assignment(req: ArmRequest) -> Reply:
    body = req.require_body()
    props = body.get("properties")
    if not isinstance(props, dict):
        raise InvalidArgument("properties: required: {roleDefinitionId, principalId}",
                              target="properties")
    role_id, pid = props.get("roleDefinitionId"), props.get("principalId")
    for field, value in (("roleDefinitionId", role_id), ("principalId", pid)):
        if not isinstance(value, str) or not value.strip() or len(value) > 1024:
            raise InvalidArgument(f"properties.{field}: required: a string",
                                  target=f"properties.{field}")
    name = _guid(req.path["roleAssignmentName"])
    with req.ctx.writing():
        dr = _dr(req)
        scope = _scope(req)
        if not scope:
            raise InvalidArgument("scope: a role assignment needs a subscription, resource "
                                  "group or resource scope", target="scope")
        if roles.find(role_id, dr) is None:
            raise InvalidArgument(f"The specified role definition with ID "
                                  f"'{role_id.rstrip('/').rsplit('/', 1)[-1]}' does not exist.",
                                  target="properties.roleDefinitionId",
                                  code="RoleDefinitionDoesNotExist")
        same = _find_assignment(req, scope, name)
        if same is not None:
            r = roles.get(role_id, dr)
            if (same["principalId"].lower() == pid.strip().lower()
                    and same["roleDefinitionId"].lower().endswith(r.guid.lower())):
                return Reply(201, assignment_json(same))  # ARM: a repeated PUT is a no-op
            raise InvalidArgument("Tenant ID, application ID, principal ID, and scope are not "
                                  "allowed to be updated.", target="properties",
                                  code="RoleAssignmentUpdateNotPermitted")
        if any(a[0].lower() == name for a in dr.assignments()):
            raise Conflict(f"The role assignment '{name}' exists at another scope.",
                           target="roleAssignmentName", code="RoleAssignmentExists")
        out = assignments.create(dr, req.ctx.home, pid.strip(), role_id, scope,
                                 created_by=_by(req), name=name)
    return Reply(201, assignment_json(out))


def get_assignment(req: ArmRequest) -> Reply:
    a = _find_assignment(req, _scope(req), req.path["roleAssignmentName"])
    if a is None:
        raise NotFound("The role assignment does not exist.", target="roleAssignmentName",
                       code="RoleAssignmentNotFound")
    return Reply(200, assignment_json(a))


def delete_assignment(req: ArmRequest) -> Reply:
    with req.ctx.writing():
        a = _find_assignment(req, _scope(req), req.path["roleAssignmentName"])
        if a is None:
            return Reply(204)
        assignments.delete(_dr(req), req.ctx.home, ids=[a["name"]])
    return Reply(200, assignment_json(a))


def list_assignments(req: ArmRequest) -> Reply:
    """ARM's list at a scope: the assignments at, above and below it; ``atScope()``: at or
    above; ``principalId eq`` / ``assignedTo()``: that principal's."""
    scope = _scope(req)
    f = _filter(req)
    rows = assignments.list_(_dr(req), req.ctx.home)
    s = scope or "/"

    def related(a: str) -> bool:
        return not scope or assignments.covers(a, s) or assignments.covers(s, a)

    if f is None:
        rows = [a for a in rows if related(a["scope"])]
    elif f[0] == "atScope":
        rows = [a for a in rows if not scope or assignments.covers(a["scope"], s)]
    elif f[0].lower() == "principalid" or f[0] == "assignedTo":
        rows = [a for a in rows if related(a["scope"]) and a["principalId"].lower()
                == f[1].strip().lower()]
    else:
        raise InvalidArgument(f"$filter: role assignments filter on atScope(), assignedTo() or "
                              f"principalId, not '{f[0]}'", target="$filter",
                              code="InvalidFilter")
    return page(req, [assignment_json(a) for a in rows])


# -- role definitions --------------------------------------------------------------------------


def definition_json(r: roles.RoleDefinition, subscription: str | None) -> dict:
    """azure-mgmt-authorization's ``RoleDefinition`` (``properties.type``: BuiltInRole or
    CustomRole)."""
    flat = r.to_json(subscription)
    props = {"roleName": flat["roleName"], "type": flat["roleType"],
             "description": flat["description"], "assignableScopes": flat["assignableScopes"],
             "permissions": flat["permissions"]}
    for k in ("createdOn", "updatedOn", "createdBy", "updatedBy"):
        if k in flat:
            props[k] = flat[k]
    return {"id": flat["id"], "name": flat["name"], "type": flat["type"], "properties": props}


def _sub_of(scope: str) -> str | None:
    return scope.split("/")[2] if scope else None


def _definition_doc(req: ArmRequest) -> dict:
    """The PUT body as the CLI's ``--role-definition`` JSON (one permissions entry)."""
    body = req.require_body()
    props = body.get("properties")
    if not isinstance(props, dict):
        raise InvalidArgument("properties: required: {roleName, permissions, "
                              "assignableScopes}", target="properties")
    doc: dict[str, Any] = {"name": props.get("roleName")}
    if props.get("description") is not None:
        doc["description"] = props["description"]
    if props.get("type") not in (None, "CustomRole"):
        raise InvalidArgument(f"properties.type: '{str(props['type'])[:50]}': only a "
                              f"CustomRole can be created", target="properties.type")
    perms = props.get("permissions", [])
    if not isinstance(perms, list) or len(perms) > 1 or not all(isinstance(p, dict)
                                                                 for p in perms):
        raise InvalidArgument("properties.permissions: a list of one {actions, notActions, "
                              "dataActions, notDataActions}", target="properties.permissions")
    for p in perms:
        for k, v in p.items():
            if k not in custom_roles.PERMISSION_KEYS:
                raise InvalidArgument(f"properties.permissions: unknown property "
                                      f"'{str(k)[:50]}'", target="properties.permissions")
            doc[k] = v
    if "assignableScopes" in props:
        doc["assignableScopes"] = props["assignableScopes"]
    return doc


def _check_role_scopes(req: ArmRequest, action: str, scopes: list[str]) -> None:
    """Writing or deleting a custom role needs ``action`` on each assignable scope."""
    for s in dict.fromkeys(scopes):
        g = authz.guard(_dr(req), req.claims, action, s)
        if g is not None:
            g()


def put_definition(req: ArmRequest) -> Reply:
    doc = _definition_doc(req)
    ident = req.path["roleDefinitionId"]
    try:
        guid = str(uuid.UUID(ident))
    except ValueError:
        raise InvalidArgument(f"The role definition ID '{ident[:100]}' is not valid; it must "
                              f"be a GUID.", target="roleDefinitionId",
                              code="InvalidRoleDefinitionId") from None
    with req.ctx.writing():
        dr = _dr(req)
        _scope(req)
        if roles.find(guid) is not None:
            custom_roles.existing(dr, guid)  # a built-in: refused
        cur = roles.find(guid, dr)
        action = "Microsoft.Authorization/roleDefinitions/write"
        new_scopes = custom_roles.scopes_of_doc(dr, doc) if "assignableScopes" in doc else []
        _check_role_scopes(req, action, [*(cur.assignable_scopes if cur else ()), *new_scopes])
        if cur is None:
            out = custom_roles.create_from(dr, doc, by=_by(req), guid=guid)
            status = 201
        else:
            out = custom_roles.update_from(dr, {**doc, "id": guid}, by=_by(req))
            status = 200
    r = roles.find(out["name"], dr)
    return Reply(status, definition_json(r, _sub_of(_scope(req)) or out["id"].split("/")[2]))


def get_definition(req: ArmRequest) -> Reply:
    scope = _scope(req)
    r = roles.find(req.path["roleDefinitionId"], _dr(req))
    if r is None:
        raise NotFound(f"The specified role definition with ID "
                       f"'{req.path['roleDefinitionId'][:100]}' does not exist.",
                       target="roleDefinitionId", code="RoleDefinitionDoesNotExist")
    return Reply(200, definition_json(r, _sub_of(scope)))


def delete_definition(req: ArmRequest) -> Reply:
    scope = _scope(req)
    with req.ctx.writing():
        dr = _dr(req)
        ident = req.path["roleDefinitionId"]
        r = roles.find(ident, dr)
        if r is None:
            return Reply(204)
        if r.custom:
            _check_role_scopes(req, "Microsoft.Authorization/roleDefinitions/delete",
                               list(r.assignable_scopes))
        custom_roles.delete(dr, ident)  # a built-in: refused
    return Reply(200, definition_json(r, _sub_of(scope)))


def list_definitions(req: ArmRequest) -> Reply:
    """The built-ins and the custom roles assignable at, above or below the scope;
    ``$filter``: ``roleName eq 'NAME'`` or ``type eq 'BuiltInRole|CustomRole'``."""
    scope = _scope(req)
    f = _filter(req)
    every = roles.list_all(None, _dr(req))
    if scope:
        every = [r for r in every if not r.custom or r.assignable_at(scope)
                 or any(assignments.covers(scope, a) for a in r.assignable_scopes)]
    if f is not None:
        key, value = f[0].lower(), f[1].lower()
        if key == "rolename":
            every = [r for r in every if r.name.lower() == value]
        elif key == "type":
            every = [r for r in every if ("customrole" if r.custom else "builtinrole") == value]
        else:
            raise InvalidArgument(f"$filter: role definitions filter on roleName or type, not "
                                  f"'{f[0]}'", target="$filter", code="InvalidFilter")
    return page(req, [definition_json(r, _sub_of(scope)) for r in every])


def routes(ctx: ApiContext) -> list[Route]:
    defs, asg = NS + "/roleDefinitions", NS + "/roleAssignments"
    out = []
    for prefix in ("/{scope:path}", ""):
        out += [
            arm_route(ctx, prefix + defs, ["GET"], list_definitions, API_VERSIONS),
            arm_route(ctx, prefix + defs + "/{roleDefinitionId}", ["GET"], get_definition,
                      API_VERSIONS),
            arm_route(ctx, prefix + defs + "/{roleDefinitionId}", ["PUT"], put_definition,
                      API_VERSIONS),
            arm_route(ctx, prefix + defs + "/{roleDefinitionId}", ["DELETE"],
                      delete_definition, API_VERSIONS),
            arm_route(ctx, prefix + asg, ["GET"], list_assignments, API_VERSIONS),
            arm_route(ctx, prefix + asg + "/{roleAssignmentName}", ["GET"], get_assignment,
                      API_VERSIONS),
            arm_route(ctx, prefix + asg + "/{roleAssignmentName}", ["PUT"], put_assignment,
                      API_VERSIONS),
            arm_route(ctx, prefix + asg + "/{roleAssignmentName}", ["DELETE"],
                      delete_assignment, API_VERSIONS),
        ]
    return out
