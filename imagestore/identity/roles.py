"""Role definitions: Azure's built-in roles that concern galleries, verbatim (names, ids,
descriptions, actions, notActions, dataActions, notDataActions, as in
MicrosoftDocs/azure-docs ``role-based-access-control/built-in-roles/{general,privileged,
compute}.md``), and the matching of an action against a role.

ARM compares actions case-insensitively and ``*`` matches any run of characters (also
``/``): ``*/read`` covers ``Microsoft.Compute/galleries/images/read``. A role allows an
action when one of its ``actions`` matches and none of its ``notActions`` does.

Custom roles (:mod:`.custom_roles`, rows of ``0011_custom_roles``) are the same
:class:`RoleDefinition` with ``custom`` set and their own ``assignableScopes``; every lookup
that takes a directory (``dr``) finds them after the built-ins.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import NotFound


@dataclass(frozen=True)
class RoleDefinition:
    """One role definition (a built-in, or a custom role of the store)."""

    guid: str
    name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    assignable_scopes: tuple[str, ...] = ("/",)
    custom: bool = False
    #: created, createdBy, updated, updatedBy of a custom role
    audit: tuple[str, ...] = field(default=(), compare=False)

    def allows(self, action: str) -> bool:
        """Whether this role grants ``action`` (actions minus notActions)."""
        return (any(matches(p, action) for p in self.actions)
                and not any(matches(p, action) for p in self.not_actions))

    def definition_id(self, subscription: str | None = None) -> str:
        """The definition's ARM id (under a subscription, as az prints it)."""
        prefix = f"/subscriptions/{subscription}" if subscription else ""
        return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{self.guid}"

    def to_json(self, subscription: str | None = None) -> dict:
        """As ``az role definition list`` prints it."""
        out: dict[str, Any] = {
            "assignableScopes": list(self.assignable_scopes),
            "description": self.description,
            "id": self.definition_id(subscription),
            "name": self.guid,
            "permissions": [{
                "actions": list(self.actions), "notActions": list(self.not_actions),
                "dataActions": list(self.data_actions),
                "notDataActions": list(self.not_data_actions),
            }],
            "roleName": self.name,
            "roleType": "CustomRole" if self.custom else "BuiltInRole",
            "type": "Microsoft.Authorization/roleDefinitions",
        }
        if self.custom and self.audit:
            out.update(zip(("createdOn", "createdBy", "updatedOn", "updatedBy"), self.audit,
                           strict=True))
        return out

    def assignable_at(self, scope: str) -> bool:
        """Whether the role may be assigned at ``scope`` (at or under an assignable scope)."""
        s = scope.lower().rstrip("/")
        return any(a == "/" or s == a.lower().rstrip("/") or s.startswith(a.lower().rstrip("/") + "/")
                   for a in self.assignable_scopes)


def from_row(row: tuple) -> RoleDefinition:
    """A custom role from its row (:meth:`DirectoryRepository.role`)."""
    ident, name, desc, perms, scopes, created, created_by, updated, updated_by = row
    p = json.loads(perms)
    return RoleDefinition(ident, name, desc, tuple(p.get("actions", ())),
                          tuple(p.get("notActions", ())), tuple(p.get("dataActions", ())),
                          tuple(p.get("notDataActions", ())), tuple(json.loads(scopes)),
                          custom=True, audit=(created, created_by, updated, updated_by))


@lru_cache(maxsize=1024)
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in p.split("*")), re.IGNORECASE)


def matches(pattern: str, action: str) -> bool:
    """ARM's action match: case-insensitive, ``*`` = any characters."""
    return _pattern(pattern).fullmatch(action) is not None


OWNER = RoleDefinition(
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
    "Grants full access to manage all resources, including the ability to assign roles in "
    "Azure RBAC.", ("*",))
