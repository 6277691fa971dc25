"""Build the optional native module ``imagestore.accel._native`` from ``native/``.

Everything else about the package lives in pyproject.toml.  When the C compiler is missing or
the build fails, installation goes on with a warning and ``imagestore.accel`` uses its
pure-Python twin (``imagestore.accel.pure``).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, PlatformError

BUILD_ERRORS = (CCompilerError, CompileError, ExecError, PlatformError, OSError)


def warn(msg: str) -> None:
    bar = "*" * 75
    print(f"\n{bar}\nWARNING: {msg}\n{bar}\n", file=sys.stderr)


class optional_build_ext(build_ext):  # noqa: N801 (setuptools command naming)
    """build_ext that turns a failed compile into a warning: the pure twin takes over."""

    def run(self) -> None:
        try:
            super().run()
        except BUILD_ERRORS as e:
            warn(f"imagestore: the native module was not built ({e}); using pure Python.")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as e:
            warn(f"imagestore: could not compile {ext.name} ({e}); using pure Python.")

    def copy_file(self, infile, outfile, *args, **kwargs):  # type: ignore[override]
        # In-place (editable) builds replace the .so by rename, never by rewriting it: a
        # running interpreter that has the old one mapped would die of SIGBUS.
        import os
        import shutil

        if not str(outfile).endswith((".so", ".pyd")) or self.dry_run:
            return super().copy_file(infile, outfile, *args, **kwargs)
        tmp = f"{outfile}.tmp{os.getpid()}"
        shutil.copyfile(infile, tmp)
        shutil.copymode(infile, tmp)
        os.replace(tmp, outfile)
        return outfile, True

    def get_outputs(self) -> list[str]:
        # Only what was really built: an editable install must not look for a missing .so.
        import os

        return [p for p in super().get_outputs() if os.path.exists(p)]


unix = sys.platform != "win32"
native = Extension(
    "imagestore.accel._native",
    sources=["native/_native.c"],
    # Plain -O3: gcc vectorises the zero scan with the baseline ISA; no -march, the build
    # must run on any machine of the architecture.
    extra_compile_args=["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-pthread"] if unix else [],
    extra_link_args=["-pthread"] if unix else [],
    optional=True,
)

setup(ext_modules=[native], cmdclass={"build_ext": optional_build_ext})
