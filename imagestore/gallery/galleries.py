"""Galleries (``Microsoft.Compute/galleries``): create, show, list, update, delete."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable

from ..errors import Conflict
from . import arm_shape, patch, resources, sharing, validate
from .changes import check_changes
from .placement import Placement
from .repository import Repository

DEFAULT_LOCATION = "local"
#: what an update may change
GALLERY_MUTABLE = ("tags", "properties.description")


class Galleries:
    """The gallery operations over the repository."""

    def __init__(self, repo: Repository, placement: Placement) -> None:
        self.repo = repo
        self.placement = placement

    def create(self, rg: str, name: str, *, location: str | None = None,
               description: str | None = None, tags: dict | None = None,
               sharing_profile: dict | None = None) -> dict:
        """Create gallery ``name`` in resource group ``rg``; returns its JSON.
        ``sharing_profile``: the request's ``sharingProfile`` (permissions Private, Groups or
        Community with its ``communityGalleryInfo``; set only here, :mod:`.sharing`)."""
        validate.resource_group(rg)
        validate.gallery_name(name)
        location = self.placement.require_region(location or DEFAULT_LOCATION)
        props = {}
        if description is not None:
            props["description"] = validate.text("properties.description", description)
        profile = sharing.create_profile(sharing_profile)
        if profile is not None:
            props["sharingProfile"] = profile
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
               tags: dict | None = None, sets: Iterable[str | patch.Op] = ()) -> dict:
        """Change the description or tags (``sets``: az's ``--set PATH=VALUE`` expressions);
        any other change is refused."""
        cur = self.show(rg, name)
        new = copy.deepcopy(cur)
        if description is not None:
            new["properties"]["description"] = description
        if tags is not None:
            new["tags"] = tags
        patch.apply(new, sets, arm_shape.GALLERY)
        check_changes(cur, new, GALLERY_MUTABLE)
        d = validate.text("properties.description", new["properties"].get("description"))
        new_tags = validate.tags_value("tags", new.get("tags"))
        with self.repo.transaction():
            row = self.repo.gallery(rg, name)
            props = {k: v for k, v in row.properties.items() if k != "description"}
            if d is not None:
                props["description"] = d
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
