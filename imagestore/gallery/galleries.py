"""Galleries (``Microsoft.Compute/galleries``): create, show, list, update, delete."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable

from ..errors import Conflict
from . import arm_shape, patch, resources, sharing, soft_delete, validate
from .changes import check_changes
from .placement import Placement
from .repository import Repository

DEFAULT_LOCATION = "local"
#: what an update may change
GALLERY_MUTABLE = ("tags", "properties.description",
                   "properties.softDeletePolicy.isSoftDeleteEnabled")


class Galleries:
    """The gallery operations over the repository."""

    def __init__(self, repo: Repository, placement: Placement) -> None:
        self.repo = repo
        self.placement = placement

    def create(self, rg: str, name: str, *, location: str | None = None,
               description: str | None = None, tags: dict | None = None,
               sharing_profile: dict | None = None,
               soft_delete_enabled: bool | str | None = None,
               policy_guard: soft_delete.PolicyGuard | None = None) -> dict:
        """Create gallery ``name`` in resource group ``rg``; returns its JSON.
        ``sharing_profile``: the request's ``sharingProfile`` (permissions Private, Groups or
        Community with its ``communityGalleryInfo``; set only here, :mod:`.sharing`).
        ``soft_delete_enabled``: ``properties.softDeletePolicy.isSoftDeleteEnabled``;
        ``policy_guard`` runs before soft delete is enabled (the caller's RBAC check)."""
        validate.resource_group(rg)
        validate.gallery_name(name)
        location = self.placement.require_region(location or DEFAULT_LOCATION)
        props: dict = {}
        if description is not None:
            props["description"] = validate.text("properties.description", description)
        profile = sharing.create_profile(sharing_profile)
        if profile is not None:
            props["sharingProfile"] = profile
        if soft_delete_enabled is not None:
            on = soft_delete.flag(soft_delete_enabled)
            soft_delete.guard_change(False, on, policy_guard)
            props["softDeletePolicy"] = {"isSoftDeleteEnabled": on}
        with self.repo.transaction():
            if self.repo.find_gallery(rg, name):
                raise Conflict(f"gallery '{name}' already exists in resource group '{rg}'",
                               target="galleryName")
            self.repo.insert_gallery(rg, name, location, tags or {}, props)
        return self.show(rg, name)

    def show(self, rg: str, name: str, *, sharing_groups: bool = False) -> dict:
        """The gallery's JSON (NotFound when there is none); ``sharing_groups``: with
        ``sharingProfile.groups`` (``$select=Permissions``)."""
        return resources.gallery_json(self.repo.gallery(rg, name), sharing_groups=sharing_groups)

    def list(self, rg: str | None = None) -> list[dict]:
        """Galleries of ``rg`` (all resource groups when None)."""
        return [resources.gallery_json(r) for r in self.repo.list_galleries(rg)]

    def update(self, rg: str, name: str, *, description: str | None = None,
               tags: dict | None = None, sets: Iterable[str | patch.Op] = (),
               soft_delete_enabled: bool | str | None = None,
               policy_guard: soft_delete.PolicyGuard | None = None) -> dict:
        """Change the description, tags or the soft-delete flag (``sets``: az's ``--set
        PATH=VALUE`` expressions); any other change is refused. ``policy_guard`` runs
        before the soft-delete flag changes."""
        cur = self.show(rg, name)
        new = copy.deepcopy(cur)
        if description is not None:
            new["properties"]["description"] = description
        if tags is not None:
            new["tags"] = tags
        if soft_delete_enabled is not None:
            new["properties"].setdefault("softDeletePolicy", {})["isSoftDeleteEnabled"] = \
                soft_delete.flag(soft_delete_enabled)
        patch.apply(new, sets, arm_shape.GALLERY)
        wanted = soft_delete.requested_policy(new)
        check_changes(*soft_delete.comparable(cur, new), GALLERY_MUTABLE)
        if wanted is not None:
            was = bool((cur["properties"].get("softDeletePolicy") or {}).get("isSoftDeleteEnabled"))
            soft_delete.guard_change(was, wanted, policy_guard)
            if wanted and not was:
                soft_delete.check_enable(self.repo, self.repo.gallery(rg, name))
        d = validate.text("properties.description", new["properties"].get("description"))
        new_tags = validate.tags_value("tags", new.get("tags"))
        with self.repo.transaction():
            row = self.repo.gallery(rg, name)
            props = {k: v for k, v in row.properties.items() if k != "description"}
            if d is not None:
                props["description"] = d
            if wanted is not None:
                props["softDeletePolicy"] = {"isSoftDeleteEnabled": wanted}
            self.repo.update_gallery(row.id, props, new_tags)
        return self.show(rg, name)

    def delete(self, rg: str, name: str) -> None:
        """Delete an empty gallery (Conflict while it has image definitions)."""
        with self.repo.transaction():
            row = self.repo.gallery(rg, name)
            sharing.check_deletable(row.properties, name)  # reset first (issue 15)
            imgs = self.repo.definition_names(row.id)
            if imgs:
                raise Conflict(
                    f"gallery '{name}' still contains {len(imgs)} image definition(s): "
                    f"{', '.join(imgs)}; delete them first"
                )
            self.repo.delete_gallery(row.id)

    def share(self, rg: str, name: str, update: dict) -> dict:
        """``POST …/share``: apply a ``SharingUpdate`` (Add, Remove, Reset,
        EnableCommunity; :mod:`.sharing`) at once; returns the update as Azure echoes it."""
        op, groups = sharing.parse_update(update)
        with self.repo.transaction():
            row = self.repo.gallery(rg, name)
            props = sharing.apply(row.properties, name, op, groups)
            self.repo.update_gallery(row.id, props, json.loads(row.tags))
        return sharing.update_json(op, groups)
