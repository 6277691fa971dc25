"""A terminal progress bar on stderr: bytes done out of the total, and the rate.

Shown only when stderr is a terminal and the user did not ask for ``-o json``/``none``
explicitly; scripts and pipes get no progress noise.
"""

from __future__ import annotations

import sys
import time

import click


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class ProgressBar:
    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        frac = done / total if total else 1.0
        width = 30
        fill = int(frac * width)
        rate = done / max(now - self.start, 1e-6)
        line = (
            f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}% "
            f"{_human(done)}/{_human(total)} {_human(rate)}/s"
        )
        sys.stderr.write(line)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def progress_for(ctx: click.Context, label: str) -> ProgressBar:
    settings = ctx.find_root().meta.get("imagestore.output", {})
    explicit = settings.get("output_explicit") and settings.get("output") in ("json", "none", "tsv")
    enabled = sys.stderr.isatty() and not explicit
    return ProgressBar(label, enabled)
