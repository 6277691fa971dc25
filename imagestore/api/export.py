"""Disk export, Azure's way: ``Disks - Grant Access`` / ``Revoke Access`` and the SAS URL
that serves the disk as a fixed VHD.

- ``POST …/disks/{d}/beginGetAccess`` (body ``{access, durationInSeconds[, fileFormat]}``)
  records a grant (:mod:`imagestore.gallery.disk_access`) and answers 202 with
  ``Azure-AsyncOperation`` and ``Location`` on ``…/locations/{loc}/DiskOperations/{id}``
  (the operation id is the grant's id). The status resource says ``Succeeded`` with
  ``properties.output.accessSAS``; the ``Location`` (``monitor=true``) answers 200 with
  ``{"accessSAS": URL}``, which is what the SDK's poller and az return.
- ``POST …/endGetAccess`` removes the grant (202, an operation that has ended).
- ``GET|HEAD /md-impexp/{grant}/abcd?sv=…&sig=…`` (no bearer token: the SAS is the
  credential) serves the disk file's current bytes plus the VHD footer, read by ranges from
  the disk file through its format reader (no copy is written): ``Range`` and Azure's
  ``x-ms-range`` (single, open-ended, suffix, lists as ``multipart/byteranges``),
  ``If-Match``/``If-None-Match`` on an ETag made of the file's identity, the page-blob
  headers azure-storage-blob reads, and ``?comp=pagelist`` (Get Page Ranges: the allocated
  pages, so a client skips the holes). Refusals are Azure Storage's XML errors: 403
  ``AuthenticationFailed`` (no, bad, altered, expired or revoked SAS), 416 ``InvalidRange``,
  412 ``ConditionNotMet``.

A download is never torn silently: every piece is read only after checking that the disk
file is still the one the ETag names; if it changed, the response is cut short (the client
sees an incomplete body) and the next request gets a new ETag, so ``If-Match`` fails with 412.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..errors import ImagestoreError, InvalidArgument, NotFound, from_oserror
from ..formats.vhd_export import FixedVhdView
from ..gallery import disk_access, ids
from ..gallery.repo.rows import DiskRow
from ..identity import sas
from .context import ApiContext
from .operations import lro_headers
from .ranges import Multipart, RangeNotSatisfiable, content_range, parse
from .routing import PROVIDER, RG, SUB, ArmRequest, Reply, arm_route
from .versions import DISK_API_VERSIONS

DISK = RG + PROVIDER + "/disks/{diskName}"
DISK_OPERATION = SUB + PROVIDER + "/locations/{location}/DiskOperations/{operationId}"
BLOB = "/" + sas.ACCOUNT + "/{grantId}/" + sas.BLOB
#: the x-ms-version answered when the client sends none
STORAGE_VERSION = "2021-08-06"
PIECE = 1 << 20
#: open disk readers kept between requests of a download
CACHE_SIZE = 16


# -- the ARM side --------------------------------------------------------------------------


def _op_path(sub: str, location: str, op_id: str) -> str:
    return f"{ids.subscription_id(sub)}{PROVIDER}/locations/{location}/DiskOperations/{op_id}"


def begin_get_access(req: ArmRequest) -> Reply:
    b = req.require_body()
    for field in ("access", "durationInSeconds"):
        if b.get(field) is None:
            raise InvalidArgument(f"{field}: required", target=field)
    if b.get("getSecureVMGuestStateSAS"):
        raise InvalidArgument("getSecureVMGuestStateSAS: disk '{}' has no VM guest state (it "
                              "is not a confidential VM's disk)".format(req.path["diskName"]),
                              target="getSecureVMGuestStateSAS")
    with req.ctx.writing() as svc:
        grant = svc.disk_access.grant(req.rg, req.path["diskName"], sas.new_grant_id(),
                                      access=b["access"],
                                      duration_in_seconds=b["durationInSeconds"],
                                      file_format=b.get("fileFormat"))
        location = svc.repo.disk(req.rg, req.path["diskName"]).location
    url = req.url(_op_path(req.subscription, location, grant.id))
    return Reply(202, None, {"Azure-AsyncOperation": url,
                             "Location": url + "&monitor=true",
                             "Retry-After": str(req.ctx.settings.retry_after)})


def end_get_access(req: ArmRequest) -> Reply:
    with req.ctx.writing() as svc:
        svc.disk_access.revoke(req.rg, req.path["diskName"])
        row = svc.repo.disk(req.rg, req.path["diskName"])
        op = svc.operations.done("revokeAccess", ids.disk_id(row.subscription, row.rg, row.name), row.location)
    return Reply(202, None, lro_headers(req, op, row.location))


def disk_operation(req: ArmRequest) -> Reply:
    """A grant's operation: its status, or (``monitor=true``) its result."""
    op_id = req.path["operationId"]
    held = req.svc.disk_access.holder(op_id)
    if held is None or held[0].location.lower() != req.path["location"].lower():
        raise NotFound(f"operation '{op_id}' not found in location '{req.path['location']}' "
                       f"(an access that was revoked or replaced has no result)",
                       target="operationId")
    row, grant = held
    url = sas.make_url(req.ctx.root, req.base_url, grant_id=grant.id, disk_id=grant.disk_id,
                       access=grant.access, expires=grant.expires)
    if req.query.get("monitor", "").lower() == "true":
        return Reply(200, {"accessSAS": url})
    t = grant.granted.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00")
    return Reply(200, {"startTime": t, "endTime": t, "status": "Succeeded",
                       "properties": {"output": {"accessSAS": url}}, "name": op_id})