CONTRIBUTOR = RoleDefinition(
    "b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
    "Grants full access to manage all resources, but does not allow you to assign roles in "
    "Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
    ("*",),
    ("Microsoft.Authorization/*/Delete",
     "Microsoft.Authorization/*/Write",
     "Microsoft.Authorization/elevateAccess/Action",
     "Microsoft.Blueprint/blueprintAssignments/write",
     "Microsoft.Blueprint/blueprintAssignments/delete",
     "Microsoft.Compute/galleries/share/action",
     "Microsoft.Purview/consents/write",
     "Microsoft.Purview/consents/delete",
     "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
     "Microsoft.Subscription/cancel/action",
     "Microsoft.Subscription/enable/action"))
READER = RoleDefinition(
    "acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
    "View all resources, but does not allow you to make any changes.", ("*/read",))
SHARING_ADMIN = RoleDefinition(
    "1ef6a3be-d0ac-425d-8c01-acb62866290b", "Compute Gallery Sharing Admin",
    "This role allows user to share gallery to another subscription/tenant or share it to the "
    "public.", ("Microsoft.Compute/galleries/share/action",))
ARTIFACTS_PUBLISHER = RoleDefinition(
    "85a2d0d9-2eba-4c9c-b355-11c2cc0788ab", "Compute Gallery Artifacts Publisher",
    "This is the role for publishing gallery artifacts.",
    ("Microsoft.Compute/galleries/*",
     "Microsoft.Compute/locations/capsOperations/read",
     "Microsoft.Compute/locations/communityGalleries/*",
     "Microsoft.Compute/locations/sharedGalleries/*",
     "Microsoft.Compute/images/*",
     "Microsoft.Compute/virtualMachines/write",
     "Microsoft.Compute/disks/write",
     "Microsoft.Authorization/*/read",
     "Microsoft.Insights/alertRules/*",
     "Microsoft.Resources/deployments/*",
     "Microsoft.Resources/subscriptions/resourceGroups/read"),
    ("Microsoft.Compute/galleries/share/action",))
IMAGE_READER = RoleDefinition(
    "cf7c76d2-98a3-4358-a134-615aa78bf44d", "Compute Gallery Image Reader",
    "This is the role for reading gallery images.",
    ("Microsoft.Compute/galleries/images/read",
     "Microsoft.Compute/galleries/images/versions/read"))

BUILT_IN: tuple[RoleDefinition, ...] = (OWNER, CONTRIBUTOR, READER, SHARING_ADMIN,
                                        ARTIFACTS_PUBLISHER, IMAGE_READER)
_BY_KEY = {k: r for r in BUILT_IN for k in (r.guid, r.name.lower())}


def _key(role: str) -> str:
    r = role.strip()
    return r.rstrip("/").rsplit("/", 1)[-1].lower() if "/" in r else r.lower()


def find(role: str, dr: Any = None) -> RoleDefinition | None:  # noqa: ANN401 - a DirectoryRepository
    """A role by name (any case), GUID or definition id: a built-in, else (given the
    directory ``dr``) a custom role."""
    if not isinstance(role, str) or not role.strip():
        return None
    key = _key(role)
    hit = _BY_KEY.get(key)
    if hit is None and dr is not None:
        row = dr.role(key)
        hit = from_row(row) if row else None
    return hit


def get(role: str, dr: Any = None) -> RoleDefinition:  # noqa: ANN401
    """Like :func:`find`; NotFound with az's wording when there is no such role."""
    r = find(role, dr)
    if r is None:
        raise NotFound(f"Role '{role}' doesn't exist.", target="role", code="RoleDefinitionNotFound")
    return r


def list_all(name: str | None = None, dr: Any = None, *,  # noqa: ANN401
             custom_only: bool = False) -> list[RoleDefinition]:
    """The role definitions, built-ins first (``name`` filters by name or id;
    ``custom_only``: only the custom roles)."""
    every = [] if custom_only else list(BUILT_IN)
    if dr is not None:
        every += [from_row(r) for r in dr.roles()]
    if name is None:
        return every
    key = _key(name)
    return [r for r in every if key in (r.guid.lower(), r.name.lower())]
