"""reflink_range (FICLONERANGE) on a filesystem that supports it, with both backends.

The test makes one: a 512 MiB XFS image with reflink=1, loop-mounted for the module. That
needs root and loop devices; without them the tests skip and say which was missing. A cloned
file must read back the same bytes and its extents must be shared with the source
(``filefrag -v`` flags them ``shared``) while the free space barely moves.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

from imagestore.accel import pure
from tests.helpers import free_bytes, shared_extents

MiB = 1 << 20


def load(name: str) -> ModuleType:
    if name == "pure":
        return pure
    try:
        return importlib.import_module("imagestore.accel._native")
    except ImportError as e:  # a missing build is a failure here, never a skip
        pytest.fail(f"native module not built ({e}); run `pip install -e .`")


@pytest.fixture(params=["native", "pure"])
def acc(request) -> ModuleType:
    return load(request.param)


def make_source(path: str, size: int) -> bytes:
    data = os.urandom(size)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return data


def test_reflink_shares_extents(acc, xfs):
    src_path = os.path.join(xfs, f"src-{acc.__name__}")
    dst_path = os.path.join(xfs, f"dst-{acc.__name__}")
    data = make_source(src_path, 8 * MiB)
    assert shared_extents(src_path)[1] == 0
    before = free_bytes(xfs)
    sfd = os.open(src_path, os.O_RDONLY)
    dfd = os.open(dst_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # whole file, then a second copy of the middle 4 MiB further on in the destination
        assert acc.reflink_range(sfd, 0, dfd, 0, 8 * MiB) is True
        assert acc.reflink_range(sfd, 2 * MiB, dfd, 16 * MiB, 4 * MiB) is True
        os.fsync(dfd)
    finally:
        os.close(sfd)
        os.close(dfd)
    after = free_bytes(xfs)
    with open(dst_path, "rb") as f:
        got = f.read()
    assert got[: 8 * MiB] == data
    assert got[8 * MiB : 16 * MiB] == bytes(8 * MiB)  # a hole
    assert got[16 * MiB :] == data[2 * MiB : 6 * MiB]
    n, shared = shared_extents(dst_path)
    assert n >= 1 and shared == n, f"{shared} of {n} extents shared"
    assert shared_extents(src_path)[1] >= 1
    # 12 MiB of new file content cost (almost) no space: only metadata
    assert before - after < 1 * MiB, (before, after)


def test_reflink_refused_cases(acc, xfs):
    src_path = os.path.join(xfs, f"src2-{acc.__name__}")
    make_source(src_path, 1 * MiB)
    sfd = os.open(src_path, os.O_RDONLY)
    dfd = os.open(os.path.join(xfs, f"dst2-{acc.__name__}"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert acc.reflink_range(sfd, 1, dfd, 0, 4096) is False  # unaligned: EINVAL
        assert acc.reflink_range(sfd, 0, dfd, 512, 4096) is False
        with pytest.raises(OSError):  # destination opened read-only: EBADF
            acc.reflink_range(sfd, 0, sfd, 0, 4096)
    finally:
        os.close(sfd)
        os.close(dfd)


def test_copy_extents_on_xfs_shares_aligned_extents(acc, xfs):
    """copy_extents uses copy_file_range, which XFS answers with a remap for aligned ranges:
    disk creation from uncompressed data shares extents even without reflink_range."""
    src_path = os.path.join(xfs, f"src3-{acc.__name__}")
    dst_path = os.path.join(xfs, f"dst3-{acc.__name__}")
    data = make_source(src_path, 16 * MiB)
    sfd = os.open(src_path, os.O_RDONLY)
    dfd = os.open(dst_path, os.O_RDWR | os.O_CREAT, 0o600)
    plan = [(0, 0, 4 * MiB), (8 * MiB, 32 * MiB, 8 * MiB)]
    try:
        assert acc.copy_extents(sfd, dfd, plan, threads=2) == 12 * MiB
        os.fsync(dfd)
    finally:
        os.close(sfd)
        os.close(dfd)
    with open(dst_path, "rb") as f:
        got = f.read()
    assert got[: 4 * MiB] == data[: 4 * MiB]
    assert got[32 * MiB :] == data[8 * MiB :]
    n, shared = shared_extents(dst_path)
    assert n >= 2 and shared == n, f"{shared} of {n} extents shared"
