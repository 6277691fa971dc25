"""Custom role definitions: ``imagestore role definition create|update|delete``, in az's
shape and with az's and ARM's rules.

Input (``--role-definition``: the JSON itself, ``@FILE`` or a file path, as az takes it)::

    {"Name": "Gallery Operator", "Description": "…",
     "Actions": ["Microsoft.Compute/galleries/*/read"], "NotActions": [],
     "DataActions": [], "NotDataActions": [],
     "AssignableScopes": ["/subscriptions/…/resourceGroups/rg1"]}

Keys in PascalCase or camelCase (az lower-cases the first letter). Rules:

- ``Name``: 1-256 printable characters, unique in the store in any case, and not a built-in
  role's name (409 ``RoleDefinitionWithSameNameExists``).
- ``Actions`` / ``NotActions`` / ``DataActions`` / ``NotDataActions``: lists of at most 1024
  operation strings ``Namespace/type[/type…]/verb``: ``/``-separated segments of letters,
  digits, ``. _ -`` and ``*``; the verb (last segment) is ``read``, ``write``, ``delete`` or
  ``action`` unless the segment holds a wildcard; a lone ``*`` is every action. Unknown
  providers are accepted (imagestore has no operations catalogue to check against). At
  least one action or data action. Wildcards match as in the built-ins (:func:`.roles.matches`:
  ``*`` is any run of characters, ``/`` included, case-insensitive).
- ``AssignableScopes``: required, 1-64 scopes, each a well-formed scope under a subscription
  of the directory; not the root ``/`` (Azure refuses it for custom roles).
- Update replaces the definition (az's PUT); it may not drop a scope that still has
  assignments of the role under it, delete is refused while any assignment uses the role
  (409 ``RoleDefinitionHasAssignments``); built-in roles can be neither.

Data actions are stored and shown but grant nothing in imagestore (decision, see
docs/architecture.md): Azure checks them only on data planes with Entra ID auth, and the one
data path here, a disk's export SAS, is its own credential (``dataAccessAuthMode`` None).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..gallery.directory_repository import DirectoryRepository
from . import assignments, roles

MAX_NAME = 256
MAX_DESCRIPTION = 2048
MAX_ENTRIES = 1024
MAX_SCOPES = 64
MAX_ACTION = 512
PERMISSION_KEYS = ("actions", "notActions", "dataActions", "notDataActions")
_KNOWN = {"name", "id", "roleName", "isCustom", "description", "assignableScopes",
          *PERMISSION_KEYS}
_SEGMENT = re.compile(r"^[A-Za-z0-9._*-]+$")
_VERBS = {"read", "write", "delete", "action"}
F = "roleDefinition"


def load(text: str) -> dict:
    """The ``--role-definition`` value as a JSON object: inline JSON, ``@FILE`` or a path."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"{F}: required (JSON, @FILE or a file path)", target=F)
    raw = text.strip()
    path = raw[1:] if raw.startswith("@") else None
    if path is None and raw[:1] not in "{[\"" and os.path.isfile(raw):
        path = raw  # az takes a file path as it is
    if path is not None:
        if not os.path.isfile(path):
            raise InvalidArgument(f"{F}: {path}: no such file (give the JSON, @FILE or a "
                                  f"file path)", target=F)
        try:
            with open(path, encoding="utf-8") as f:
                raw = f.read(1 << 20)
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"{F}: {path}: cannot be read ({e})", target=F) from None
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"{F}: not valid JSON ({e})", target=F) from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{F}: must be a JSON object", target=F)
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = k[:1].lower() + k[1:] if isinstance(k, str) else k
        if key not in _KNOWN:
            raise InvalidArgument(f"{F}: unknown property '{k}' (expected Name, Description, "
                                  f"Actions, NotActions, DataActions, NotDataActions, "
                                  f"AssignableScopes)", target=F)
        if key in out:
            raise InvalidArgument(f"{F}: property '{k}' given twice", target=F)
        out[key] = v
    return out


def _text(field: str, value: Any, limit: int, *, required: bool) -> str:  # noqa: ANN401
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit \
            or any(ord(c) < 32 for c in value):
        raise InvalidArgument(f"{F}.{field}: {value!r} must be {'1' if required else '0'}-"
                              f"{limit} printable characters", target=f"{F}.{field}")
    return value.strip()


