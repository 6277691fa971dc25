"""One error hierarchy for the whole tool.

Every user-facing failure is an :class:`ImagestoreError`. Each class carries its stable exit
code; the CLI's ``main()`` prints ``error: <message>`` on one line and exits with that code.
Exit codes are part of the contract (README, "Exit codes") and never change meaning.
"""

from __future__ import annotations


class ImagestoreError(Exception):
    """Base class. ``exit_code`` is stable and documented.

    ``code`` is the ARM error code (``InvalidParameter``, ``ResourceNotFound``, ``Conflict``,
    ``OperationNotAllowed``, ``PropertyChangeNotAllowed``, …) and ``target`` the field it is
    about, named as in the resource JSON (``properties.storageProfile.osDiskImage.source.uri``)
    or ``None``. The message never names a CLI flag: each interface maps ``target`` to its own
    vocabulary (the CLI to a flag name, the REST API to the ARM error body's ``target``).
    """

    exit_code = 1
    kind = "Error"
    code = "InternalError"

    def __init__(self, message: str, *, target: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ImagestoreError):
    """A flag or field value is malformed or out of range (names the field)."""

    exit_code = 3
    kind = "InvalidArgument"
    code = "InvalidParameter"


class NotFound(ImagestoreError):
    """A file, digest or resource does not exist."""

    exit_code = 4
    kind = "NotFound"
    code = "ResourceNotFound"


class Conflict(ImagestoreError):
    """The request conflicts with the current state (exists already, in use, not allowed now)."""

    exit_code = 5
    kind = "Conflict"
    code = "Conflict"


class BadImage(ImagestoreError):
    """A disk image file is malformed, hostile or unsupported (names the file and the problem)."""

    exit_code = 6
    kind = "BadImage"
    code = "InvalidParameter"


class IntegrityError(ImagestoreError):
    """Stored data failed a check: a chunk hash mismatch, a missing chunk, a damaged manifest."""

    exit_code = 7
    kind = "IntegrityError"
    code = "InternalDataCorruption"


class NotAStore(ImagestoreError):
    """The store directory is not an imagestore store, or has an unknown format version."""

    exit_code = 8
    kind = "NotAStore"
    code = "NotAStore"


class StoreBusy(ImagestoreError):
    """A lock could not be taken in time (for example gc while ingests run)."""

    exit_code = 9
    kind = "StoreBusy"
    code = "Conflict"


class IOFailure(ImagestoreError):
    """The operating system refused an operation (permission, disk full, read-only)."""

    exit_code = 10
    kind = "IOFailure"
    code = "StorageFailure"


class TooLarge(ImagestoreError):
    """The disk does not fit the target format or filesystem."""

    exit_code = 11
    kind = "TooLarge"
    code = "InvalidParameter"


class PropertyChangeNotAllowed(Conflict):
    """An update tried to change a property that is fixed once the resource exists."""

    code = "PropertyChangeNotAllowed"


class OperationNotAllowed(Conflict):
    """The operation is not allowed in the resource's current state (blocked deletion, …)."""

    code = "OperationNotAllowed"


class TimedOut(ImagestoreError):
    """A wait for a resource's state ran out of time (not a lock: see StoreBusy)."""

    exit_code = 12
    kind = "TimedOut"
    code = "OperationTimedOut"


# -- interfaces: the REST API (issue 12) ------------------------------------------------------


class Unauthenticated(ImagestoreError):
    """A request's credentials are missing, expired, malformed or not this store's (HTTP 401)."""

    exit_code = 13
    kind = "Unauthenticated"
    code = "AuthenticationFailed"


class AccessDenied(ImagestoreError):
    """A storage service refused the credentials (wrong account key, expired SAS)."""

    exit_code = 14
    kind = "AccessDenied"
    code = "AuthorizationFailed"


class AuthorizationFailed(AccessDenied):
    """RBAC refused a principal an action over a scope (issue 15): ARM's 403
    ``AuthorizationFailed``; ``action`` and ``scope`` name what was refused."""

    def __init__(self, message: str, *, action: str, scope: str,
                 code: str = "AuthorizationFailed") -> None:
        super().__init__(message, code=code)
        self.action = action
        self.scope = scope


# -- the gallery database server (issue 16, PostgreSQL) ----------------------------------


class DatabaseUnavailable(ImagestoreError):
    """The gallery's database server (``IMAGESTORE_DATABASE_URL``) cannot be reached or
    refused the login: refused connection, unknown host or database, wrong password."""

    exit_code = 15
    kind = "DatabaseUnavailable"
    code = "DatabaseUnavailable"


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it with the command line)",
    2: "usage error (unknown command or flag, missing argument)",
    InvalidArgument.exit_code: "invalid argument or field value",
    NotFound.exit_code: "file, digest or resource not found",
    Conflict.exit_code: "conflict with the current state (already exists, in use, change not allowed)",
    BadImage.exit_code: "malformed, hostile or unsupported disk image",
    IntegrityError.exit_code: "stored data failed verification (bad or missing chunk)",
    NotAStore.exit_code: "directory is not an imagestore store / unsupported store version",
    StoreBusy.exit_code: "store busy: a lock could not be taken in time",
    IOFailure.exit_code: "operating-system I/O failure (permission, disk full, read-only)",
    TooLarge.exit_code: "disk too large for the target format or filesystem",
    TimedOut.exit_code: "timed out waiting for a resource to reach the requested state",
    Unauthenticated.exit_code: "access token missing, expired, malformed or of another store",
    AccessDenied.exit_code: "access denied: by a storage service (account key, SAS, connection string), or by RBAC (AuthorizationFailed: no role assignment grants the action over the scope)",
    DatabaseUnavailable.exit_code: "gallery database server unreachable or login refused (IMAGESTORE_DATABASE_URL)",
}


def from_oserror(err: OSError, what: str) -> ImagestoreError:
    """Turn an OSError into a one-line error naming ``what``."""
    import errno

    reason = err.strerror or str(err)
    if err.errno in (errno.ENOENT,):
        return NotFound(f"{what}: no such file or directory")
    if err.errno in (errno.EACCES, errno.EPERM):
        return IOFailure(f"{what}: permission denied")
    if err.errno == errno.EISDIR:
        return InvalidArgument(f"{what}: is a directory")
    if err.errno == errno.ENOSPC:
        return IOFailure(f"{what}: no space left on device")
    if err.errno == errno.EROFS:
        return IOFailure(f"{what}: read-only file system")
    if err.errno == errno.EFBIG:
        return TooLarge(f"{what}: file too large for this filesystem")
    return IOFailure(f"{what}: {reason}")
