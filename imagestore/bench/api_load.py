"""``imagestore bench api``: a bounded load test of ``imagestore serve`` on loopback.

A server runs in its own process over a fresh store seeded with a gallery, definitions and
versions. ``clients`` threads, each with its own HTTP connection, send for ``duration``
seconds a mix of reads (GET of versions with and without ``$expand=ReplicationStatus``,
definitions, galleries; lists of definitions and versions) and a few writes (each client
creates a new image definition with its first request and every ``write_every`` after; a
few image versions are created through the long-running PUT, the first one early). Recorded: requests/s, p50/p99 latency per kind and
overall, every status code, and at the end whether every acknowledged write is there (a
write answered 2xx and then missing is *lost*). The server process's user and system CPU
seconds come from ``/proc``. 5xx and lost writes must be zero.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..gallery import ids

GV = "2026-03-03"
MiB = 1 << 20


@dataclass
class LoadResult:
    """What one run measured."""

    clients: int
    duration: float
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    writes_acked: list[str] = field(default_factory=list)
    writes_lost: list[str] = field(default_factory=list)
    versions_acked: list[str] = field(default_factory=list)
    versions_failed: list[str] = field(default_factory=list)
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    load_start: tuple[float, ...] = ()
    load_end: tuple[float, ...] = ()
    errors: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def summary(self) -> dict:
        allv = sorted(x for v in self.latencies.values() for x in v)
        out = {
            "clients": self.clients, "seconds": round(self.duration, 2),
            "requests": self.requests,
            "requestsPerSecond": round(self.requests / self.duration, 1) if self.duration else 0,
            "p50Ms": pct(allv, 50), "p99Ms": pct(allv, 99),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "serverErrors": self.server_errors,
            "writesAcked": len(self.writes_acked), "writesLost": len(self.writes_lost),
            "versionsCreated": len(self.versions_acked),
            "versionsFailed": len(self.versions_failed),
            "serverCpuUserS": round(self.cpu_user, 2), "serverCpuSysS": round(self.cpu_sys, 2),
            "loadAvgStart": list(self.load_start), "loadAvgEnd": list(self.load_end),
            "byKind": {k: {"n": len(v), "p50Ms": pct(sorted(v), 50), "p99Ms": pct(sorted(v), 99)}
                       for k, v in sorted(self.latencies.items())},
        }
        if self.errors:
            out["clientErrors"] = self.errors[:5]
        return out


def pct(sorted_values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) in milliseconds."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return round(sorted_values[k] * 1000, 2)


def _cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its waited-for children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[13])) / tick, (int(fields[12]) + int(fields[14])) / tick


def _source_disk(path: str, size: int = 4 * MiB) -> str:
    """A small dynamic VHD with data, written by imagestore's own writer."""
    from ..formats import new_disk_file

    with new_disk_file(path, size, "vhd") as w:
        w.write(0, bytes(range(256)) * 4096)
        w.write(2 * MiB, b"\x5a" * 65536)
    return path


