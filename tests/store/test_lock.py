"""StoreLock across processes: real flock(2) held by a child process. Shared locks coexist,
exclusive excludes both ways, a timeout raises StoreBusy (exit 9) after waiting that long, and
a lock is free again the moment its holder exits or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from imagestore.errors import StoreBusy
from imagestore.store.lock import StoreLock

#: the child takes the lock with the same class, says so, and holds it until stdin closes;
#: exit 9 and "busy" when it cannot get it in time
CHILD = textwrap.dedent("""
    import sys
    from imagestore.errors import StoreBusy
    from imagestore.store.lock import StoreLock
    try:
        with StoreLock(sys.argv[1], exclusive=sys.argv[2] == "ex", timeout=float(sys.argv[3])):
            print("locked", flush=True)
            sys.stdin.read()
    except StoreBusy:
        print("busy", flush=True)
        sys.exit(9)
    print("released", flush=True)
""")


class Holder:
    def __init__(self, path: str, mode: str, timeout: float = 5.0) -> None:
        self.p = subprocess.Popen([sys.executable, "-c", CHILD, path, mode, str(timeout)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def wait_locked(self) -> None:
        assert self.p.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.p.stdin.close()
        assert self.p.stdout.readline().strip() == "released"
        assert self.p.wait(10) == 0

    def kill(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def close(self) -> None:
        if self.p.poll() is None:
            self.kill()
        for f in (self.p.stdin, self.p.stdout):
            if f and not f.closed:
                f.close()


@pytest.fixture
def holders():
    made: list[Holder] = []

    def start(path: str, mode: str, timeout: float = 5.0) -> Holder:
        h = Holder(path, mode, timeout)
        made.append(h)
        return h

    yield start
    for h in made:
        h.close()


@pytest.fixture
def lock_path(tmp_path) -> str:
    return str(tmp_path / "lock")


def timed(path: str, exclusive: bool, timeout: float) -> float:
    t0 = time.monotonic()
    with StoreLock(path, exclusive=exclusive, timeout=timeout) as lk:
        assert lk.fd >= 0
    assert lk.fd == -1
    return time.monotonic() - t0


def test_shared_locks_coexist_across_processes(lock_path, holders):
    h = holders(lock_path, "sh")
    h.wait_locked()
    assert timed(lock_path, exclusive=False, timeout=0.05) < 0.05 + 0.5
    h2 = holders(lock_path, "sh", 1.0)  # a second process too
    h2.wait_locked()
    h.release()
    h2.release()


@pytest.mark.parametrize("held, wanted", [("sh", True), ("ex", False), ("ex", True)])
def test_exclusive_excludes_until_the_timeout_then_store_busy(lock_path, holders, held, wanted):
    h = holders(lock_path, held)
    h.wait_locked()
    t0 = time.monotonic()
    with pytest.raises(StoreBusy) as e:
        with StoreLock(lock_path, exclusive=wanted, timeout=0.3):
            pytest.fail("got a lock another process holds exclusively")
    waited = time.monotonic() - t0
    assert 0.3 <= waited < 3
    what = "exclusive" if wanted else "shared"
    assert e.value.exit_code == 9 and lock_path in e.value.message
    assert f"the {what} store lock within 0.3 s" in e.value.message
    h.release()
    timed(lock_path, exclusive=True, timeout=0.05)  # free again once released


def test_a_waiter_gets_the_lock_as_soon_as_the_holder_releases(lock_path, holders):
    h = holders(lock_path, "ex")
    h.wait_locked()
    import threading

    threading.Timer(0.4, h.p.stdin.close).start()
    waited = timed(lock_path, exclusive=True, timeout=10)
    assert 0.35 <= waited < 5  # it waited for the release, not for its timeout


def test_a_killed_holder_leaves_no_lock_behind(lock_path, holders):
    h = holders(lock_path, "ex")
    h.wait_locked()
    with pytest.raises(StoreBusy):
        timed(lock_path, exclusive=False, timeout=0.1)
    h.kill()  # SIGKILL: no cleanup code runs; the kernel drops the flock
    assert timed(lock_path, exclusive=True, timeout=2) < 2


def test_our_own_lock_blocks_another_process(lock_path, holders):
    with StoreLock(lock_path, exclusive=True, timeout=1):
        h = holders(lock_path, "sh", 0.2)
        assert h.p.wait(10) == 9
        assert h.p.stdout.read() == "busy\n"  # never said "locked"
    h2 = holders(lock_path, "sh", 1)
    h2.wait_locked()
    h2.release()


def test_the_lock_file_is_created_and_kept(lock_path):
    assert not os.path.exists(lock_path)
    timed(lock_path, exclusive=False, timeout=1)
    assert os.path.isfile(lock_path)
    timed(lock_path, exclusive=True, timeout=1)  # reusable, nothing left held
