"""Where the store's server listens: ``imagestore serve`` records its base URL and pid in
``<store>/serve.json`` while it runs, so commands that hand out URLs served by it
(``imagestore disk grant-access``) name the right address.

The record is written atomically at start and removed at a clean stop; one left by a killed
server names a pid that is gone and is ignored.
"""

from __future__ import annotations

import json
import os

from ..fsutil import atomic_write, pid_alive

FILE = "serve.json"
#: the URL a grant names when no server runs (``imagestore serve``'s defaults)
DEFAULT_URL = "http://127.0.0.1:8443"


def publish(root: str, url: str) -> None:
    """Record that this process serves the store at ``url``."""
    atomic_write(os.path.join(root, FILE),
                 json.dumps({"url": url, "pid": os.getpid()}).encode())


def withdraw(root: str) -> None:
    """Remove this process's record (another server's is left alone)."""
    path = os.path.join(root, FILE)
    try:
        with open(path) as f:
            rec = json.load(f)
        if rec.get("pid") == os.getpid():
            os.unlink(path)
    except (OSError, ValueError):
        pass


def current(root: str) -> str | None:
    """The URL of the server running for this store now, or None."""
    try:
        with open(os.path.join(root, FILE)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    pid, url = rec.get("pid"), rec.get("url")
    if not isinstance(pid, int) or not isinstance(url, str) or not pid_alive(pid):
        return None
    return url
