"""`imagestore worker`: the background worker that captures (``--no-wait``) and replicates
image versions. Commands start one on demand; run it yourself as a service with
``IMAGESTORE_AUTOSTART_WORKER=0`` set for the commands."""

from __future__ import annotations

import click

from ..worker import run_worker
from .common import common_options
from .output import emit
from .sig_cmds import gallery_service


@click.command("worker")
@click.option("--once", is_flag=True,
              help="Exit when the queue is empty (default: keep waiting for work).")
@click.option("--quiet", is_flag=True, help="Do not log each job on stdout.")
@common_options
@click.pass_context
def worker_cmd(ctx: click.Context, once: bool, quiet: bool) -> None:
    """Run queued replication jobs. At most one worker runs per gallery (per store, or across
    every host sharing one PostgreSQL gallery): it holds a lease (host, pid and heartbeat) in
    the gallery database; a worker that died (even by SIGKILL) is replaced by the next one,
    which resumes its jobs without copying again what already arrived.

    \b
    Example:
      imagestore worker --once
      IMAGESTORE_AUTOSTART_WORKER=0 imagestore worker   # as a service
    """
    emit(ctx, run_worker(gallery_service(ctx), once=once, verbose=not quiet))
