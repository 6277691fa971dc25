"""What one benchmark run is asked for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..store.layout import parse_size

MiB = 1 << 20
GiB = 1 << 30


class BenchError(RuntimeError):
    """A tool the benchmark needs failed or is missing."""


@dataclass
class Settings:
    workdir: str
    size: int = GiB
    size_given: bool = False  # --size was passed (else each benchmark picks its own)
    tiny: bool = False
    image: str | None = None
    threads: int = 2
    repeat: int = 3
    cache: str = "cold"  # "cold", "warm" (or "both": the benchmark runs once per mode)
    peers: bool = False  # bench capture: also borg / restic where installed
    compressibility: float | None = None  # bench replicate: generated data instead of ext4
    change_rate: float = 0.02  # bench replicate: share of v1's data changed in v2
    log: Callable[[str], None] = field(default=lambda _m: None)
    #: bench capture: the families to run (capture, disks, conversions); None = all
    only: tuple[str, ...] | None = None
    #: lines the run adds to its footer (peers used and skipped, ...)
    notes: list[str] = field(default_factory=list)

    @property
    def cold(self) -> bool:
        return self.cache == "cold"

    def wants(self, family: str) -> bool:
        return self.only is None or family in self.only

    def modes(self) -> list[str]:
        """The cache modes asked for: ``both`` is cold, then warm."""
        return ["cold", "warm"] if self.cache == "both" else [self.cache]


def settings_size(text: str | None, tiny: bool) -> int:
    """The ``--size`` of a run: parsed, else 64 MiB with ``--tiny``, else 1 GiB."""
    if text:
        return parse_size(text, "--size")
    return 64 * MiB if tiny else GiB
