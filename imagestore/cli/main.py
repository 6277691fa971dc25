"""The `imagestore` console script: a thin click layer over the library.

``main()`` maps every :class:`~imagestore.errors.ImagestoreError` to one line on stderr and
its documented exit code; click usage errors exit 2; nothing else prints a traceback unless
``--debug`` or ``IMAGESTORE_DEBUG=1``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback

import click

from .. import __version__
from ..errors import ImagestoreError
from .acting import install as install_rbac
from .ad_cmds import ad_group
from .bench_cmds import bench_group
from .common import common_options
from .convert_cmd import convert_cmd
from .disk_cmds import disk_group
from .group_cmds import group_group
from .identity_cmds import account_group, token_group
from .image_cmds import image_group
from .rbac_cmds import register_account, register_ad, role_group
from .region_cmds import region_group
from .serve_cmd import serve_cmd
from .sig_cmds import sig_group
from .sig_share_cmds import share_group  # noqa: F401 - registers sig share/list-shared/... (issue 15)
from .sig_soft_delete_cmds import image_version_purge  # noqa: F401 - registers list-soft-deleted/undelete/purge
from .sig_version_cmds import image_version_group  # noqa: F401 - registers sig image-version
from .snapshot_cmds import snapshot_group
from .store_cmds import init_cmd, store_group
from .targets import cli_message, command_of
from .vm_cmds import vm_group  # compute layer (issue 14)
from .vmss_cmds import vmss_group
from .worker_cmds import worker_cmd


class UserError(click.ClickException):
    """An ImagestoreError on its way out through click: one line, its own exit code."""

    def __init__(self, err: ImagestoreError, ctx: click.Context | None = None) -> None:
        msg = cli_message(err, command_of(ctx)) if ctx is not None else err.message
        super().__init__(" ".join(msg.split("\n")))
        self.exit_code = err.exit_code

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        click.echo(f"error: {self.message}", err=True)


class ImagestoreGroup(click.Group):
    """Maps library errors to one-line messages and exit codes (also under CliRunner)."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except ImagestoreError as e:
            raise UserError(e, ctx) from None
        except OSError as e:
            from ..errors import from_oserror

            raise UserError(from_oserror(e, e.filename or "I/O")) from None
        except sqlite3.Error as e:
            # the last boundary: store connections name their file (store/sqlitedb.py), so
            # this only catches one opened elsewhere; a bug (SQL, constraints) stays a bug
            from ..store.sqlitedb import translate

            mapped = translate(e, "a store database")
            if mapped is None:
                raise
            raise UserError(mapped, ctx) from None


def _version_text() -> str:
    from ..accel import BACKEND

    return f"imagestore {__version__} (backend: {BACKEND})"


@click.group(cls=ImagestoreGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", message=_version_text())
@common_options
def cli() -> None:
    """imagestore: a local Azure Compute Gallery for VM disk images.

    \b
    Example:
      imagestore store ingest disk.vhdx
      imagestore --store /srv/images store stats -o table
    """


cli.add_command(init_cmd)
cli.add_command(store_group)
cli.add_command(bench_group)
cli.add_command(sig_group)
cli.add_command(disk_group)
cli.add_command(snapshot_group)
cli.add_command(image_group)
cli.add_command(region_group)
cli.add_command(worker_cmd)
cli.add_command(convert_cmd)
cli.add_command(vm_group)  # compute layer (issue 14)
cli.add_command(vmss_group)
# REST API (issue 12)
cli.add_command(account_group)
cli.add_command(token_group)
cli.add_command(serve_cmd)
cli.add_command(ad_group)  # service principals (issue 12)
# directory and RBAC (issue 15): ad tenant/user/group, account create/list, role, --as
register_ad(ad_group)
register_account(account_group)
cli.add_command(role_group)
cli.add_command(group_group)  # resource groups in subscriptions (issue 15)
install_rbac(cli)  # every leaf command: authorized first when run --as a principal


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="imagestore", standalone_mode=False)
    except ImagestoreError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if os.environ.get("IMAGESTORE_DEBUG") or "--debug" in (argv or sys.argv[1:]):
            traceback.print_exc()
        click.echo(f"error: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
