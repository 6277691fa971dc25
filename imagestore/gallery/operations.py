"""Long-running operations: the durable records behind the REST API's ``Azure-AsyncOperation``
status resources.

An operation is recorded when a request starts work that may outlive it (an image version's
capture and replication, run by the worker) or that Azure models as long-running (deletes).
Its status is ``InProgress`` until it ends; for an operation on an image version the end is
read from the version itself (its ``provisioningState``), so the record needs no one to
update it: a server killed mid-request and restarted, or a worker that finished while no
server ran, gives the same answer. The first time an end is seen it is written down.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from ..errors import ImagestoreError
from .repository import OperationRow, ProvisioningState, Repository
from .versions import Versions


class OperationStatus(StrEnum):
    """ARM's operation status values."""

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


class Operations:
    """Start, finish and read operations."""

    def __init__(self, repo: Repository, versions: Versions) -> None:
        self.repo = repo
        self.versions = versions

    def start(self, kind: str, resource_id: str, location: str, *,
              version_pk: int | None = None) -> str:
        """Record an operation in progress; returns its id."""
        op_id = str(uuid.uuid4())
        with self.repo.transaction():
            self.repo.insert_operation(op_id, kind, resource_id, location, version_pk,
                                       OperationStatus.IN_PROGRESS)
        return op_id

    def done(self, kind: str, resource_id: str, location: str, *,
             error: ImagestoreError | None = None) -> str:
        """Record an operation that ended already (Succeeded, or Failed with ``error``)."""
        op_id = str(uuid.uuid4())
        status = OperationStatus.FAILED if error else OperationStatus.SUCCEEDED
        with self.repo.transaction():
            self.repo.insert_operation(op_id, kind, resource_id, location, None, status,
                                       error_body(error) if error else None)
        return op_id

    def get(self, op_id: str) -> OperationRow | None:
        """The operation as of now (None when unknown): an unfinished one on an image version
        is brought up to date from the version's state first."""
        op = self.repo.operation(op_id)
        if op is None or op.status != OperationStatus.IN_PROGRESS or op.version_id is None:
            return op
        row = self.repo.version_by_pk(op.version_id)
        if row is None:
            end: tuple[str, dict | None] | None = (
                (OperationStatus.SUCCEEDED, None) if op.kind == "delete" else
                (OperationStatus.FAILED, {"code": "ResourceNotFound", "message":
                                          f"{op.resource_id} was deleted before the operation "
                                          f"finished"}))
        elif row.provisioning_state == ProvisioningState.SUCCEEDED:
            end = (OperationStatus.SUCCEEDED, None)
        elif row.provisioning_state == ProvisioningState.FAILED and not self.repo.pending_jobs(row.id):
            try:
                self.versions.raise_if_failed(row.id)
                err = {"code": "OperationFailed", "message": "provisioning failed"}
            except ImagestoreError as e:
                err = error_body(e)
            end = (OperationStatus.FAILED, err)
        else:
            end = None
        if end is None:
            return op
        with self.repo.transaction():
            self.repo.finish_operation(op.id, end[0], end[1])
        return self.repo.operation(op_id)

    def in_progress(self) -> list[OperationRow]:
        """Operations not finished."""
        return self.repo.operations_in_progress()


def error_body(err: ImagestoreError) -> dict:
    """An ImagestoreError as ARM's error object (``code``, ``message``, ``target``)."""
    out: dict = {"code": err.code, "message": err.message}
    if err.target:
        out["target"] = err.target
    return out
