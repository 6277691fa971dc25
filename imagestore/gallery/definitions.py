"""Image definitions (``Microsoft.Compute/galleries/images``): identity (publisher/offer/sku),
OS type and state, features, recommendations; create, show, list, update, delete."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable

from ..errors import Conflict, InvalidArgument, PropertyChangeNotAllowed
from . import arm_shape, gallery_types, patch, resources, soft_delete, validate, version_data
from .changes import check_changes
from .placement import Placement
from .repository import Repository

#: what an update may change
IMAGE_MUTABLE = (
    "tags",
    "properties.recommended",
    "properties.description",
    "properties.endOfLifeDate",
    "properties.releaseNoteUri",
)


class Definitions:
    """The image definition operations over the repository."""

    def __init__(self, repo: Repository, placement: Placement) -> None:
        self.repo = repo
        self.placement = placement

    def create(
        self, rg: str, gallery: str, name: str, *, publisher: str, offer: str, sku: str,
        os_type: str, os_state: str | None = None, hyper_v_generation: str | None = None,
        architecture: str | None = None, features: list[str] | None = None,
        description: str | None = None, eula: str | None = None,
        privacy_statement_uri: str | None = None, release_note_uri: str | None = None,
        end_of_life_date: str | None = None, minimum_cpu_core: int | None = None,
        maximum_cpu_core: int | None = None, minimum_memory: int | None = None,
        maximum_memory: int | None = None, disallowed_disk_types: list[str] | None = None,
        plan_publisher: str | None = None, plan_name: str | None = None,
        plan_product: str | None = None, location: str | None = None, tags: dict | None = None,
    ) -> dict:
        """Create definition ``name`` in a gallery; every field is checked before anything
        is written. Returns its JSON."""
        validate.resource_group(rg)
        validate.gallery_name(gallery)
        validate.image_name(name)
        grow = self.repo.gallery(rg, gallery)
        props = self._properties(
            publisher=publisher, offer=offer, sku=sku, os_type=os_type, os_state=os_state,
            hyper_v_generation=hyper_v_generation, architecture=architecture,
            features=features, description=description, eula=eula,
            privacy_statement_uri=privacy_statement_uri, release_note_uri=release_note_uri,
            end_of_life_date=end_of_life_date, minimum_cpu_core=minimum_cpu_core,
            maximum_cpu_core=maximum_cpu_core, minimum_memory=minimum_memory,
            maximum_memory=maximum_memory, disallowed_disk_types=disallowed_disk_types,
            plan_publisher=plan_publisher, plan_name=plan_name, plan_product=plan_product)
        gallery_types.check_definition(gallery, grow.properties, props.get("features"))
        ident = props["identifier"]
        location = self.placement.require_region(location or grow.location)
        with self.repo.transaction():
            if self.repo.find_definition(grow, name):
                raise Conflict(f"image definition '{gallery}/{name}' already exists in "
                               f"resource group '{rg}'", target="galleryImageName")
            dup = self.repo.definition_with_identifier(grow.id, ident["publisher"],
                                                       ident["offer"], ident["sku"])
            if dup:
                raise Conflict(
                    f"properties.identifier: publisher/offer/sku '{ident['publisher']}/"
                    f"{ident['offer']}/{ident['sku']}' is already used by image definition "
                    f"'{dup}' in gallery '{gallery}'", target="properties.identifier")
            self.repo.insert_definition(grow.id, name, location, tags or {}, props)
        return self.show(rg, gallery, name)

    @staticmethod
    def _properties(*, publisher, offer, sku, os_type, os_state, hyper_v_generation,
                    architecture, features, description, eula, privacy_statement_uri,
                    release_note_uri, end_of_life_date, minimum_cpu_core, maximum_cpu_core,
                    minimum_memory, maximum_memory, disallowed_disk_types, plan_publisher,
                    plan_name, plan_product) -> dict:
        ident = {
            "publisher": validate.identifier_part("properties.identifier.publisher", publisher, 128),
            "offer": validate.identifier_part("properties.identifier.offer", offer, 64),
            "sku": validate.identifier_part("properties.identifier.sku", sku, 64),
        }
        if os_type is None:
            raise InvalidArgument("properties.osType: required (Linux or Windows)",
                                  target="properties.osType")
        hvg = validate.enum("properties.hyperVGeneration", hyper_v_generation or "V1",
                            validate.HYPER_V_GENERATIONS)
        props: dict = {
            "osType": validate.enum("properties.osType", os_type, validate.OS_TYPES),
            "osState": validate.enum("properties.osState", os_state or "Generalized", validate.OS_STATES),
            "hyperVGeneration": hvg,
            "identifier": ident,
            "architecture": validate.enum("properties.architecture", architecture or "x64",
                                          validate.ARCHITECTURES),
        }
        for key, field, value in (("description", "properties.description", description),
                                  ("eula", "properties.eula", eula)):
            if value is not None:
                props[key] = validate.text(field, value)
        for key, field, value in (
            ("privacyStatementUri", "properties.privacyStatementUri", privacy_statement_uri),
            ("releaseNoteUri", "properties.releaseNoteUri", release_note_uri),
        ):
            if value is not None:
                props[key] = validate.uri(field, value)
        eol = validate.end_of_life("properties.endOfLifeDate", end_of_life_date)
        if eol:
            props["endOfLifeDate"] = eol
        rec = {}
        cpu = validate.resource_range("properties.recommended.vCPUs", minimum_cpu_core,
                                      maximum_cpu_core)
        mem = validate.resource_range("properties.recommended.memory", minimum_memory,
                                      maximum_memory)
        if cpu:
            rec["vCPUs"] = cpu
        if mem:
            rec["memory"] = mem
        if rec:
            props["recommended"] = rec
        dt = validate.disk_types("properties.disallowed.diskTypes", disallowed_disk_types)
        if dt:
            props["disallowed"] = {"diskTypes": dt}
        if plan_publisher or plan_name or plan_product:
            if not plan_name:
                raise InvalidArgument("properties.purchasePlan.name: required with properties.purchasePlan.publisher/product",
                                      target="properties.purchasePlan.name")
            if not plan_publisher:
                raise InvalidArgument("properties.purchasePlan.publisher: required with properties.purchasePlan.name/product",
                                      target="properties.purchasePlan.publisher")
            plan = {"name": plan_name, "publisher": plan_publisher}
            if plan_product:
                plan["product"] = plan_product
            props["purchasePlan"] = plan
        feats = validate.features(features, hvg)
        if feats:
            props["features"] = feats
        return props

    def show(self, rg: str, gallery: str, name: str) -> dict:
        """The definition's JSON (NotFound naming the gallery or the definition)."""
        return resources.image_json(self.repo.definition(rg, gallery, name))

    def list(self, rg: str, gallery: str) -> list[dict]:
        """The gallery's definitions."""
        return [resources.image_json(r)
                for r in self.repo.list_definitions(self.repo.gallery(rg, gallery))]

    def update(
        self, rg: str, gallery: str, name: str, *, description: str | None = None,
        end_of_life_date: str | None = None, release_note_uri: str | None = None,
        minimum_cpu_core: int | None = None, maximum_cpu_core: int | None = None,
        minimum_memory: int | None = None, maximum_memory: int | None = None,
        tags: dict | None = None, sets: Iterable[str | patch.Op] = (),
    ) -> dict:
        """Change the recommendations, description, end-of-life date, release notes or tags;
        any other change is refused (PropertyChangeNotAllowed)."""
        cur = self.show(rg, gallery, name)
        new = copy.deepcopy(cur)
        p = new["properties"]
        if description is not None:
            p["description"] = description
        if end_of_life_date is not None:
            p["endOfLifeDate"] = end_of_life_date
        if release_note_uri is not None:
            p["releaseNoteUri"] = release_note_uri
        for key, which, value in (
            ("vCPUs", "min", minimum_cpu_core), ("vCPUs", "max", maximum_cpu_core),
            ("memory", "min", minimum_memory), ("memory", "max", maximum_memory),
        ):
            if value is not None:
                p.setdefault("recommended", {}).setdefault(key, {})[which] = value
        if tags is not None:
            new["tags"] = tags
        patch.apply(new, sets, arm_shape.IMAGE)
        check_changes(cur, new, IMAGE_MUTABLE)
        p = new["properties"]
        props = dict(json.loads(self.repo.definition(rg, gallery, name).props))
        for key, f in (("description", validate.text), ("releaseNoteUri", validate.uri)):
            v = f(f"properties.{key}", p.get(key))
            if v is None:
                props.pop(key, None)
            else:
                props[key] = v
        if p.get("endOfLifeDate") != cur["properties"].get("endOfLifeDate"):
            eol = validate.end_of_life("properties.endOfLifeDate", p.get("endOfLifeDate"))
            if eol is None:
                props.pop("endOfLifeDate", None)
            else:
                props["endOfLifeDate"] = eol
        rec = self._recommended(p.get("recommended") or {})
        if rec:
            props["recommended"] = rec
        else:
            props.pop("recommended", None)
        new_tags = validate.tags_value("tags", new.get("tags"))
        with self.repo.transaction():
            row = self.repo.definition(rg, gallery, name)
            self.repo.update_definition(row.id, props, new_tags)
        return self.show(rg, gallery, name)

    @staticmethod
    def _recommended(rec_in) -> dict:
        if not isinstance(rec_in, dict):
            raise InvalidArgument("properties.recommended: must be an object",
                                  target="properties.recommended")
        rec = {}
        for key in rec_in:
            if key not in ("vCPUs", "memory"):
                raise PropertyChangeNotAllowed(
                    f"Changing property 'properties.recommended.{key}' is not allowed",
                    target=f"properties.recommended.{key}")
            r = rec_in[key] or {}
            if not isinstance(r, dict) or set(r) - {"min", "max"}:
                raise InvalidArgument(
                    f"properties.recommended.{key}: must be an object with min and max",
                    target=f"properties.recommended.{key}")
            rr = validate.resource_range(f"properties.recommended.{key}", r.get("min"),
                                         r.get("max"))
            if rr:
                rec[key] = rr
        return rec

    def delete(self, rg: str, gallery: str, name: str) -> None:
        """Delete a definition without versions (Conflict while it has any; see
        :meth:`.soft_delete.SoftDelete.before_definition_delete` for soft-deleted ones)."""
        row = self.repo.definition(rg, gallery, name)
        self._refuse_versions(row)  # before any soft-deleted version is purged
        sd = soft_delete.SoftDelete(self.repo, self.placement, version_data.purge)
        sd.before_definition_delete(self.repo.gallery(rg, gallery), row)
        with self.repo.transaction():
            row = self.repo.definition(rg, gallery, name)
            self._refuse_versions(row)
            if self.repo.soft_deleted_in(row.id):  # soft-deleted meanwhile
                raise Conflict(f"image definition '{gallery}/{name}': a version was "
                               f"soft-deleted meanwhile; try again")
            self.repo.delete_definition(row.id)

    def _refuse_versions(self, row) -> None:
        vs = self.repo.version_names(row.id, active_only=True)
        if vs:
            raise Conflict(
                f"image definition '{row.gallery}/{row.name}' still has {len(vs)} image "
                f"version(s): {', '.join(vs)}; delete them first"
            )