# -- the storage side ----------------------------------------------------------------------


def _identity(path: str) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class _Open:
    """A disk opened for export: its VHD view, the identity of the file it was opened on,
    a lock (readers are not thread-safe) and the ETag."""

    def __init__(self, row: DiskRow, grant_id: str) -> None:
        self.row = row
        self.closed = False
        self.path = row.path
        self.identity = _identity(row.path)
        self.view: FixedVhdView = disk_access.export_view(row)
        self.lock = threading.Lock()
        self.etag = '"0x' + hashlib.sha256(repr((grant_id, self.identity)).encode()).hexdigest(
            )[:16].upper() + '"'
        self.modified = format_datetime(
            datetime.fromtimestamp(self.identity[1] / 1e9, UTC), usegmt=True)

    def unchanged(self) -> bool:
        try:
            return _identity(self.path) == self.identity
        except OSError:
            return False

    def read(self, offset: int, length: int) -> bytes:
        with self.lock:
            if not self.unchanged():
                raise DiskChanged(self.path)
            if self.closed:  # evicted from the cache while a download still reads it
                self.view = disk_access.export_view(self.row)
                self.closed = False
            return self.view.read(offset, length)

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.view.reader.close()
                self.closed = True


class DiskChanged(Exception):
    """The disk file changed while it was being exported: the response is cut short."""


