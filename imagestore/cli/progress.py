"""A terminal progress bar on stderr: bytes done out of the total, and the rate.

Shown only when stderr is a terminal and the user did not ask for ``-o json``/``none``
explicitly, nor for ``--only-show-errors``; scripts and pipes get no progress noise.
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
    enabled = sys.stderr.isatty() and not explicit and not settings.get("only_show_errors")
    return ProgressBar(label, enabled)


class GalleryProgress:
    """Renders the gallery's progress events (:class:`imagestore.gallery.ProgressEvent`) as
    one bar per task: ``capture os disk``, ``replicate west``, ``create disk``.

    A region is only given a bar once it was seen queued or replicating (one that completed
    before we looked shows nothing); a task's bar closes with its final event."""

    LABELS = {"capture": "capture {}", "replicate": "replicate {}", "disk": "create disk"}

    def __init__(self, factory) -> None:  # noqa: ANN001 - label -> bar
        self.factory = factory
        self.bars: dict[tuple[str, str], object] = {}
        self.closed: set[tuple[str, str]] = set()
        self.active: set[tuple[str, str]] = set()

    def __call__(self, ev) -> None:  # noqa: ANN001 - a ProgressEvent
        key = (str(ev.kind), ev.subject)
        if key in self.closed:
            return
        if ev.kind == "replicate":
            if ev.state == "Queued":
                self.active.add(key)
                return
            if ev.state == "Replicating":
                self.active.add(key)
            if key not in self.bars and key not in self.active:
                return  # completed (or failed) before we looked: nothing to show
        bar = self.bars.get(key)
        if bar is None:
            bar = self.bars[key] = self.factory(self.LABELS[str(ev.kind)].format(ev.subject))
        if ev.total:
            bar(ev.done, ev.total)
        if ev.final:
            bar.close()
            self.closed.add(key)

    def close(self) -> None:
        """Close every bar still open (the command ends)."""
        for key, bar in self.bars.items():
            if key not in self.closed:
                bar.close()
                self.closed.add(key)


def gallery_progress(ctx: click.Context) -> GalleryProgress:
    """The observer a gallery command hands to the library (closed when the command ends)."""
    obs = GalleryProgress(lambda label: progress_for(ctx, label))
    ctx.call_on_close(obs.close)
    return obs
