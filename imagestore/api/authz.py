"""Which RBAC action a route performs, over which scope, and the check before the handler.

The action is derived from the route's path template, as ARM names operations: the
provider namespace and the resource-type segments (names dropped), then the verb — ``read``
for GET/HEAD, ``write`` for PUT/PATCH, ``delete`` for DELETE, and for a POST the last
segment + ``/action``::

    GET  …/galleries/{g}/images/{i}/versions/{v}  Microsoft.Compute/galleries/images/versions/read
    POST …/disks/{d}/beginGetAccess               Microsoft.Compute/disks/beginGetAccess/action
    PUT  /subscriptions/{s}/resourceGroups/{rg}   Microsoft.Resources/subscriptions/resourceGroups/write

A PUT whose body references other resources (a version's source, a disk's image, a VM's
disks) also needs the linked action on each (:func:`linked`; 403
``LinkedAuthorizationFailed``).

The scope is the request's resource path (a collection's path for a list; a POST action's
resource without the action segment). Not authorized beyond the token (decisions): the
subscription and tenant lists (``/subscriptions``, ``/tenants``: every signed-in principal
may list them in Azure), and polling a long-running operation (``…/locations/{l}/operations``,
``operationResults``, ``DiskOperations``: its id is unguessable and Azure lets the caller who
started it poll it whatever its scope), and community galleries (``…/locations/{l}/
communityGalleries/…``: open to every signed-in principal of any tenant, issue 15).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..gallery.directory_repository import DirectoryRepository
from ..identity import authorize
from ..identity import linked as linked_mod
from ..identity.tokens import Claims

_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
_UNCHECKED_TYPES = {"operations", "operationresults", "diskoperations", "communitygalleries"}


def action_and_scope(method: str, template: str, path: str) -> tuple[str, str] | None:
    """(action, scope) of a request, or None when the route is not RBAC-checked."""
    if AUTHORIZATION in template:
        return _extension(method, path)
    tsegs = template.strip("/").split("/")
    psegs = path.strip("/").split("/")
    if len(tsegs) != len(psegs) or tsegs[0] != "subscriptions" or len(tsegs) < 2:
        return None
    if "providers" in tsegs:
        i = tsegs.index("providers")
        namespace = psegs[i + 1]
        rest = tsegs[i + 2:]
    else:  # /subscriptions/{s}/resourceGroups/{rg}
        namespace = "Microsoft.Resources"
        rest = tsegs
    types = [t for t in rest if not t.startswith("{")]
    if not types or any(t.lower() in _UNCHECKED_TYPES for t in types):
        return None
    if method == "POST":
        action = "/".join([namespace, *types[:-1], types[-1], "action"])
        scope_segs = psegs[:-1]
    else:
        action = "/".join([namespace, *types, _VERBS.get(method, "read")])
        scope_segs = psegs
    return action, "/" + "/".join(scope_segs)


AUTHORIZATION = "/providers/Microsoft.Authorization/"


def _extension(method: str, path: str) -> tuple[str, str] | None:
    """A ``Microsoft.Authorization`` route over any scope (:mod:`.authorization`): its types
    after the last ``providers/Microsoft.Authorization``, over the whole path (ARM names the
    assignment's id as the scope). At the root a read is open (the built-in definitions) and
    a write is checked over ``/``, which no assignment under a subscription covers."""
    i = path.lower().rfind(AUTHORIZATION.lower())
    if i < 0:
        return None
    types = path[i + len(AUTHORIZATION):].strip("/").split("/")[0::2]
    verb = _VERBS.get(method, "read")
    action = "/".join(["Microsoft.Authorization", *types, verb])
    if i == 0:
        return None if verb == "read" else (action, "/")
    return action, path.rstrip("/")


_ID_KEYS = {"id", "virtualmachineid", "sourceresourceid", "storageaccountid"}


def _ids(node: Any, out: list[str], top: bool = True) -> None:  # noqa: ANN401 - JSON
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and k.lower() in _ID_KEYS and not top:
                out.append(v)
            elif isinstance(v, (dict, list)):
                _ids(v, out, top=False)
    elif isinstance(node, list):
        for v in node:
            _ids(v, out, top=False)


def linked(template: str, body: Any) -> list[tuple[str, str]]:  # noqa: ANN401 - JSON
    """(action, scope) on every resource a PUT's body references
    (:func:`imagestore.identity.linked.actions`: the version source table for an image
    version, ``read`` otherwise, ``listKeys`` on a storage account)."""
    if not isinstance(body, dict):
        return []
    found: list[str] = []
    _ids(body.get("properties"), found, top=False)
    is_version = template.rstrip("/").endswith("/versions/{galleryImageVersionName}")
    return linked_mod.actions(found, for_version=is_version)


def caller(claims: Claims) -> linked_mod.Caller:
    """The caller of a request: its principal, and those of its auxiliary tokens."""
    return linked_mod.Caller(claims.oid, client_name(claims), claims.tid,
                             tuple((a.tid, a.oid) for a in claims.aux))


def client_name(claims: Claims) -> str:
    """How ARM names the caller first: a user's UPN, a service principal's app id."""
    return str(claims.raw.get("appid") or claims.raw.get("upn") or claims.oid)


def guard(dr: DirectoryRepository, claims: Claims, action: str,
          scope: str) -> Callable[[], None] | None:
    """A further check of ``action`` over ``scope`` for a service to run when an operation
    turns out to need it (enabling soft delete needs ``galleries/share/action``); None for
    the store owner."""
    if authorize.is_owner(claims):
        return None
    return lambda: authorize.check(dr, claims.oid, action, scope, client=client_name(claims))


def check(dr: DirectoryRepository, claims: Claims, method: str, template: str,
          path: str, body: Any = None, *, store_root: str = "",  # noqa: ANN401 - JSON
          import_dirs: tuple[str, ...] = ()) -> None:
    """Authorize a request (nothing to do for the store owner's tokens): its own action,
    then — for a PUT — every resource its body links to (403 LinkedAuthorizationFailed) and
    every host file it names (:mod:`.host_files`)."""
    if authorize.is_owner(claims):
        return
    found = action_and_scope(method, template, path)
    if found is None:
        return
    action, scope = found
    client = client_name(claims)
    authorize.check(dr, claims.oid, action, scope, client=client)
    if method != "PUT":
        return
    linked_mod.check(dr, caller(claims), action, scope, linked(template, body))
    if method in ("PUT", "PATCH"):
        from . import host_files

        host_files.check(body, client=client, oid=claims.oid, store_root=store_root,
                         import_dirs=import_dirs)
