"""`imagestore convert SRC DST`: one disk image to another format, without the store
(what ``qemu-img convert -O FMT`` does); the work is :func:`imagestore.formats.convert.convert`."""

from __future__ import annotations

import click

from ..errors import ImagestoreError
from ..formats import WRITE_FORMATS
from ..formats.convert import convert
from .common import common_options
from .output import emit
from .progress import progress_for


@click.command("convert")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option("--format", "-O", "fmt", default="raw", show_default=True,
              type=click.Choice(WRITE_FORMATS, case_sensitive=False),
              help="Output format (as in 'disk create'; qemu-img's -O also works: its 'vpc' is "
                   "'vhd' here, '-o subformat=fixed' is 'vhd-fixed'/'vhdx-fixed').")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
@click.option("--allow-parent-dir", default=None, metavar="DIR",
              help="Allow differencing parents of SRC to resolve inside DIR too.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Reader threads.")
@common_options
@click.pass_context
def convert_cmd(ctx: click.Context, src: str, dst: str, fmt: str, force: bool,
                allow_parent_dir: str | None, threads: int) -> None:
    """Convert disk image SRC (raw, VHD, VHDX; detected from content) to DST in --format.

    Only allocated, non-zero data is read and written: holes stay holes. A differencing
    SRC is flattened (DST has no parent). DST appears only when complete; an existing DST is
    refused (exit 5) unless --force. No store is used or needed.

    \b
    Example:
      imagestore convert disk.vhd disk.raw
      imagestore convert disk.raw disk.vhdx --format vhdx
      imagestore convert -O vhd-fixed disk.vhdx azure.vhd    # fixed VHD for Azure upload
    """
    bar = progress_for(ctx, "convert")
    try:
        res = convert(src, dst, fmt, overwrite=force, threads=threads,
                      allow_parent_dir=allow_parent_dir, progress=bar)
    except ImagestoreError as e:
        if e.target == "destination" and e.exit_code == 5:  # the library names no flags
            e.message = f"{e.message} (pass --force to replace it)"
        raise
    finally:
        bar.close()
    emit(ctx, res.to_json())