class Exports:
    """The open disks of one server (an LRU of :class:`_Open`)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Open] = OrderedDict()

    def authorize(self, grant_id: str, query: str) -> DiskRow:
        """The disk a valid SAS for ``grant_id`` reads (:class:`sas.SasRejected` else)."""
        held = self.ctx.service().disk_access.holder(grant_id)
        claims = sas.verify(self.ctx.root, grant_id, query,
                            held[1].disk_id if held else None)
        if "r" not in claims.permissions:
            raise sas.SasRejected("the SAS does not grant read")
        return held[0]

    def open(self, row: DiskRow, grant_id: str) -> _Open:
        with self._lock:
            cur = self._open.get(grant_id)
            if cur is not None and cur.unchanged() and cur.path == row.path:
                self._open.move_to_end(grant_id)
                return cur
        try:
            new = _Open(row, grant_id)
        except OSError as e:  # the disk file is gone or unreadable
            raise from_oserror(e, row.path) from None
        with self._lock:
            old = self._open.pop(grant_id, None)
            self._open[grant_id] = new
            while len(self._open) > CACHE_SIZE:
                _, gone = self._open.popitem(last=False)
                gone.close()
        if old is not None:
            old.close()
        return new


def _storage_error(status: int, code: str, message: str, *, detail: str | None = None,
                   headers: dict[str, str] | None = None, request_id: str = "") -> Response:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    xml = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>'
           f"{escape(message)}\nRequestId:{request_id}\nTime:{now}</Message>")
    if detail:
        xml += f"<AuthenticationErrorDetail>{escape(detail)}</AuthenticationErrorDetail>"
    xml += "</Error>"
    h = {"x-ms-error-code": code, "x-ms-request-id": request_id, **(headers or {})}
    return Response(xml, status_code=status, media_type="application/xml", headers=h)


def _blob_headers(o: _Open, request: Request, request_id: str) -> dict[str, str]:
    return {
        "Accept-Ranges": "bytes",
        "ETag": o.etag,
        "Last-Modified": o.modified,
        "x-ms-blob-type": "PageBlob",
        "x-ms-blob-sequence-number": "0",
        "x-ms-lease-status": "unlocked",
        "x-ms-lease-state": "available",
        "x-ms-server-encrypted": "true",
        "x-ms-creation-time": o.modified,
        "x-ms-version": request.headers.get("x-ms-version", STORAGE_VERSION),
        "x-ms-request-id": request_id,
    }


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or etag.strip('"') in (t.strip('"') for t in tags)


def _page_list(o: _Open) -> str:
    parts = "".join(f"<PageRange><Start>{a}</Start><End>{b}</End></PageRange>"
                    for a, b in o.view.page_ranges())
    return f'<?xml version="1.0" encoding="utf-8"?><PageList>{parts}</PageList>'


def _body(o: _Open, pieces) -> AsyncIterator[bytes]:  # noqa: ANN001 - (start, length) list
    async def gen() -> AsyncIterator[bytes]:
        for start, length in pieces:
            pos, end = start, start + length
            while pos < end:
                n = min(PIECE, end - pos)
                yield await run_in_threadpool(o.read, pos, n)
                pos += n
    return gen()


def _multipart_body(o: _Open, mp: Multipart) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for head, (a, b) in zip(mp.heads, mp.ranges, strict=True):
            yield head
            async for piece in _body(o, [(a, b - a + 1)]):
                yield piece
        yield mp.tail
    return gen()


def blob_endpoint(exports: Exports):  # noqa: ANN201 - a Starlette endpoint
    async def endpoint(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        grant_id = request.path_params["grantId"]
        try:
            row = await run_in_threadpool(exports.authorize, grant_id, request.url.query)
            o = await run_in_threadpool(exports.open, row, grant_id)
        except sas.SasRejected as e:
            return _storage_error(
                403, "AuthenticationFailed", "Server failed to authenticate the request. Make "
                "sure the value of Authorization header is formed correctly including the "
                "signature.", detail=e.detail, request_id=request_id)
        except ImagestoreError as e:  # the disk file is gone or unreadable
            return _storage_error(404 if isinstance(e, NotFound) else 500,
                                  "BlobNotFound" if isinstance(e, NotFound) else
                                  "InternalError", e.message, request_id=request_id)
        headers = _blob_headers(o, request, request_id)
        if request.query_params.get("comp") == "pagelist":
            return Response(_page_list(o), media_type="application/xml", headers={
                **headers, "x-ms-blob-content-length": str(o.view.size)})
        if request.query_params.get("comp") is not None:
            return _storage_error(400, "UnsupportedQueryParameter", "One of the query "
                                  "parameters specified in the request URI is not supported.",
                                  request_id=request_id)
        im = request.headers.get("if-match")
        if im is not None and not _etag_matches(im, o.etag):
            return _storage_error(412, "ConditionNotMet", "The condition specified using HTTP "
                                  "conditional header(s) is not met.", request_id=request_id)
        inm = request.headers.get("if-none-match")
        if inm is not None and _etag_matches(inm, o.etag):
            return Response(status_code=304, headers=headers)
        size = o.view.size
        try:
            ranges = parse(request.headers.get("x-ms-range") or request.headers.get("range"),
                           size)
        except RangeNotSatisfiable as e:
            return _storage_error(416, "InvalidRange", f"The range specified is invalid for "
                                  f"the current size of the resource ({e}).",
                                  headers={"Content-Range": f"bytes */{size}"},
                                  request_id=request_id)
        head = request.method == "HEAD"
        if ranges is None:
            headers["Content-Length"] = str(size)
            if head:
                return Response(status_code=200, headers=headers,
                                media_type="application/octet-stream")
            return StreamingResponse(_body(o, [(0, size)]), status_code=200, headers=headers,
                                     media_type="application/octet-stream")
        if len(ranges) == 1:
            a, b = ranges[0]
            headers["Content-Range"] = content_range(a, b, size)
            headers["Content-Length"] = str(b - a + 1)
            if head:
                return Response(status_code=206, headers=headers,
                                media_type="application/octet-stream")
            return StreamingResponse(_body(o, [(a, b - a + 1)]), status_code=206,
                                     headers=headers, media_type="application/octet-stream")
        mp = Multipart(ranges, size, secrets.token_hex(12))
        headers["Content-Length"] = str(mp.length)
        if head:
            return Response(status_code=206, headers=headers, media_type=mp.content_type)
        return StreamingResponse(_multipart_body(o, mp), status_code=206, headers=headers,
                                 media_type=mp.content_type)

    return endpoint


def routes(ctx: ApiContext) -> list[Route]:
    exports = Exports(ctx)
    return [
        arm_route(ctx, DISK + "/beginGetAccess", ["POST"], begin_get_access,
                  DISK_API_VERSIONS),
        arm_route(ctx, DISK + "/endGetAccess", ["POST"], end_get_access, DISK_API_VERSIONS),
        arm_route(ctx, DISK_OPERATION, ["GET"], disk_operation, DISK_API_VERSIONS),
        Route(BLOB, blob_endpoint(exports), methods=["GET", "HEAD"]),
    ]

