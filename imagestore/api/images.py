"""``Microsoft.Compute/galleries/images`` (image definitions): PUT (create or update), PATCH,
GET, DELETE, list by gallery."""

from __future__ import annotations

from starlette.routing import Route

from ..errors import InvalidArgument, NotFound
from ..gallery import ids
from .context import ApiContext
from .fields import Body, update_ops
from .galleries import ITEM as GALLERY
from .operations import accepted
from .routing import ArmRequest, Reply, arm_route, page
from .versions import GALLERY_API_VERSIONS

COLLECTION = GALLERY + "/images"
ITEM = COLLECTION + "/{galleryImageName}"
PARENTS = ("galleryName",)
READ_ONLY = ("properties.provisioningState",)


def _names(req: ArmRequest) -> tuple[str, str, str]:
    return req.rg, req.path["galleryName"], req.path["galleryImageName"]


def _features(b: Body) -> list[str] | None:
    items = b.list("properties.features")
    if items is None:
        return None
    out = []
    for i, it in enumerate(items):
        f = f"properties.features[{i}]"
        if not isinstance(it, dict) or not isinstance(it.get("name"), str) or \
                not isinstance(it.get("value", ""), str):
            raise InvalidArgument(f"{f}: must be an object with string name and value",
                                  target=f)
        if any(c.isspace() for c in it["name"] + it.get("value", "")) or "=" in it["name"]:
            raise InvalidArgument(f"{f}: name and value must not contain spaces or '='",
                                  target=f)
        out.append(f"{it['name']}={it.get('value', '')}")
    return out


def create_kwargs(b: Body) -> dict:
    """The body of a definition PUT as :meth:`Definitions.create`'s arguments."""
    dd = b.list("properties.disallowed.diskTypes")
    if dd is not None and not all(isinstance(x, str) for x in dd):
        raise InvalidArgument("properties.disallowed.diskTypes: must be an array of strings",
                              target="properties.disallowed.diskTypes")
    publisher = b.str("properties.identifier.publisher")
    offer = b.str("properties.identifier.offer")
    sku = b.str("properties.identifier.sku")
    for field, v in (("publisher", publisher), ("offer", offer), ("sku", sku)):
        if v is None:
            raise InvalidArgument(f"properties.identifier.{field}: required",
                                  target=f"properties.identifier.{field}")
    return dict(
        publisher=publisher, offer=offer, sku=sku,
        os_type=b.str("properties.osType"), os_state=b.str("properties.osState"),
        hyper_v_generation=b.str("properties.hyperVGeneration"),
        architecture=b.str("properties.architecture"), features=_features(b),
        description=b.str("properties.description"), eula=b.str("properties.eula"),
        privacy_statement_uri=b.str("properties.privacyStatementUri"),
        release_note_uri=b.str("properties.releaseNoteUri"),
        end_of_life_date=b.str("properties.endOfLifeDate"),
        minimum_cpu_core=b.int("properties.recommended.vCPUs.min"),
        maximum_cpu_core=b.int("properties.recommended.vCPUs.max"),
        minimum_memory=b.int("properties.recommended.memory.min"),
        maximum_memory=b.int("properties.recommended.memory.max"),
        disallowed_disk_types=dd,
        plan_publisher=b.str("properties.purchasePlan.publisher"),
        plan_name=b.str("properties.purchasePlan.name"),
        plan_product=b.str("properties.purchasePlan.product"),
        location=b.str("location"), tags=b.tags(),
    )


def put(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    rg, g, name = _names(req)
    with req.ctx.writing() as svc:
        try:
            svc.definitions.show(rg, g, name)
        except NotFound as e:
            if e.target != "galleryImageName":
                raise
            return Reply(201, svc.definitions.create(rg, g, name, **create_kwargs(b)))
        return Reply(200, _update(svc, req, b))


def _update(svc, req: ArmRequest, b: Body) -> dict:
    rg, g, name = _names(req)
    return svc.definitions.update(rg, g, name, tags=b.tags(),
                                  sets=update_ops(b.data, ignore=READ_ONLY))


def patch_(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    with req.ctx.writing() as svc:
        return Reply(200, _update(svc, req, b))


def get(req: ArmRequest) -> Reply:
    return Reply(200, req.svc.definitions.show(*_names(req)))


def delete(req: ArmRequest) -> Reply:
    rg, g, name = _names(req)
    with req.ctx.writing() as svc:
        loc = svc.definitions.show(rg, g, name)["location"]
        svc.definitions.delete(rg, g, name)
        op = svc.operations.done("delete", ids.image_id(req.subscription, rg, g, name), loc)
    return accepted(req, op, loc, 202)


def list_gallery(req: ArmRequest) -> Reply:
    return page(req, req.svc.definitions.list(req.rg, req.path["galleryName"]))


def routes(ctx: ApiContext) -> list[Route]:
    v = GALLERY_API_VERSIONS
    return [
        arm_route(ctx, ITEM, ["PUT"], put, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["PATCH"], patch_, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["GET"], get, v, parents=PARENTS),
        arm_route(ctx, ITEM, ["DELETE"], delete, v, parents=PARENTS),
        arm_route(ctx, COLLECTION, ["GET"], list_gallery, v, parents=PARENTS),
    ]
