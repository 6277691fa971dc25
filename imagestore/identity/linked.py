"""Linked authorization: what a caller needs on the resources a create or update references
(a version's source, a disk's image, a VM's image), checked the same way for a REST PUT
(:func:`imagestore.api.authz.check`) and a CLI command under ``--as``
(:mod:`imagestore.cli.acting`).

The rules (the spec's permission table for an image version's source; Read otherwise, which
is what deploying from a resource needs):

- a version made from a VM needs ``Microsoft.Compute/virtualMachines/write`` on it, from a
  disk or snapshot ``…/write``, from a managed image or another version (or definition)
  ``…/read``;
- a disk, snapshot, managed image, VM or scale set made from another resource needs
  ``…/read`` on it;
- a VHD whose storage account is named (``storageAccountId``) needs
  ``Microsoft.Storage/storageAccounts/listKeys/action`` on the account, for any target.

Refusal: 403 ``LinkedAuthorizationFailed`` with ARM's text naming the caller's own action and
scope and the linked action and scope (:func:`message`).

**Tenants.** A linked resource in a subscription of another home tenant than the target's
(the "current tenant" of the request) is checked as the caller's principal *in that
tenant*: the object id of an auxiliary token (``x-ms-authorization-auxiliary``,
:mod:`.auxiliary`) issued by that tenant to the same application. Without one the request
fails with ARM's "current tenant … is not authorized to access linked subscription …"
(:func:`tenant_message`), whatever the roles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import AuthorizationFailed
from ..gallery.directory_repository import DirectoryRepository
from . import authorize

C = "Microsoft.Compute"
LIST_KEYS = "Microsoft.Storage/storageAccounts/listKeys/action"
STORAGE_ACCOUNTS = "microsoft.storage/storageaccounts"
#: the spec's permission table for an image version's source (the verb needed on it)
VERSION_SOURCE_VERBS = {
    f"{C}/virtualMachines": "write",
    f"{C}/disks": "write",
    f"{C}/snapshots": "write",
    f"{C}/images": "read",
    f"{C}/galleries/images/versions": "read",
    f"{C}/galleries/images": "read",
}
_VERBS = {k.lower(): v for k, v in VERSION_SOURCE_VERBS.items()}
_ARM_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(?P<ns>[^/]+)"
                     r"/(?P<rest>[^?#]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Caller:
    """Who asks: the principal's object id in the token's tenant, the name ARM shows first
    (UPN or app id), and the principals of its auxiliary tokens by tenant."""

    object_id: str
    client: str
    tenant: str
    #: (tenant id, object id) of each auxiliary token (already verified)
    aux: tuple[tuple[str, str], ...] = field(default=())

    def in_tenant(self, tenant: str) -> str | None:
        """The caller's object id in ``tenant`` (its own, or an auxiliary token's)."""
        if tenant.lower() == self.tenant.lower():
            return self.object_id
        return next((oid for tid, oid in self.aux if tid.lower() == tenant.lower()), None)


def resource_type(arm_id: str) -> str | None:
    """``Microsoft.Compute/galleries/images/versions`` for a version's id (None: no id)."""
    m = _ARM_ID.match(arm_id.strip().rstrip("/"))
    if m is None:
        return None
    segs = m["rest"].split("/")
    if len(segs) % 2:
        return None
    return "/".join([m["ns"], *segs[0::2]])


def actions(refs: Iterable[str], *, for_version: bool) -> list[tuple[str, str]]:
    """(linked action, linked scope) for each referenced ARM id (not ids are skipped: the
    handler refuses them). ``for_version``: the target is an image version (the source
    table applies)."""
    out: list[tuple[str, str]] = []
    for ref in refs:
        rtype = resource_type(ref)
        if rtype is None:
            continue
        scope = ref.strip().rstrip("/")
        if rtype.lower() == STORAGE_ACCOUNTS:
            pair = (LIST_KEYS, scope)
        else:
            verb = _VERBS.get(rtype.lower(), "read") if for_version else "read"
            pair = (f"{rtype}/{verb}", scope)
        if pair not in out:
            out.append(pair)
    return out


def message(client: str, oid: str, action: str, scope: str, linked_action: str,
            linked_scope: str) -> str:
    """ARM's LinkedAuthorizationFailed text (a missing right on the linked resource)."""
    return (f"The client '{client}' with object id '{oid}' has permission to perform action "
            f"'{action}' on scope '{scope}'; however, it does not have permission to perform "
            f"action '{linked_action}' on the linked scope(s) '{linked_scope}' or the linked "
            f"scope(s) are invalid.")


def tenant_message(linked_action: str, scope: str, tenant: str, subscription: str) -> str:
    """ARM's LinkedAuthorizationFailed text for a linked subscription of another tenant
    without an auxiliary token of that tenant (ARM names the linked action with the
    request's own scope)."""
    return (f"The client has permission to perform action '{linked_action}' on scope "
            f"'{scope}', however the current tenant '{tenant}' is not authorized to access "
            f"linked subscription '{subscription}'.")


def subscription_of(scope: str) -> str | None:
    """The subscription id of an ARM scope (None when it has none)."""
    segs = scope.strip("/").split("/")
    return segs[1] if len(segs) >= 2 and segs[0].lower() == "subscriptions" else None


def tenant_of(dr: DirectoryRepository, scope: str) -> str | None:
    """The home tenant of the scope's subscription (None: not a subscription of the
    directory)."""
    sub = subscription_of(scope)
    row = dr.subscription(sub) if sub else None
    return row[2] if row else None


def check(dr: DirectoryRepository, caller: Caller, action: str, scope: str,
          pairs: Iterable[tuple[str, str]]) -> None:
    """Raise LinkedAuthorizationFailed unless the caller (allowed ``action`` on ``scope``)
    may perform every linked action on its linked scope, in the linked scope's tenant."""
    current = tenant_of(dr, scope) or caller.tenant
    for laction, lscope in pairs:
        ltenant = tenant_of(dr, lscope) or current
        if ltenant.lower() == current.lower():
            oid: str | None = caller.object_id
        else:
            oid = caller.in_tenant(ltenant)
            if oid is None:
                raise AuthorizationFailed(
                    tenant_message(laction, scope, current, subscription_of(lscope) or ""),
                    action=laction, scope=lscope, code="LinkedAuthorizationFailed")
        if not authorize.allowed(dr, oid, laction, lscope):
            raise AuthorizationFailed(
                message(caller.client, caller.object_id, action, scope, laction, lscope),
                action=laction, scope=lscope, code="LinkedAuthorizationFailed")
