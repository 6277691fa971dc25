"""``Microsoft.Compute/virtualMachines`` and ``virtualMachineScaleSets`` (issue 14): PUT
(create from a gallery image: ``storageProfile.imageReference.id``, osProfile for a
generalized image), GET (``$expand=instanceView``), DELETE, list by resource group and by
subscription; the power actions ``start``, ``powerOff``, ``deallocate``, ``restart``,
``generalize``; ``instanceView``. Scale sets: PUT creates, a PUT of an existing set with a
new ``sku.capacity`` scales it (as ARM does); ``virtualMachines`` lists its instances.

The work runs inside the request (disks are written, qemu is started) and the answer carries
the headers of a finished long-running operation, which the SDK's pollers follow. Messages
and codes are the compute layer's (Azure's texts for the osProfile and security rules)."""

from __future__ import annotations

import base64
import binascii

from starlette.routing import Route

from ..compute.service import ComputeService
from ..compute.vms import parse_vm_ref  # noqa: F401 - re-exported for clients of this module
from ..errors import InvalidArgument, NotFound, OperationNotAllowed
from ..gallery import shared_views
from . import shared_galleries
from .context import ApiContext
from .fields import Body
from .operations import accepted
from .routing import (
    PROVIDER,
    RG,
    SUB,
    ArmRequest,
    Reply,
    arm_route,
    in_subscription,
    page,
)
from .versions import COMPUTE_API_VERSIONS

VMS = RG + PROVIDER + "/virtualMachines"
VM = VMS + "/{vmName}"
SETS = RG + PROVIDER + "/virtualMachineScaleSets"
SET = SETS + "/{vmScaleSetName}"


def compute(req: ArmRequest, svc=None) -> ComputeService:  # noqa: ANN001 - GalleryService
    return ComputeService(svc or req.svc)


def _custom_data(b: Body, prefix: str) -> bytes | None:
    raw = b.str(f"{prefix}.osProfile.customData")
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("Custom data in OSProfile must be in Base64 encoding and with a "
                              "maximum length of 87380 characters.",
                              target=f"{prefix}.osProfile.customData") from None


def _image(b: Body, prefix: str) -> str | None:
    """``imageReference.id``, or a consumer's ``sharedGalleryImageId`` /
    ``communityGalleryImageId`` (issue 15)."""
    ir = f"{prefix}.storageProfile.imageReference"
    return (b.str(f"{ir}.id") or b.str(f"{ir}.sharedGalleryImageId")
            or b.str(f"{ir}.communityGalleryImageId"))


def _model_kwargs(b: Body, prefix: str) -> dict:
    """The shared part of a VM / scale set model body."""
    image = _image(b, prefix)
    if not image:
        raise InvalidArgument(f"{prefix}.storageProfile.imageReference.id: required (a gallery "
                              f"image version or definition id)",
                              target=f"{prefix}.storageProfile.imageReference.id")
    osp = b.obj(f"{prefix}.osProfile")
    keys = [k.get("keyData") for k in (b.list(
        f"{prefix}.osProfile.linuxConfiguration.ssh.publicKeys") or []) if isinstance(k, dict)]
    sec = b.str(f"{prefix}.securityProfile.securityType")
    return dict(
        image=image if image.startswith("/") else "/" + image,
        specialized=osp is None,
        admin_username=b.str(f"{prefix}.osProfile.adminUsername"),
        ssh_key_values=[k for k in keys if k],
        custom_data_bytes=_custom_data(b, prefix),
        security_type=sec,
        enable_secure_boot=b.bool(f"{prefix}.securityProfile.uefiSettings.secureBootEnabled"),
        enable_vtpm=b.bool(f"{prefix}.securityProfile.uefiSettings.vTpmEnabled"),
        os_disk_mode=b.str("properties.localCompute.osDiskMode"),
    )


# -- virtual machines ----------------------------------------------------------------------------


