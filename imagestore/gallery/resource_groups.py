"""Resource groups as rows, each in one subscription (issue 15; migration
``0008_resource_groups``), and the scope checks every layer above uses.

**Decision** (Azure scopes resource-group names to a subscription): a resource-group name is
unique in the *store*. Every table keyed by ``(rg, name)`` stays as it is, ``-g RG`` alone
names a group wherever it lives, and a resource's subscription is its group's
(:meth:`Repository.subscription_of`, or the ``subscription`` field of every resource row).
A group name without a row belongs to the local subscription (:data:`ids.SUBSCRIPTION`):
stores made before rows existed, and the implicit ``default`` group, keep working unchanged.
Creating a group whose name is taken in another subscription is a Conflict
(``ResourceGroupNameNotAvailable``, 409 / exit 5); so is claiming for another subscription an
implicit local group that already holds resources (it would move them).

In the local subscription a resource may still be created in a group without a row (implicit,
as before); in any other subscription the group must exist: :func:`check_scope` (a group
without a row is the local subscription's, so it is not found in any other).
"""

from __future__ import annotations

import json

from ..errors import Conflict, InvalidArgument, NotFound
from . import ids, validate
from .repository import Repository, ResourceGroupRow

RG_TYPE = "Microsoft.Resources/resourceGroups"
#: where a group without a row (or created without ``-l``) is
DEFAULT_LOCATION = "local"


def subscription_not_found(sub: str) -> NotFound:
    """ARM's error for a subscription the directory does not have."""
    return NotFound(f"The subscription '{sub}' could not be found.", target="subscriptionId",
                    code="SubscriptionNotFound")


def group_not_found(rg: str) -> NotFound:
    """ARM's error for a resource group that is not in the subscription asked for."""
    return NotFound(f"Resource group '{rg}' could not be found.", target="resourceGroupName",
                    code="ResourceGroupNotFound")


def require_subscription(repo: Repository, sub: str) -> str:
    """The subscription's id as stored; SubscriptionNotFound when the directory has none."""
    found = repo.subscription_id(sub) if isinstance(sub, str) and sub else None
    if found is None:
        raise subscription_not_found(sub)
    return found


def check_scope(repo: Repository, sub: str, rg: str) -> str:
    """That resource group ``rg`` is in subscription ``sub`` (ARM's path check); returns the
    subscription id as stored. A group without a row is the local subscription's."""
    canon = require_subscription(repo, sub)
    if repo.subscription_of(rg).lower() != canon.lower():
        raise group_not_found(rg)
    return canon


def _location(value: object) -> str:
    if value is None:
        return DEFAULT_LOCATION
    if not isinstance(value, str) or not value.strip() or len(value) > 90 or any(
            ord(c) < 32 for c in value):
        raise InvalidArgument(f"location: {value!r} is not a location (1-90 printable "
                              f"characters)", target="location")
    return value.replace(" ", "").lower()  # ARM's form: "East US" -> "eastus"


def group_json(sub: str, name: str, location: str, tags: dict | None) -> dict:
    """A resource group as ARM (and ``az group show``) returns it."""
    return {"id": f"/subscriptions/{sub}/resourceGroups/{name}", "name": name,
            "type": RG_TYPE, "location": location, "managedBy": None,
            "tags": tags or None, "properties": {"provisioningState": "Succeeded"}}


def _row_json(row: ResourceGroupRow) -> dict:
    return group_json(row.subscription_id, row.name, row.location, json.loads(row.tags))


class ResourceGroups:
    """Create, show, list and delete resource groups."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def create(self, sub: str, name: str, *, location: str | None = None,
               tags: dict | None = None) -> tuple[dict, bool]:
        """Create or update (location kept; tags replaced when given) group ``name`` in
        ``sub``; returns (its JSON, whether it was created)."""
        name = validate.resource_group(name)
        loc = _location(location)
        tags = validate.tags_value("tags", tags) if tags is not None else None
        with self.repo.transaction():
            canon = require_subscription(self.repo, sub)
            row = self.repo.find_resource_group(name)
            if row is not None:
                if row.subscription_id.lower() != canon.lower():
                    raise Conflict(f"resource group '{name}': the name is taken in another "
                                   f"subscription (resource-group names are unique in an "
                                   f"imagestore store)", target="resourceGroupName",
                                   code="ResourceGroupNameNotAvailable")
                self.repo.update_resource_group(
                    row.id, row.location,
                    tags if tags is not None else json.loads(row.tags))
                created = False
            else:
                if canon.lower() != ids.SUBSCRIPTION and self.repo.resource_group_in_use(name):
                    raise Conflict(f"resource group '{name}': the name is taken by the local "
                                   f"subscription's resources (resource-group names are "
                                   f"unique in an imagestore store)",
                                   target="resourceGroupName",
                                   code="ResourceGroupNameNotAvailable")
                self.repo.insert_resource_group(canon, name, loc, tags or {})
                created = True
        return _row_json(self.repo.find_resource_group(name)), created

    def show(self, sub: str, name: str) -> dict:
        """The group, if it is in ``sub``; ResourceGroupNotFound otherwise. In the local
        subscription a valid name without a row is an implicit group (location ``local``)."""
        canon = check_scope(self.repo, sub, validate.resource_group(name))
        row = self.repo.find_resource_group(name)
        if row is None:
            return group_json(canon, name, DEFAULT_LOCATION, None)
        return _row_json(row)

    def exists(self, sub: str, name: str) -> bool:
        """``az group exists``: a row in ``sub``, or an implicit local group holding
        resources."""
        canon = require_subscription(self.repo, sub)
        row = self.repo.find_resource_group(name)
        if row is not None:
            return row.subscription_id.lower() == canon.lower()
        return canon.lower() == ids.SUBSCRIPTION and self.repo.resource_group_in_use(name)

    def list(self, sub: str) -> list[dict]:
        """The groups of ``sub``, by name (the local subscription's implicit groups that hold
        resources included)."""
        canon = require_subscription(self.repo, sub)
        out = [_row_json(r) for r in self.repo.list_resource_groups(canon)]
        if canon.lower() == ids.SUBSCRIPTION:
            out += [group_json(canon, n, DEFAULT_LOCATION, None)
                    for n in self.repo.implicit_resource_groups()]
        return sorted(out, key=lambda g: g["name"].lower())

    def delete(self, sub: str, name: str) -> None:
        """Delete an empty group (no cascading: a group holding resources is refused)."""
        name = validate.resource_group(name)
        with self.repo.transaction():
            check_scope(self.repo, sub, name)
            row = self.repo.find_resource_group(name)
            if self.repo.resource_group_in_use(name):
                raise Conflict(f"resource group '{name}' is not empty: delete its resources "
                               f"first (imagestore does not delete them for you)",
                               target="resourceGroupName", code="ResourceGroupNotEmpty")
            if row is None:
                raise group_not_found(name)
            self.repo.delete_resource_group(row.id)


def check_ref(repo: Repository, subscription: str | None, rg: str, field: str) -> None:
    """A full id given for ``field`` names a subscription that exists and holds ``rg``
    (a short form, ``subscription`` None, is always in scope). NotFound naming ``field``."""
    if subscription is None:
        return
    target = None if field.startswith("-") else field  # a flag is named in the message
    if repo.subscription_id(subscription) is None:
        raise NotFound(f"{field}: subscription '{subscription}' not found", target=target,
                       code="SubscriptionNotFound")
    if repo.subscription_of(rg).lower() != subscription.lower():
        raise NotFound(f"{field}: resource group '{rg}' not found in subscription "
                       f"'{subscription}'", target=target, code="ResourceGroupNotFound")
