"""The native module and its pure-Python twin: same results, same errors.

Every test runs against both backends (the ``acc`` fixture). The native module must be built
in this environment (``pip install -e .``): if it cannot be imported, its half of the suite
fails rather than skips. Property tests (hypothesis) check that the two agree with each other
and with a plain-Python reference on random buffers, block sizes and extent plans.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import imagestore.accel
from imagestore.accel import pure

BACKENDS = ["native", "pure"]
I64_MAX = (1 << 63) - 1


def load(name: str) -> ModuleType:
    if name == "pure":
        return pure
    try:
        return importlib.import_module("imagestore.accel._native")
    except ImportError as e:  # a missing build is a failure here, never a skip
        pytest.fail(f"native module not built ({e}); run `pip install -e .`")


@pytest.fixture(params=BACKENDS)
def acc(request) -> ModuleType:
    return load(request.param)


@pytest.fixture(scope="module")
def native() -> ModuleType:
    return load("native")


# -- references -----------------------------------------------------------------------------


def ref_runs(buf: bytes, block: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for s in range(0, len(buf), block):
        e = min(s + block, len(buf))
        if any(buf[s:e]):
            if runs and runs[-1][1] == s:
                runs[-1] = (runs[-1][0], e)
            else:
                runs.append((s, e))
    return runs


def ref_coalesce(extents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Covered points of small extents, regrouped into maximal intervals; touching ones merge."""
    points = sorted({p for off, n in extents for p in range(off, off + n)})
    out: list[tuple[int, int]] = []
    for p in points:
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


# -- strategies -----------------------------------------------------------------------------

BLOCKS = st.sampled_from([1, 2, 3, 7, 8, 64, 100, 512, 4096, 4097, 65536]) | st.integers(1, 10_000)


@st.composite
def sparse_buffers(draw) -> bytes:
    """Mostly-zero buffers of any length with non-zero bytes drawn at block boundaries
    (either side of a multiple of 8, 512, 4096) or anywhere."""
    n = draw(st.integers(0, 3 * 4096 + 17) | st.sampled_from([0, 1, 7, 8, 9, 4095, 4096, 4097]))
    buf = bytearray(n)
    if n:
        near = st.sampled_from([8, 256, 512, 4096]).flatmap(
            lambda b: st.integers(0, max(0, n // b)).flatmap(
                lambda k: st.sampled_from([k * b - 1, k * b, k * b + 1])
            )
        )
        for pos in draw(st.lists(near | st.integers(0, n - 1), max_size=8)):
            if 0 <= pos < n:
                buf[pos] = draw(st.integers(1, 255))
    return bytes(buf)


# -- is_zero / nonzero_runs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "buf",
    [b"", b"\0", b"\1", bytes(7), bytes(4096), bytes(4095) + b"\1", b"\1" + bytes(70000),
     bytes(1 << 20), bytes((1 << 20) - 1) + b"\x80", bytes(300) + b"\1" + bytes(300)],
    ids=lambda b: f"len{len(b)}",
)
def test_is_zero_cases(acc, buf):
    assert acc.is_zero(buf) is (not any(buf))


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "readonly-mv", "numpy2d",
                                  "numpy-u64", "slice"])
def test_is_zero_buffer_types(acc, kind):
    base = bytearray(3 * 4096 + 8)
    base[3 * 4096 + 3] = 9
    obj = {
        "bytes": bytes(base),
        "bytearray": base,
        "memoryview": memoryview(base),
        "readonly-mv": memoryview(bytes(base)),
        "numpy2d": np.frombuffer(bytes(base), dtype=np.uint8).reshape(-1, 8),
        "numpy-u64": np.frombuffer(bytes(base), dtype=np.uint64),
        "slice": memoryview(base)[1 : 3 * 4096 + 1],
    }[kind]
    expect = kind == "slice"
    assert acc.is_zero(obj) is expect
    runs = [] if kind == "slice" else [(3 * 4096, 3 * 4096 + 8)]
    assert acc.nonzero_runs(obj) == runs


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(buf=sparse_buffers())
@example(buf=b"")
@example(buf=b"\0")
@example(buf=b"\1")
def test_is_zero_agrees(native, buf):
    assert native.is_zero(buf) is pure.is_zero(buf) is (not any(buf))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(buf=sparse_buffers(), block=BLOCKS)