def put_vm(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    name = req.path["vmName"]
    with req.ctx.writing() as svc:
        c = compute(req, svc)
        if c.gallery.repo.find_vm(req.rg, name) is not None:
            cur = c.vms.show(req.rg, name)
            ir = cur["properties"]["storageProfile"]["imageReference"]
            want = (_image(b, "properties") or "").lstrip("/")
            have = (ir.get("id") or ir.get("sharedGalleryImageId")
                    or ir.get("communityGalleryImageId") or "").lstrip("/")
            if want.lower() != have.lower():
                raise OperationNotAllowed(
                    f"virtual machine '{name}' exists; imagestore does not change a VM's image "
                    f"(delete it and create it again)", target="vmName")
            return Reply(200, cur)
        kw = _model_kwargs(b, "properties")
        viewer = (shared_galleries.viewer(req)
                  if shared_views.is_shared_reference(kw["image"]) else None)
        out = c.vms.create(req.rg, name, kw.pop("image"), location=b.str("location"),
                           computer_name=b.str("properties.osProfile.computerName"),
                           size=b.str("properties.hardwareProfile.vmSize"), tags=b.tags(),
                           custom_data=None, viewer=viewer, **kw)
        op = svc.operations.done("create", out["id"], out["location"])
    return accepted(req, op, out["location"], 201, out)


def get_vm(req: ArmRequest) -> Reply:
    c = compute(req)
    if (req.query.get("$expand") or "").lower() == "instanceview":
        return Reply(200, c.vms.instance_view(req.rg, req.path["vmName"]))
    return Reply(200, c.vms.show(req.rg, req.path["vmName"]))


def instance_view(req: ArmRequest) -> Reply:
    out = compute(req).vms.instance_view(req.rg, req.path["vmName"])
    return Reply(200, out["properties"]["instanceView"])


def delete_vm(req: ArmRequest) -> Reply:
    name = req.path["vmName"]
    with req.ctx.writing() as svc:
        c = compute(req, svc)
        cur = c.vms.show(req.rg, name)
        c.vms.delete(req.rg, name, delete_disks=False)
        op = svc.operations.done("delete", cur["id"], cur["location"])
    return accepted(req, op, cur["location"], 202)


def _action(kind: str):
    def handler(req: ArmRequest) -> Reply:
        name = req.path["vmName"]
        with req.ctx.writing() as svc:
            vms = compute(req, svc).vms
            if kind == "start":
                out = vms.start(req.rg, name)
            elif kind == "powerOff":
                out = vms.stop(req.rg, name)
            elif kind == "deallocate":
                out = vms.deallocate(req.rg, name)
            elif kind == "restart":
                out = vms.restart(req.rg, name)
            else:
                out = vms.generalize(req.rg, name)
                return Reply(200, None)
            op = svc.operations.done(kind, out["id"], out["location"])
        return accepted(req, op, out["location"], 202)
    return handler


def list_vms_rg(req: ArmRequest) -> Reply:
    return page(req, compute(req).vms.list(req.rg))


def list_vms_sub(req: ArmRequest) -> Reply:
    return page(req, in_subscription(req, compute(req).vms.list(None)))


# -- scale sets ----------------------------------------------------------------------------------


def put_set(req: ArmRequest) -> Reply:
    b = Body(req.require_body())
    name = req.path["vmScaleSetName"]
    capacity = b.int("sku.capacity")
    with req.ctx.writing() as svc:
        c = compute(req, svc)
        if c.gallery.repo.find_vmss(req.rg, name) is not None:
            cur = c.vmss.show(req.rg, name)
            if capacity is not None and capacity != cur["sku"]["capacity"]:
                cur = c.vmss.scale(req.rg, name, capacity)
            op = svc.operations.done("update", cur["id"], cur["location"])
            return accepted(req, op, cur["location"], 200, cur)
        kw = _model_kwargs(b, "properties.virtualMachineProfile")
        cdata = kw.pop("custom_data_bytes")
        if cdata is not None:
            raise InvalidArgument("properties.virtualMachineProfile.osProfile.customData: not "
                                  "supported for scale sets on the REST API yet (use the CLI's "
                                  "--custom-data)",
                                  target="properties.virtualMachineProfile.osProfile.customData")
        viewer = (shared_galleries.viewer(req)
                  if shared_views.is_shared_reference(kw["image"]) else None)
        out = c.vmss.create(
            req.rg, name, kw.pop("image"), instance_count=2 if capacity is None else capacity,
            location=b.str("location"), size=b.str("sku.name"), tags=b.tags(),
            computer_name_prefix=b.str(
                "properties.virtualMachineProfile.osProfile.computerNamePrefix"), viewer=viewer,
            **kw)
        op = svc.operations.done("create", out["id"], out["location"])
    return accepted(req, op, out["location"], 201, out)


def get_set(req: ArmRequest) -> Reply:
    return Reply(200, compute(req).vmss.show(req.rg, req.path["vmScaleSetName"]))


def delete_set(req: ArmRequest) -> Reply:
    name = req.path["vmScaleSetName"]
    with req.ctx.writing() as svc:
        c = compute(req, svc)
        cur = c.vmss.show(req.rg, name)
        c.vmss.delete(req.rg, name)
        op = svc.operations.done("delete", cur["id"], cur["location"])
    return accepted(req, op, cur["location"], 202)


def list_sets_rg(req: ArmRequest) -> Reply:
    return page(req, compute(req).vmss.list(req.rg))


def list_sets_sub(req: ArmRequest) -> Reply:
    return page(req, in_subscription(req, compute(req).vmss.list(None)))


def list_instances(req: ArmRequest) -> Reply:
    return page(req, compute(req).vmss.list_instances(req.rg, req.path["vmScaleSetName"]))


def get_instance(req: ArmRequest) -> Reply:
    for inst in compute(req).vmss.list_instances(req.rg, req.path["vmScaleSetName"]):
        if inst["instanceId"] == req.path["instanceId"]:
            return Reply(200, inst)
    raise NotFound(f"instance '{req.path['instanceId']}' of virtual machine scale set "
                   f"'{req.path['vmScaleSetName']}' not found", target="instanceId")


def routes(ctx: ApiContext) -> list[Route]:
    v = COMPUTE_API_VERSIONS
    out = [
        arm_route(ctx, VM, ["PUT"], put_vm, v),
        arm_route(ctx, VM, ["GET"], get_vm, v),
        arm_route(ctx, VM, ["DELETE"], delete_vm, v),
        arm_route(ctx, VM + "/instanceView", ["GET"], instance_view, v),
        arm_route(ctx, VMS, ["GET"], list_vms_rg, v),
        arm_route(ctx, SUB + PROVIDER + "/virtualMachines", ["GET"], list_vms_sub, v),
        arm_route(ctx, SET, ["PUT"], put_set, v),
        arm_route(ctx, SET, ["GET"], get_set, v),
        arm_route(ctx, SET, ["DELETE"], delete_set, v),
        arm_route(ctx, SET + "/virtualMachines", ["GET"], list_instances, v),
        arm_route(ctx, SET + "/virtualMachines/{instanceId}", ["GET"], get_instance, v),
        arm_route(ctx, SETS, ["GET"], list_sets_rg, v),
        arm_route(ctx, SUB + PROVIDER + "/virtualMachineScaleSets", ["GET"], list_sets_sub, v),
    ]
    for kind in ("start", "powerOff", "deallocate", "restart", "generalize"):
        out.append(arm_route(ctx, f"{VM}/{kind}", ["POST"], _action(kind), v))
    return out
