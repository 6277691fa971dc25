"""Authorization: may a principal perform an action over a scope?

ARM's rule: allowed when some role assignment of the principal — or of a group it belongs
to, transitively — sits at the scope or an enclosing one (subscription → resource group →
gallery → image definition → version), and that role's ``actions`` match the action while
its ``notActions`` do not (case-insensitive, ``*`` wildcards; :mod:`.roles`). Nothing is
cached: deleting an assignment or a group membership takes effect on the next request.

Refusals are :class:`~imagestore.errors.AuthorizationFailed` with ARM's message (403 on the
REST API, exit 14 on the CLI).
"""

from __future__ import annotations

from ..errors import AuthorizationFailed
from ..gallery.directory_repository import DirectoryRepository
from . import directory, roles
from .assignments import covers
from .tokens import Claims


def is_owner(claims: Claims) -> bool:
    """Whether a verified token is the store owner's (full access, no RBAC): every token
    except those issued to a directory principal (``xms_rbac``) or by the client-credentials
    endpoint to a service principal (``idtyp`` ``app``)."""
    return not (claims.raw.get("xms_rbac") is True or claims.raw.get("idtyp") == "app")


def message(client: str, object_id: str, action: str, scope: str) -> str:
    """ARM's AuthorizationFailed text."""
    return (f"The client '{client}' with object id '{object_id}' does not have authorization "
            f"to perform action '{action}' over scope '{scope}' or the scope is invalid. If "
            f"access was recently granted, please refresh your credentials.")


def allowed(dr: DirectoryRepository, object_id: str, action: str, scope: str) -> bool:
    """Whether any assignment of the principal or its groups grants ``action`` at ``scope``."""
    ids = [object_id, *sorted(directory.transitive_groups(dr, object_id))]
    custom: dict[str, roles.RoleDefinition | None] = {}
    for row in dr.assignments_of(ids):
        if not covers(row[4], scope):
            continue
        role = roles.find(row[3])
        if role is None:  # a custom role: read once per check
            if row[3] not in custom:
                custom[row[3]] = roles.find(row[3], dr)
            role = custom[row[3]]
        if role is not None and role.allows(action):
            return True
    return False


def check(dr: DirectoryRepository, object_id: str, action: str, scope: str, *,
          client: str | None = None) -> None:
    """Raise AuthorizationFailed unless the principal may perform ``action`` over ``scope``.
    ``client``: the name ARM shows first (the UPN or app id; default the object id)."""
    if not allowed(dr, object_id, action, scope):
        raise AuthorizationFailed(message(client or object_id, object_id, action, scope),
                                  action=action, scope=scope)
