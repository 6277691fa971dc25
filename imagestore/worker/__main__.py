"""``python -m imagestore.worker [--store DIR] [--once] [--quiet]``: run a store's queued
gallery jobs (what commands start in the background). Prints a JSON summary; errors are one
line ``error: …`` with the documented exit code."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ImagestoreError
from ..gallery.service import GalleryService
from ..home import Home
from .worker import run_worker


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m imagestore.worker",
                                description="Run queued imagestore gallery jobs.")
    p.add_argument("--store", default=None, metavar="DIR",
                   help="Store directory (default $IMAGESTORE_HOME, else ~/.local/share/imagestore).")
    p.add_argument("--once", action="store_true", help="Exit when the queue is empty.")
    p.add_argument("--quiet", action="store_true", help="Do not log each job.")
    args = p.parse_args(argv)
    try:
        home = Home.open(args.store, create=False)
        try:
            svc = GalleryService(home)
            try:
                out = run_worker(svc, once=args.once, verbose=not args.quiet)
            finally:
                svc.close()
        finally:
            home.close()
    except ImagestoreError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    print(json.dumps(out))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