@example(buf=b"", block=4096)
@example(buf=b"\1", block=4096)
@example(buf=bytes(4096) + b"\1", block=4096)
@example(buf=b"\1" + bytes(4096), block=4096)
@example(buf=bytes(4095) + b"\1\1" + bytes(4095), block=4096)
def test_nonzero_runs_agree(native, buf, block):
    expect = ref_runs(buf, block)
    assert native.nonzero_runs(buf, block) == expect
    assert pure.nonzero_runs(buf, block) == expect
    assert native.nonzero_runs(buf, block=block) == expect


def test_nonzero_runs_default_block(acc):
    buf = bytearray(5 * 4096 + 10)
    buf[4096] = buf[2 * 4096 + 4095] = buf[5 * 4096 + 9] = 1
    assert acc.nonzero_runs(buf) == [(4096, 3 * 4096), (5 * 4096, 5 * 4096 + 10)]
    assert acc.nonzero_runs(bytes(buf), 1 << 40) == [(0, len(buf))]
    assert acc.nonzero_runs(bytes(1 << 20)) == []
    data = os.urandom(1 << 20)
    assert acc.nonzero_runs(data) == [(0, 1 << 20)]


def test_large_buffer_without_gil_is_consistent(acc):
    """A 64 MiB buffer (the GIL is released for it) with a byte in the last block."""
    buf = bytearray(64 << 20)
    assert acc.is_zero(buf)
    buf[-1] = 1
    assert not acc.is_zero(buf)
    assert acc.nonzero_runs(buf) == [((64 << 20) - 4096, 64 << 20)]


# -- coalesce -------------------------------------------------------------------------------


def test_coalesce_cases(acc):
    assert acc.coalesce([]) == []
    assert acc.coalesce([(0, 0)]) == []
    assert acc.coalesce([(10, 5), (0, 5), (5, 5)]) == [(0, 15)]  # touching ranges merge
    assert acc.coalesce([(0, 10), (2, 3)]) == [(0, 10)]
    assert acc.coalesce([(0, 1), (2, 1)]) == [(0, 1), (2, 1)]
    assert acc.coalesce(iter([(5, 1), (0, 2)])) == [(0, 2), (5, 1)]  # any iterable
    assert acc.coalesce([[1, 2], np.array([3, 1])]) == [(1, 3)]
    assert acc.coalesce([(I64_MAX - 1, 1), (0, I64_MAX - 1)]) == [(0, I64_MAX)]


extent_lists = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=40)


@settings(max_examples=400)
@given(extents=extent_lists)
def test_coalesce_agrees(native, extents):
    from imagestore.formats.base import coalesce as formats_coalesce

    expect = ref_coalesce(extents)
    assert native.coalesce(extents) == expect
    assert pure.coalesce(extents) == expect
    assert formats_coalesce(extents) == expect  # the formats layer's helper: same semantics


@settings(max_examples=300)
@given(extents=st.lists(st.tuples(st.integers(-(1 << 65), 1 << 65), st.integers(-(1 << 65), 1 << 65)), max_size=5))
def test_coalesce_same_errors(native, extents):
    """On any integers, even out of range, both backends give the same result or raise the
    same exception type."""
    outcomes = []
    for mod in (native, pure):
        try:
            outcomes.append(mod.coalesce(extents))
        except (ValueError, OverflowError) as e:
            outcomes.append(type(e))
    assert outcomes[0] == outcomes[1]


# -- copy_extents ---------------------------------------------------------------------------


