"""Host files named by a principal's request: confined to the server's import directories.

A REST body may name files of the server host: a version's ``source.uri`` (a ``file://``
URI or a path), a snapshot's or disk's ``creationData.sourceUri``, a managed image's
``blobUri``, and a disk's target ``localStorage.path``. The server reads and writes them as
the store owner, so a principal's token must not reach the owner's files through them (its
token-signing key, other stores, ``~/.ssh``): that would turn any Contributor into the
owner. Decision (Azure has no host files; its nearest rule is listKeys on the storage
account):

- the store owner's tokens are not limited (the file system is the owner's boundary);
- a directory principal's request may name a host file only at or under a directory given
  to ``imagestore serve --principal-import-dir DIR`` (repeatable; none by default), after
  resolving symbolic links and ``..``, and never inside the store itself;
- otherwise 403 ``AuthorizationFailed`` naming the principal, the field and the path,
  before anything is read or written. ``http(s)://`` blob URLs are not host files (their
  SAS or account key is their own credential).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import AuthorizationFailed
from ..gallery.capture import source_path

#: keys whose string value names a file to read (or, ``path`` under ``localStorage``, write)
_READ_KEYS = {"uri", "sourceuri", "bloburi"}


def named(body: Any, where: str = "", out: list[tuple[str, str]] | None = None,  # noqa: ANN401
          ) -> list[tuple[str, str]]:
    """(field, value) of every host file a body names."""
    out = [] if out is None else out
    if isinstance(body, dict):
        for k, v in body.items():
            field = f"{where}.{k}" if where else str(k)
            key = str(k).lower()
            if isinstance(v, str) and (key in _READ_KEYS or (
                    key == "path" and where.lower().endswith("localstorage"))):
                if not v.lower().startswith(("http://", "https://")):
                    out.append((field, v))
            elif isinstance(v, (dict, list)):
                named(v, field, out)
    elif isinstance(body, list):
        for i, v in enumerate(body):
            named(v, f"{where}[{i}]", out)
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check(body: Any, *, client: str, oid: str, store_root: str,  # noqa: ANN401
          import_dirs: tuple[str, ...]) -> None:
    """Raise AuthorizationFailed unless every host file ``body`` names is inside an import
    directory and outside the store."""
    allowed = [os.path.realpath(d) for d in import_dirs]
    store = os.path.realpath(store_root)
    for field, value in named(body):
        path = os.path.realpath(os.path.expanduser(source_path(value)))
        if _under(path, store) or not any(_under(path, d) for d in allowed):
            rule = (f"must be under the server's --principal-import-dir "
                    f"({', '.join(allowed)}) and outside the store" if allowed else
                    "are refused: the server has no --principal-import-dir")
            raise AuthorizationFailed(
                f"The client '{client}' with object id '{oid}' does not have authorization to "
                f"use the host file '{value}' ({field}): a principal's host files {rule}.",
                action="hostFiles", scope=value)
