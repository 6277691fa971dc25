"""Progress events: what the gallery layer reports while it captures, replicates or writes a
disk. The library only emits them; rendering (bars on a terminal) is the CLI's business
(:mod:`imagestore.cli.progress`), a REST API would turn them into operation status.

An observer is any callable taking a :class:`ProgressEvent`. Events of one task share
``(kind, subject)``; the last one of a task has ``final=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class TaskKind(StrEnum):
    """What a progress event is about."""
    CAPTURE = "capture"  # subject: "os disk" / "data disk lun N"
    REPLICATE = "replicate"  # subject: the region; state: its ReplicationState
    DISK = "disk"  # subject: the disk name


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` bytes of one task. ``state`` is the region's replication state
    for replication events (``Queued``, ``Replicating``, ``Completed``, ``Failed``), else
    None."""

    kind: TaskKind
    subject: str
    done: int
    total: int
    state: str | None = None
    final: bool = False


Observer = Callable[[ProgressEvent], None]


class TaskProgress:
    """A ``(done, total)`` callback for the store layer that emits the events of one task;
    :meth:`close` emits the final event."""

    def __init__(self, observer: Observer | None, kind: TaskKind, subject: str) -> None:
        self.observer = observer
        self.kind = kind
        self.subject = subject
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.observer is not None:
            self.observer(ProgressEvent(self.kind, self.subject, done, total))

    def close(self) -> None:
        """The task ended (successfully or not)."""
        if self.observer is not None:
            self.observer(ProgressEvent(self.kind, self.subject, self.done, self.total,
                                        final=True))
