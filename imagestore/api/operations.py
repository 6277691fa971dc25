"""Long-running operations, ARM's way.

A request that starts work answers 201 (PUT) or 202 (PATCH, DELETE) with

- ``Azure-AsyncOperation``: the operation status resource,
  ``/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{id}``, whose
  GET returns ``{"id", "name", "status": InProgress|Succeeded|Failed, "startTime",
  "endTime", "error"}``;
- ``Location``: ``…/operationResults/{id}``: 202 while in progress, then 204 (or the ARM
  error with its status when the operation failed);
- ``Retry-After``: seconds between polls.

The records are durable (:mod:`imagestore.gallery.operations`, a table in the gallery
database): a poller re-created from the ``Azure-AsyncOperation`` URL after a server restart
reaches the end. Reading an unfinished operation also makes sure a worker runs its queued
work (a server restarted after a crash picks up where the killed one stopped).
"""

from __future__ import annotations

from starlette.routing import Route

from ..gallery import ids
from ..worker import ensure_worker
from .context import ApiContext
from .errors import ApiError, body
from .routing import PROVIDER, SUB, ArmRequest, Reply, arm_route
from .versions import OPERATION_API_VERSIONS

OPERATIONS = SUB + PROVIDER + "/locations/{location}/operations/{operationId}"
RESULTS = SUB + PROVIDER + "/locations/{location}/operationResults/{operationId}"


def status_path(sub: str, location: str, op_id: str) -> str:
    """An operation's status path, under the caller's subscription ``sub``."""
    return f"{ids.subscription_id(sub)}{PROVIDER}/locations/{location}/operations/{op_id}"


def results_path(sub: str, location: str, op_id: str) -> str:
    """An operation's result path, under the caller's subscription ``sub``."""
    return f"{ids.subscription_id(sub)}{PROVIDER}/locations/{location}/operationResults/{op_id}"


def retry_after(req: ArmRequest) -> dict[str, str]:
    """``Retry-After`` (left out when the server is set to 0: clients poll at their own
    interval)."""
    n = req.ctx.settings.retry_after
    return {"Retry-After": str(n)} if n > 0 else {}


def lro_headers(req: ArmRequest, op_id: str, location: str) -> dict[str, str]:
    """The headers that send a client to poll operation ``op_id``."""
    return {
        "Azure-AsyncOperation": req.url(status_path(req.subscription, location, op_id)),
        "Location": req.url(results_path(req.subscription, location, op_id)),
        **retry_after(req),
    }


def accepted(req: ArmRequest, op_id: str, location: str, status: int,
             resource: dict | None = None) -> Reply:
    """A long-running operation's first answer."""
    return Reply(status, resource, lro_headers(req, op_id, location))


def _op(req: ArmRequest):
    svc = req.svc
    op = svc.operations.get(req.path["operationId"])
    if op is None or op.location.lower() != req.path["location"].lower():
        raise ApiError(404, "ResourceNotFound",
                       f"operation '{req.path['operationId']}' not found in location "
                       f"'{req.path['location']}'", target="operationId")
    if op.status == "InProgress":
        ensure_worker(svc)  # its work was queued: make sure someone does it
    return op


def get_status(req: ArmRequest) -> Reply:
    op = _op(req)
    out: dict = {
        "id": status_path(req.subscription, op.location, op.id),
        "name": op.id,
        "status": op.status,
        "startTime": op.created,
    }
    if op.ended:
        out["endTime"] = op.ended
    if op.error_json:
        out["error"] = op.error_json
    headers = retry_after(req) if op.status == "InProgress" else {}
    return Reply(200, out, headers)


def get_result(req: ArmRequest) -> Reply:
    op = _op(req)
    if op.status == "InProgress":
        return Reply(202, None, {"Location": req.url(results_path(req.subscription, op.location, op.id)),
                                 **retry_after(req)})
    if op.status == "Failed":
        e = op.error_json or {"code": "OperationFailed", "message": "the operation failed"}
        return Reply(409, body(e.get("code", "OperationFailed"), e.get("message", ""),
                               e.get("target")))
    return Reply(204)


def routes(ctx: ApiContext) -> list[Route]:
    return [
        arm_route(ctx, OPERATIONS, ["GET"], get_status, OPERATION_API_VERSIONS),
        arm_route(ctx, RESULTS, ["GET"], get_result, OPERATION_API_VERSIONS),
    ]
