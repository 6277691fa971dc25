"""Fixtures for the REST API tests: a real `imagestore serve` in a subprocess on loopback,
tokens from the store, and an httpx client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest

from imagestore.gallery import ids
from imagestore.identity import tokens

SUB = f"/subscriptions/{ids.SUBSCRIPTION}"
GV = "2026-03-03"


@dataclass
class Server:
    store: str
    url: str
    proc: subprocess.Popen
    port: int

    def token(self, who: str = "tester", **kw) -> str:
        return tokens.issue(self.store, who, **kw)

    def client(self, token: str | None = "default") -> httpx.Client:
        headers = {}
        if token == "default":
            token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_idle(self, timeout: float = 60) -> None:
        """Until no worker holds the store's lease (work of earlier tests is done)."""
        from imagestore.gallery.repository import Repository
        from imagestore.worker import lease_holder

        repo = Repository(os.path.join(self.store, "gallery.sqlite"))
        try:
            deadline = time.monotonic() + timeout
            while lease_holder(repo) is not None or repo.pending_jobs():
                assert time.monotonic() < deadline, "the store's worker never finished"
                time.sleep(0.05)
        finally:
            repo.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_server(store: str, *args: str, port: int = 0, env: dict | None = None) -> Server:
    """Start `imagestore serve` and wait until it answers."""
    e = dict(os.environ, **(env or {}))
    p = subprocess.Popen(
        [sys.executable, "-m", "imagestore.cli.main", "--store", store, "serve", "--port",
         str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    line = p.stdout.readline()
    if not line.startswith("imagestore serve: "):
        p.kill()
        raise AssertionError(f"server did not start: {line!r} {p.stderr.read()}")
    url = line.split()[2]
    p.stdout.readline()  # subscription line
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or p.poll() is not None:
                p.kill()
                raise AssertionError(f"server at {url} never answered: {p.stderr.read()}") from None
            time.sleep(0.05)
    return Server(store, url, p, int(url.rsplit(":", 1)[1]))


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server (page size 2, Retry-After 1) shared by the tests that do not stop it; each
    test works in its own resource group."""
    s = start_server(str(tmp_path_factory.mktemp("shared") / "store"), "--page-size", "2")
    yield s
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


MiB = 1 << 20


def make_source(tmp, name: str, fmt: str, byte: int, size_mib: int = 6) -> str:
    """A small VHD (``vpc``, ``vpc-fixed``) or VHDX file with two patterned runs."""
    from tests.helpers import need

    raw = tmp / f"{name}.raw"
    with open(raw, "wb") as f:
        f.truncate(size_mib * MiB)
        for off in (0, 3 * MiB + 12345):
            f.seek(off)
            f.write(bytes([byte]) * 200000)
    out = tmp / f"{name}.{'vhd' if fmt.startswith('vpc') else 'vhdx'}"
    opts = {"vpc": [], "vpc-fixed": ["-o", "subformat=fixed,force_size=on"], "vhdx": []}[fmt]
    subprocess.run([need("qemu-img"), "convert", "-f", "raw", "-O", fmt.split("-")[0], *opts,
                    str(raw), str(out)], check=True)
    raw.unlink()
    return str(out)


@pytest.fixture(scope="module")
def mod_server(tmp_path_factory):
    """One server for a module (page size 2, so lists of 3 page)."""
    s = start_server(str(tmp_path_factory.mktemp("api") / "store"), "--page-size", "2",
                     "--retry-after", "0", "--principal-import-dir",
                     str(tmp_path_factory.getbasetemp()))  # the tests' principals' sources
    yield s
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()