def check_action(field: str, action: Any) -> str:  # noqa: ANN401 - JSON
    """One operation pattern, syntax-checked (see the module's rules)."""
    where = f"{F}.{field}"
    if not isinstance(action, str) or not action or len(action) > MAX_ACTION:
        raise InvalidArgument(f"{where}: {action!r} is not an operation (a string of 1-"
                              f"{MAX_ACTION} characters)", target=where)
    if action == "*":
        return action
    segs = action.split("/")
    bad = next((s for s in segs if not _SEGMENT.fullmatch(s)), None)
    if bad is not None:
        raise InvalidArgument(f"{where}: {action!r} is not an operation: segment {bad!r} may "
                              f"hold only letters, digits, '.', '_', '-' and '*'", target=where)
    if len(segs) < 2:
        raise InvalidArgument(f"{where}: {action!r} is not an operation "
                              f"(Namespace/type/…/verb, or *)", target=where)
    last = segs[-1]
    if "*" not in last and last.lower() not in _VERBS:
        raise InvalidArgument(f"{where}: {action!r} does not end in an operation verb (read, "
                              f"write, delete, action) or a wildcard", target=where)
    return action


def _actions(doc: dict, key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    label = key[:1].upper() + key[1:]
    if not isinstance(value, list) or len(value) > MAX_ENTRIES:
        raise InvalidArgument(f"{F}.{label}: must be a list of at most {MAX_ENTRIES} "
                              f"operations", target=f"{F}.{label}")
    out: list[str] = []
    for a in value:
        a = check_action(label, a)
        if a.lower() not in (x.lower() for x in out):
            out.append(a)
    return tuple(out)


def _scopes(dr: DirectoryRepository, doc: dict) -> tuple[str, ...]:
    value = doc.get("assignableScopes")
    where = f"{F}.AssignableScopes"
    if not isinstance(value, list) or not value or len(value) > MAX_SCOPES:
        raise InvalidArgument(f"{where}: required: a list of 1-{MAX_SCOPES} scopes "
                              f"(/subscriptions/S[/resourceGroups/RG[/providers/…]])",
                              target=where)
    out: list[str] = []
    for s in value:
        if isinstance(s, str) and s.strip() == "/":
            raise InvalidArgument(f"{where}: the root scope '/' cannot be used by a custom "
                                  f"role; name subscriptions or resource groups", target=where)
        if not isinstance(s, str):
            raise InvalidArgument(f"{where}: {s!r} is not a scope", target=where)
        s = assignments.check_scope(dr, s)
        if s.lower() not in (x.lower() for x in out):
            out.append(s)
    return tuple(out)


def parse(dr: DirectoryRepository, doc: dict, *, guid: str) -> roles.RoleDefinition:
    """The role ``doc`` describes (checked), with id ``guid``."""
    name = _text("Name", doc.get("name") or doc.get("roleName"), MAX_NAME, required=True)
    desc = _text("Description", doc.get("description"), MAX_DESCRIPTION, required=False)
    perms = {k: _actions(doc, k) for k in PERMISSION_KEYS}
    if not perms["actions"] and not perms["dataActions"]:
        raise InvalidArgument(f"{F}.Actions: at least one action or data action is required",
                              target=f"{F}.Actions")
    return roles.RoleDefinition(guid, name, desc, perms["actions"], perms["notActions"],
                                perms["dataActions"], perms["notDataActions"],
                                _scopes(dr, doc), custom=True)


def scopes_of(dr: DirectoryRepository, text: str) -> list[str]:
    """The assignable scopes ``--role-definition`` names (for authorizing it under --as)."""
    return scopes_of_doc(dr, load(text))


def scopes_of_doc(dr: DirectoryRepository, doc: dict) -> list[str]:
    """The assignable scopes of a parsed role document (checked)."""
    return list(_scopes(dr, doc))


def _row_args(r: roles.RoleDefinition) -> tuple[str, str, str, str]:
    perms = {"actions": list(r.actions), "notActions": list(r.not_actions),
             "dataActions": list(r.data_actions), "notDataActions": list(r.not_data_actions)}
    return r.name, r.description, json.dumps(perms), json.dumps(list(r.assignable_scopes))


def _unique_name(dr: DirectoryRepository, name: str, guid: str) -> None:
    row = dr.role(name)
    if any(r.name.lower() == name.lower() for r in roles.BUILT_IN) or (
            row is not None and row[0].lower() != guid.lower() and row[1].lower() == name.lower()):
        raise Conflict("A custom role with the same name already exists in this directory. Use "
                       "a different name.", target=f"{F}.Name",
                       code="RoleDefinitionWithSameNameExists")


def create(dr: DirectoryRepository, text: str, *, by: str = assignments.OWNER_ID) -> dict:
    """Create a custom role from ``--role-definition``; returns it as az prints it."""
    return create_from(dr, load(text), by=by)


def create_from(dr: DirectoryRepository, doc: dict, *, by: str = assignments.OWNER_ID,
                guid: str | None = None) -> dict:
    """Create the custom role ``doc`` describes (the REST PUT: with the URL's ``guid``)."""
    if "assignableScopes" not in doc:
        raise InvalidArgument("please provide 'assignableScopes'", target=f"{F}.AssignableScopes")
    with dr.transaction():
        r = parse(dr, doc, guid=guid or str(uuid.uuid4()))
        _unique_name(dr, r.name, r.guid)
        dr.add_role(r.guid, *_row_args(r), by)
        return roles.from_row(dr.role(r.guid)).to_json(_subscription(r))


def _subscription(r: roles.RoleDefinition) -> str:
    return r.assignable_scopes[0].split("/")[2]


def existing(dr: DirectoryRepository, ident: str) -> roles.RoleDefinition:
    """The custom role named or numbered ``ident``; a built-in is refused."""
    if roles.find(ident) is not None:
        raise InvalidArgument(f"role '{ident}' is a built-in role: it cannot be changed or "
                              f"deleted", target="name", code="BuiltInRoleNotModifiable")
    r = roles.find(ident, dr)
    if r is None:
        raise NotFound(f"Role '{ident}' doesn't exist.", target="name",
                       code="RoleDefinitionDoesNotExist")
    return r


def _assigned_outside(dr: DirectoryRepository, role_id: str,
                      scopes: tuple[str, ...]) -> str | None:
    probe = roles.RoleDefinition(role_id, "", "", (), assignable_scopes=scopes, custom=True)
    return next((a[4] for a in dr.assignments() if a[3] == role_id
                 and not probe.assignable_at(a[4])), None)


def update(dr: DirectoryRepository, text: str, *, by: str = assignments.OWNER_ID) -> dict:
    """Replace a custom role (found by the JSON's ``Id``, which allows a new ``Name``, or by
    ``Name``: its name or GUID, as az); omitted AssignableScopes stay; returns it."""
    return update_from(dr, load(text), by=by)


def update_from(dr: DirectoryRepository, doc: dict, *, by: str = assignments.OWNER_ID) -> dict:
    """Like :func:`update`, from the parsed JSON."""
    ident = doc.get("id") or doc.get("name") or doc.get("roleName")
    if not isinstance(ident, str) or not ident.strip():
        raise InvalidArgument(f"{F}: give the role's Name or Id to update it", target=F)
    with dr.transaction():
        cur = existing(dr, ident)
        merged = {"assignableScopes": list(cur.assignable_scopes), **doc}
        if not doc.get("id"):  # Name found the role (its name or GUID): the name stays
            merged.pop("roleName", None)
            merged["name"] = cur.name
        elif not (doc.get("name") or doc.get("roleName")):
            merged["name"] = cur.name
        r = parse(dr, merged, guid=cur.guid)
        _unique_name(dr, r.name, r.guid)
        outside = _assigned_outside(dr, cur.guid, r.assignable_scopes)
        if outside is not None:
            raise Conflict(f"There are existing role assignments referencing role at scope "
                           f"'{outside}', outside the new AssignableScopes.",
                           target=f"{F}.AssignableScopes", code="RoleDefinitionHasAssignments")
        dr.update_role(r.guid, *_row_args(r), by)
        return roles.from_row(dr.role(r.guid)).to_json(_subscription(r))


def delete(dr: DirectoryRepository, ident: str) -> dict:
    """Delete a custom role no assignment uses; returns what was deleted."""
    with dr.transaction():
        r = existing(dr, ident)
        if dr.role_in_use(r.guid):
            raise Conflict("There are existing role assignments referencing role (code: "
                           "RoleDefinitionHasAssignments)", target="name",
                           code="RoleDefinitionHasAssignments")
        dr.delete_role(r.guid)
    return r.to_json(_subscription(r))