def write_file(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def ref_copy(src: bytes, dst: bytes, plan) -> tuple[bytes, int]:
    out = bytearray(dst)
    total = 0
    for s, d, n in plan:
        piece = src[s : s + n]
        if not piece:
            continue
        if len(out) < d + len(piece):
            out.extend(bytes(d + len(piece) - len(out)))
        out[d : d + len(piece)] = piece
        total += len(piece)
    return bytes(out), total


@st.composite
def copy_plans(draw):
    """A source of random length and a plan whose destination ranges do not overlap (so the
    result does not depend on the order the workers run in); source ranges may overlap and
    may run past the end of the source file."""
    src_len = draw(st.integers(0, 50_000))
    n = draw(st.integers(0, 12))
    plan = []
    dst = draw(st.integers(0, 5000))
    for _ in range(n):
        length = draw(st.integers(0, 9000))
        s = draw(st.integers(0, src_len + 100))
        plan.append((s, dst, length))
        dst += length + draw(st.integers(0, 5000))
    draw(st.randoms()).shuffle(plan)
    return src_len, plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=copy_plans(), dst_len=st.integers(0, 30_000), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_copy_extents_agrees(native, tmp_path, case, dst_len, threads, seed):
    src_len, plan = case
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, src_len, dtype=np.uint8).tobytes()
    dst0 = rng.integers(0, 256, dst_len, dtype=np.uint8).tobytes()
    expect, total = ref_copy(src, dst0, plan)
    write_file(tmp_path / "src", src)
    for mod in (native, pure):
        dst_path = tmp_path / f"dst-{mod.__name__}"
        write_file(dst_path, dst0)
        sfd = os.open(tmp_path / "src", os.O_RDONLY)
        dfd = os.open(dst_path, os.O_RDWR)
        try:
            assert mod.copy_extents(sfd, dfd, plan, threads) == total
        finally:
            os.close(sfd)
            os.close(dfd)
        assert dst_path.read_bytes() == expect, mod.__name__


def open_pair(src_path, dst_path):
    return os.open(src_path, os.O_RDONLY), os.open(dst_path, os.O_RDWR | os.O_CREAT, 0o600)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_copy_extents_large_split(acc, tmp_path, threads):
    """Extents bigger than a work piece (8 MiB) are split between the workers."""
    src = os.urandom(20 << 20) + bytes(1 << 20) + os.urandom(3 << 20)
    write_file(tmp_path / "src", src)
    plan = [(0, 0, 20 << 20), (21 << 20, 30 << 20, 3 << 20), (100, 40 << 20, 9 << 20)]
    sfd, dfd = open_pair(tmp_path / "src", tmp_path / "dst")
    try:
        assert acc.copy_extents(sfd, dfd, plan, threads=threads) == (32 << 20)
    finally:
        os.close(sfd)
        os.close(dfd)
    expect, _ = ref_copy(src, b"", plan)
    assert (tmp_path / "dst").read_bytes() == expect


