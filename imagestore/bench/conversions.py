"""Format conversion without the store (:func:`imagestore.formats.convert.convert`, the
``imagestore convert`` command) vs ``qemu-img convert`` doing the same (part of
``bench capture``)."""

from __future__ import annotations

from ..formats.convert import convert
from .report import Goal, pair
from .timing import interleaved
from .tools import rm
from .workspace import Workspace

#: (label, which image, our format, qemu-img -f, qemu-img -O, qemu-img -o)
CONVERSIONS = (
    ("dynamic VHD -> raw", "vhd", "raw", "vpc", "raw", None),
    ("raw -> dynamic VHDX", "raw", "vhdx", "raw", "vhdx", None),
    ("dynamic VHD -> fixed VHD", "vhd", "vhd-fixed", "vpc", "vpc", "subformat=fixed,force_size=on"),
    ("dynamic VHDX -> dynamic VHDX", "vhdx", "vhdx", "vhdx", "vhdx", None),
)


def conversion_rows(w: Workspace) -> list[dict]:
    """One pair per conversion in :data:`CONVERSIONS`."""
    s, cache, th = w.s, w.s.cache, w.s.threads
    rows: list[dict] = []
    for label, which, ours_fmt, qsrc, qdst, qopts in CONVERSIONS:
        src = getattr(w.img, which)
        s.log(f"convert {label}")
        t_c, t_q = interleaved(s, [
            (lambda a=src, f=ours_fmt: convert(a, w.out, f, threads=th), w.drop(src)),
            (w.qemu(src, qsrc, qdst, qopts), w.drop(src)),
        ])
        rm(w.out)
        qemu = f"qemu-img convert -f {qsrc} -O {qdst}" + (f" -o {qopts}" if qopts else "")
        rows += pair(f"convert {label} (imagestore convert)", t_c, w.img.allocated, [
            (qemu, "qemu-img", t_q),
        ], target=Goal.AT_LEAST_AS_FAST, cache=cache)
    return rows
