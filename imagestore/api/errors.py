"""Errors as ARM returns them: an HTTP status and ``{"error": {"code", "message", "target",
"details"}}``, mapped from the domain hierarchy of :mod:`imagestore.errors`.

| domain error | HTTP | ARM code |
|---|---|---|
| Unauthenticated | 401 (+ ``WWW-Authenticate: Bearer``) | AuthenticationFailed, InvalidAuthenticationToken, ExpiredAuthenticationToken, InvalidAuthenticationTokenAudience |
| InvalidArgument, BadImage, TooLarge, PatchError | 400 | InvalidParameter (or the error's own code) |
| NotFound | 404 | ResourceNotFound; ParentResourceNotFound when a parent is missing |
| Conflict, PropertyChangeNotAllowed, OperationNotAllowed | 409 | the error's code |
| StoreBusy | 429 (+ ``Retry-After``) | Conflict (the SDK retries it) |
| AccessDenied (a storage service refused a source's key or SAS) | 403 | AuthorizationFailed |
| DatabaseUnavailable | 503 (+ ``Retry-After``) | DatabaseUnavailable |
| TimedOut | 504 | OperationTimedOut |
| IntegrityError, NotAStore, IOFailure, anything else | 500 | the error's code / InternalServerError |
"""

from __future__ import annotations

import json
import logging

from starlette.responses import JSONResponse, Response

from ..errors import (
    AccessDenied,
    Conflict,
    DatabaseUnavailable,
    ImagestoreError,
    InvalidArgument,
    NotFound,
    StoreBusy,
    TimedOut,
    Unauthenticated,
)

log = logging.getLogger("imagestore.api")


class ApiError(Exception):
    """An error the API answers with as it is (status, ARM code, message, target)."""

    def __init__(self, status: int, code: str, message: str, *, target: str | None = None,
                 headers: dict[str, str] | None = None, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = headers or {}
        self.details = details


def www_authenticate(tenant: str, error: str | None, description: str) -> str:
    """ARM's challenge: where to get a token, and why this one failed."""
    parts = [f'Bearer authorization_uri="https://login.imagestore.local/{tenant}"',
             'resource_id="https://management.azure.com/"']
    if error:
        parts.append(f'error="{error}"')
    # a header is latin-1 printable: anything else (an ellipsis, a control character) is '?'
    desc = "".join(c if 32 <= ord(c) < 127 and c != '"' else ("'" if c == '"' else "?")
                   for c in description)
    parts.append(f'error_description="{desc}"')
    return ", ".join(parts)


def body(code: str, message: str, target: str | None = None,
         details: list[dict] | None = None) -> dict:
    """ARM's error body."""
    err: dict = {"code": code, "message": message}
    if target:
        err["target"] = target
    if details:
        err["details"] = details
    return {"error": err}


def from_domain(err: ImagestoreError, *, parent_targets: tuple[str, ...] = (),
                tenant: str = "") -> ApiError:
    """The HTTP form of a domain error. ``parent_targets``: the name fields of the requested
    resource's parents (a NotFound about one of them is ParentResourceNotFound)."""
    if isinstance(err, Unauthenticated):
        missing = err.code == "AuthenticationFailed"
        return ApiError(401, err.code, err.message, headers={
            "WWW-Authenticate": www_authenticate(tenant, None if missing else "invalid_token",
                                                 err.message)})
    if isinstance(err, NotFound):
        code = "ParentResourceNotFound" if err.target in parent_targets else "ResourceNotFound"
        if err.code not in ("ResourceNotFound",):
            code = err.code
        return ApiError(404, code, err.message, target=err.target)
    if isinstance(err, StoreBusy):
        return ApiError(429, err.code, err.message, headers={"Retry-After": "1"})
    if isinstance(err, Conflict):
        return ApiError(409, err.code, err.message, target=err.target)
    if isinstance(err, InvalidArgument) or err.exit_code in (6, 11):  # BadImage, TooLarge
        return ApiError(400, err.code, err.message, target=err.target)
    if isinstance(err, AccessDenied):  # a storage service refused the source's credentials
        return ApiError(403, err.code, err.message, target=err.target)
    if isinstance(err, DatabaseUnavailable):
        return ApiError(503, err.code, err.message, headers={"Retry-After": "5"})
    if isinstance(err, TimedOut):
        return ApiError(504, err.code, err.message, target=err.target)
    return ApiError(500, err.code, err.message, target=err.target)


def response(err: ApiError) -> Response:
    """The JSON response for an ApiError."""
    if err.status >= 500:
        log.error("%s %s: %s", err.status, err.code, err.message)
    return JSONResponse(body(err.code, err.message, err.target, err.details),
                        status_code=err.status, headers=err.headers)


def internal(exc: BaseException) -> ApiError:
    """An unexpected exception (a bug): 500 with its type, logged with its traceback."""
    log.exception("internal error: %s", exc)
    return ApiError(500, "InternalServerError",
                    f"internal error: {type(exc).__name__}: {exc}")


def invalid_content(why: str) -> ApiError:
    """A request body that is not what the resource takes."""
    return ApiError(400, "InvalidRequestContent",
                    f"The request content was invalid and could not be deserialized: {why}")


def dumps(obj: object) -> bytes:
    """JSON as the API sends it."""
    return json.dumps(obj, separators=(",", ":")).encode()