def test_copy_extents_fallback_across_filesystems(acc, tmp_path):
    """ext4 -> tmpfs: copy_file_range answers EXDEV, the pread/pwrite loop takes over."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than tmp_path's")
    src = os.urandom((3 << 20) + 5)
    write_file(tmp_path / "src", src)
    dst_path = f"/dev/shm/imagestore-test-{os.getpid()}-{acc.__name__}"
    sfd, dfd = open_pair(tmp_path / "src", dst_path)
    try:
        plan = [(0, 0, 1 << 20), (1 << 20, (1 << 20) + 7, (2 << 20) + 5), (10, 5 << 20, 100)]
        assert acc.copy_extents(sfd, dfd, plan, threads=2) == (3 << 20) + 105
        with open(dst_path, "rb") as f:
            assert f.read() == ref_copy(src, b"", plan)[0]
    finally:
        os.close(sfd)
        os.close(dfd)
        os.unlink(dst_path)


def test_copy_extents_empty_plan_and_short_source(acc, tmp_path):
    write_file(tmp_path / "src", b"abc")
    sfd, dfd = open_pair(tmp_path / "src", tmp_path / "dst")
    try:
        assert acc.copy_extents(sfd, dfd, []) == 0
        assert acc.copy_extents(sfd, dfd, [(0, 0, 0)]) == 0
        assert acc.copy_extents(sfd, dfd, [(1, 10, 100), (50, 0, 10)]) == 2
    finally:
        os.close(sfd)
        os.close(dfd)
    assert (tmp_path / "dst").read_bytes() == bytes(10) + b"bc"


def test_copy_extents_os_errors(acc, tmp_path):
    write_file(tmp_path / "src", b"x" * 100)
    sfd = os.open(tmp_path / "src", os.O_RDONLY)
    try:
        closed = os.open(tmp_path / "src", os.O_RDONLY)
        os.close(closed)
        with pytest.raises(OSError) as ei:
            acc.copy_extents(sfd, closed, [(0, 0, 10)])
        assert ei.value.errno == errno.EBADF
        with pytest.raises(OSError) as ei:  # destination open read-only
            acc.copy_extents(sfd, sfd, [(0, 200, 10)], threads=2)
        assert ei.value.errno == errno.EBADF
        r, w = os.pipe()
        try:
            with pytest.raises(OSError):  # a pipe has no offsets
                acc.copy_extents(r, sfd, [(0, 0, 10)])
        finally:
            os.close(r)
            os.close(w)
    finally:
        os.close(sfd)


# -- bad arguments: Python exceptions, never a crash, the same in both backends -------------

BIG = 1 << 64
BAD_CALLS = [
    ("is_zero", (None,), {}, TypeError),
    ("is_zero", (12,), {}, TypeError),
    ("is_zero", ("text",), {}, TypeError),
    ("is_zero", (memoryview(bytes(16))[::2],), {}, BufferError),
    ("nonzero_runs", (b"ab", 0), {}, ValueError),
    ("nonzero_runs", (b"", 0), {}, ValueError),
    ("nonzero_runs", (b"ab", -1), {}, ValueError),
    ("nonzero_runs", (b"ab", BIG), {}, OverflowError),
    ("nonzero_runs", (b"ab", 1.5), {}, TypeError),
    ("nonzero_runs", (object(),), {}, TypeError),
    ("coalesce", (5,), {}, TypeError),
    ("coalesce", ([(1, 2, 3)],), {}, TypeError),
    ("coalesce", ([1],), {}, TypeError),
    ("coalesce", (["ab"],), {}, TypeError),
    ("coalesce", ([(-1, 2)],), {}, ValueError),
    ("coalesce", ([(1, -2)],), {}, ValueError),
    ("coalesce", ([(BIG, 1)],), {}, OverflowError),
    ("coalesce", ([(I64_MAX, 1)],), {}, OverflowError),
    ("coalesce", ([(1.0, 1)],), {}, TypeError),
    ("copy_extents", (-1, 1, []), {}, ValueError),
    ("copy_extents", (0, -1, []), {}, ValueError),
    ("copy_extents", (1 << 40, 1, []), {}, OverflowError),
    ("copy_extents", (0, 1, None), {}, TypeError),
    ("copy_extents", (0, 1, [(0, 0)]), {}, TypeError),
    ("copy_extents", (0, 1, [(-5, 0, 1)]), {}, ValueError),
    ("copy_extents", (0, 1, [(0, -5, 1)]), {}, ValueError),
    ("copy_extents", (0, 1, [(0, 0, -1)]), {}, ValueError),
    ("copy_extents", (0, 1, [(I64_MAX, 0, 1)]), {}, OverflowError),
    ("copy_extents", (0, 1, [(0, I64_MAX - 3, 4)]), {}, OverflowError),
    ("copy_extents", (0, 1, [(0, 0, BIG)]), {}, OverflowError),
    ("copy_extents", (0, 1, []), {"threads": 0}, ValueError),
    ("copy_extents", (0, 1, []), {"threads": -2}, ValueError),
    ("copy_extents", (0, 1, []), {"threads": 5000}, ValueError),
    ("copy_extents", (0, 1, []), {"threads": "2"}, TypeError),
    ("reflink_range", (-1, 0, 1, 0, 4096), {}, ValueError),
    ("reflink_range", (0, -1, 1, 0, 4096), {}, ValueError),
    ("reflink_range", (0, 0, -1, 0, 4096), {}, ValueError),
    ("reflink_range", (0, 0, 1, -1, 4096), {}, ValueError),
    ("reflink_range", (0, 0, 1, 0, -4096), {}, ValueError),
    ("reflink_range", (0, 0, 1, 0, 0), {}, ValueError),
    ("reflink_range", (0, I64_MAX, 1, 0, 4096), {}, OverflowError),
    ("reflink_range", (0, 0, 1, BIG, 4096), {}, OverflowError),
    ("reflink_range", (0, 0, 1, 0), {}, TypeError),
]


@pytest.mark.parametrize("fn,args,kwargs,exc", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_arguments_raise(acc, fn, args, kwargs, exc):
    with pytest.raises(exc):
        getattr(acc, fn)(*args, **kwargs)


INVALID = st.integers(-(1 << 65), -1) | st.integers(I64_MAX + 1, 1 << 65)
ANY_INT = st.integers(-(1 << 65), 1 << 65) | st.integers(-3, 1 << 20)


@settings(max_examples=300)
@given(
    ints=st.lists(ANY_INT, min_size=5, max_size=5),
    poison=st.tuples(st.integers(0, 4), INVALID, st.integers(0, 2), INVALID),
    plan=st.lists(st.lists(ANY_INT, min_size=3, max_size=3), max_size=3),
    block=ANY_INT,
)
def test_bad_numbers_same_exception(native, ints, poison, plan, block):
    """Random numbers, at least one of them out of range before any I/O could start (so no
    real descriptor is ever touched): both backends raise the same exception type."""
    r_args = list(ints)
    r_args[poison[0]] = poison[1]
    c_args = list(ints[:3])
    c_args[poison[2]] = poison[3]
    outcomes = []
    for mod in (native, pure):
        got = []
        for fn, args, kwargs in (
            (mod.reflink_range, r_args, {}),
            (mod.copy_extents, (c_args[0], c_args[1], plan), {"threads": c_args[2]}),
            (mod.nonzero_runs, (b"abc", block), {}),
        ):
            try:
                got.append(fn(*args, **kwargs))
            except (ValueError, OverflowError) as e:
                got.append(type(e).__name__)
        outcomes.append(got)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] in ("ValueError", "OverflowError")
    assert outcomes[0][1] in ("ValueError", "OverflowError")


# -- reflink_range where reflinks are not supported -----------------------------------------


def test_reflink_unsupported_or_unaligned(acc, tmp_path):
    """On this filesystem (ext4 for tmp_path, usually) FICLONERANGE is refused: False. An
    unaligned range is refused (EINVAL) even where reflinks work: False too."""
    write_file(tmp_path / "src", os.urandom(8192))
    sfd, dfd = open_pair(tmp_path / "src", tmp_path / "dst")
    try:
        assert acc.reflink_range(sfd, 1, dfd, 0, 4096) is False
        assert isinstance(acc.reflink_range(sfd, 0, dfd, 0, 8192), bool)
        closed = os.open(tmp_path / "src", os.O_RDONLY)
        os.close(closed)
        with pytest.raises(OSError) as ei:
            acc.reflink_range(closed, 0, dfd, 0, 4096)
        assert ei.value.errno == errno.EBADF
    finally:
        os.close(sfd)
        os.close(dfd)


# -- backend selection ----------------------------------------------------------------------


def test_same_functions_and_docs(native):
    names = ["is_zero", "nonzero_runs", "coalesce", "copy_extents", "reflink_range"]
    for name in names:
        assert callable(getattr(native, name)) and getattr(native, name).__doc__
        assert callable(getattr(pure, name)) and getattr(pure, name).__doc__
        sig_n = inspect.signature(getattr(native, name))
        sig_p = inspect.signature(getattr(pure, name))
        assert [(p.name, p.kind, p.default) for p in sig_n.parameters.values()] == [
            (p.name, p.kind, p.default) for p in sig_p.parameters.values()
        ], name
    assert set(imagestore.accel.__all__) == {"BACKEND", *names}


def test_default_backend_is_native():
    if os.environ.get("IMAGESTORE_PUREPYTHON", "") not in ("", "0"):
        assert imagestore.accel.BACKEND == "pure"
    else:
        assert imagestore.accel.BACKEND == "native"
        assert imagestore.accel.is_zero is load("native").is_zero


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "IMAGESTORE_PUREPYTHON"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, check=True)


def test_env_forces_pure():
    r = _python("import imagestore.accel as a; print(a.BACKEND)", IMAGESTORE_PUREPYTHON="1")
    assert r.stdout.strip() == "pure"
    assert "RuntimeWarning" not in r.stderr
    r = _python("import imagestore.accel as a; print(a.BACKEND)", IMAGESTORE_PUREPYTHON="0")
    assert r.stdout.strip() == "native"
    r = _python("import imagestore.accel as a; print(a.BACKEND)")
    assert r.stdout.strip() == "native"


def test_missing_extension_falls_back_with_one_warning():
    """As after an install without a compiler: the extension can't be imported."""
    code = (
        "import sys, warnings\n"
        "sys.modules['imagestore.accel._native'] = None\n"  # makes the import fail
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import imagestore.accel as a\n"
        "    import importlib; importlib.import_module('imagestore.accel')\n"
        "print(a.BACKEND, len([x for x in w if issubclass(x.category, RuntimeWarning)]))\n"
        "print(a.nonzero_runs(bytes(4096) + b'x'), a.is_zero(bytes(10)))\n"
    )
    r = _python(code)
    assert r.stdout.split("\n")[:2] == ["pure 1", "[(4096, 4097)] True"]