def start_server(store: str, *args: str) -> tuple[subprocess.Popen, str]:
    """``imagestore serve --port 0`` in a child process; its URL."""
    import httpx

    p = subprocess.Popen([sys.executable, "-m", "imagestore.cli.main", "--store", store,
                          "serve", "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("imagestore serve: "):
        p.kill()
        raise RuntimeError(f"server did not start: {line!r} {p.stderr.read()}")
    url = line.split()[2]
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/", timeout=2)
            return p, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                p.kill()
                raise RuntimeError(f"server at {url} never answered") from None
            time.sleep(0.05)


def run_load(url: str, token: str, workdir: str, *, clients: int = 16, duration: float = 25.0,
             write_every: int = 40, versions: int = 3, seed: int = 1) -> LoadResult:
    """Drive the server at ``url`` (a fresh store) and check the writes at the end."""
    import httpx

    rg = "bench"
    base = f"/subscriptions/{ids.SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Compute"
    gal = f"{base}/galleries/load"
    res = LoadResult(clients, duration)
    lock = threading.Lock()
    hdr = {"Authorization": f"Bearer {token}"}
    src = _source_disk(os.path.join(workdir, "src.vhd"))

    with httpx.Client(base_url=url, headers=hdr, timeout=60) as c:
        c.put(f"{gal}?api-version={GV}", json={"location": "local"}).raise_for_status()
        for i in range(4):
            c.put(f"{gal}/images/seed{i}?api-version={GV}", json={
                "location": "local", "properties": {
                    "osType": "Linux", "osState": "Generalized",
                    "identifier": {"publisher": "P", "offer": "O", "sku": f"seed{i}"}}}
                  ).raise_for_status()
        r = c.put(f"{gal}/images/seed0/versions/1.0.0?api-version={GV}", json={
            "location": "local",
            "properties": {"storageProfile": {"osDiskImage": {"source": {"uri": src}}}}})
        r.raise_for_status()
        _wait_op(c, r.headers.get("Azure-AsyncOperation"))

    reads = [
        ("getVersion", f"{gal}/images/seed0/versions/1.0.0?api-version={GV}"),
        ("getVersionExpand", f"{gal}/images/seed0/versions/1.0.0?api-version={GV}&$expand=ReplicationStatus"),
        ("getDefinition", f"{gal}/images/seed1?api-version={GV}"),
        ("getGallery", f"{gal}?api-version={GV}"),
        ("listDefinitions", f"{gal}/images?api-version={GV}"),
        ("listVersions", f"{gal}/images/seed0/versions?api-version={GV}"),
        ("listGalleries", f"/subscriptions/{ids.SUBSCRIPTION}/providers/Microsoft.Compute/galleries?api-version={GV}"),
    ]
    stop_at = time.monotonic() + duration
    version_slots = list(range(versions))

    def record(kind: str, t0: float, status: int) -> None:
        with lock:
            res.requests += 1
            res.statuses[status] += 1
            res.latencies[kind].append(time.perf_counter() - t0)

    def client(n: int) -> None:
        rnd = random.Random(seed * 1000 + n)
        with httpx.Client(base_url=url, headers=hdr, timeout=60) as c:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                try:
                    if i % write_every == 1:  # the first request of each client too
                        name = f"c{n}-d{i}"
                        t0 = time.perf_counter()
                        r = c.put(f"{gal}/images/{name}?api-version={GV}", json={
                            "location": "local", "properties": {
                                "osType": "Linux", "osState": "Generalized",
                                "identifier": {"publisher": "P", "offer": f"c{n}",
                                               "sku": f"d{i}"}}})
                        record("putDefinition", t0, r.status_code)
                        if r.status_code in (200, 201):
                            with lock:
                                res.writes_acked.append(f"{gal}/images/{name}")
                        continue
                    if n == 0 and i % (write_every // 2 or 1) == 2:  # early, then spaced
                        with lock:
                            slot = version_slots.pop() if version_slots else None
                        if slot is not None:
                            v = f"2.0.{slot}"
                            t0 = time.perf_counter()
                            r = c.put(f"{gal}/images/seed0/versions/{v}?api-version={GV}", json={
                                "location": "local", "properties": {"storageProfile": {
                                    "osDiskImage": {"source": {"uri": src}}}}})
                            record("putVersion", t0, r.status_code)
                            if r.status_code == 201:
                                with lock:
                                    res.versions_acked.append(
                                        (f"{gal}/images/seed0/versions/{v}",
                                         r.headers.get("Azure-AsyncOperation")))
                            continue
                    kind, path = rnd.choice(reads)
                    t0 = time.perf_counter()
                    r = c.get(path)
                    record(kind, t0, r.status_code)
                except httpx.HTTPError as e:
                    with lock:
                        res.errors.append(f"{type(e).__name__}: {e}")
                        res.statuses[599] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.duration = time.monotonic() - t_start

    with httpx.Client(base_url=url, headers=hdr, timeout=60) as c:
        for rid in res.writes_acked:
            if c.get(f"{rid}?api-version={GV}").status_code != 200:
                res.writes_lost.append(rid)
        acked, res.versions_acked = res.versions_acked, []
        for rid, op in acked:
            status = _wait_op(c, op)
            got = c.get(f"{rid}?api-version={GV}")
            if got.status_code != 200:
                res.writes_lost.append(rid)
            elif status != "Succeeded":
                res.versions_failed.append(rid)
            res.versions_acked.append(rid)
    return res


def _wait_op(c, op_url: str | None, timeout: float = 120) -> str:  # noqa: ANN001 - httpx.Client
    if not op_url:
        return "Succeeded"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.get(op_url).json().get("status")
        if st in ("Succeeded", "Failed", "Canceled"):
            return st
        time.sleep(0.1)
    return "TimedOut"


def bench_api(*, clients: int = 16, duration: float = 25.0, page_size: int = 100,
              workdir: str | None = None) -> dict:
    """Start a server on a fresh store, run the load, stop the server; the summary."""
    from ..identity import tokens

    wd = tempfile.mkdtemp(prefix="imagestore-bench-api-", dir=workdir)
    store = os.path.join(wd, "store")
    proc, url = start_server(store, "--page-size", str(page_size))
    try:
        token = tokens.issue(store, "bench", expires_in=3600)
        load0 = os.getloadavg()
        u0, s0 = _cpu(proc.pid)
        res = run_load(url, token, wd, clients=clients, duration=duration)
        u1, s1 = _cpu(proc.pid)
        res.cpu_user, res.cpu_sys = u1 - u0, s1 - s0
        res.load_start, res.load_end = tuple(round(x, 2) for x in load0), tuple(
            round(x, 2) for x in os.getloadavg())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = res.summary()
    out["serverExit"] = proc.returncode
    out["workdir"] = wd
    return out
