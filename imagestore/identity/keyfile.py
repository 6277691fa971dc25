"""Secret keys kept in the store (``<store>/identity/NAME``, mode 0600, directory 0700).

A key is created on first use atomically: random bytes written to a temp file, fsynced, then
published with ``link()``, so that two processes creating it at once agree on one key (the
loser reads the winner's). A key file of the wrong length is damage, never replaced silently.
"""

from __future__ import annotations

import errno
import os
import secrets
from typing import Any

from ..errors import IntegrityError, NotFound, from_oserror
from ..fsutil import fsync_dir, remove_stale_builds, temp_beside

KEY_DIR = "identity"


def store_root(store: Any) -> str:
    """A store root from a :class:`~imagestore.home.Home` or a path (a ``pathlib.Path``'s
    own ``root`` attribute is its anchor, "/", so paths are told apart first)."""
    if isinstance(store, str | os.PathLike):
        return os.fspath(store)
    return os.fspath(store.root)


def key_path(store: Any, name: str) -> str:
    """Where the store keeps key ``name``."""
    return os.path.join(store_root(store), KEY_DIR, name)


def _read(path: str, nbytes: int) -> bytes:
    with open(path, "rb") as f:
        key = f.read(nbytes + 1)
    if len(key) != nbytes:
        raise IntegrityError(f"{path}: key file is damaged ({len(key)} bytes, expected {nbytes})")
    return key


def load(store: Any, name: str, nbytes: int = 32, *, create: bool = True) -> bytes:
    """Key ``name`` of the store, created on first use when ``create``."""
    path = key_path(store, name)
    try:
        return _read(path, nbytes)
    except FileNotFoundError:
        if not create:
            raise NotFound(f"{path}: no such key (nothing was signed with it yet)") from None
    except OSError as e:
        raise from_oserror(e, path) from None
    try:
        create_new(path, nbytes)
        return _read(path, nbytes)
    except OSError as e:
        raise from_oserror(e, path) from None


def create_new(path: str, nbytes: int) -> None:
    """Publish ``nbytes`` random bytes at ``path`` unless a key is there already: temp file
    (0600, in a 0700 directory), fsync, ``link()`` (which fails if another process published
    first: the caller then reads the winner's), directory fsync. A temp file a killed
    creation left is removed first. OSError passes through."""
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o700, exist_ok=True)
    # temp names carry host and pid: a killed creation's temp file (an unpublished key) is
    # removed by the next creation of the same key
    remove_stale_builds(d, os.path.basename(path))
    tmp = temp_beside(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            if os.write(fd, secrets.token_bytes(nbytes)) != nbytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(tmp)  # a full disk (or any failure): nothing unpublished stays behind
        raise
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    fsync_dir(d)
