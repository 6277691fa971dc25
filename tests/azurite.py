"""Azurite (Microsoft's Azure Storage emulator) for the tests, and a byte-counting proxy.

``Azurite`` starts ``azurite-blob --skipApiVersionCheck --loose`` on a free port with a temp
location. ``CountingProxy`` is a plain TCP relay in front of it that counts the bytes each
direction carries: "bytes Azurite received" is measured on the wire, independently of
imagestore's own counters.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (not a secret)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: a second account (same key), for zone-redundant placement across accounts
ACCOUNT2 = "imagestorezrs2"


def in_ci() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("IMAGESTORE_CI"))


def find_azurite() -> str | None:
    env = os.environ.get("IMAGESTORE_AZURITE")
    if env:
        return env
    cand = os.path.join(ROOT, "build", "azurite", "bin", "azurite-blob")
    if os.access(cand, os.X_OK):
        return cand
    return shutil.which("azurite-blob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    def __init__(self, exe: str, location: str) -> None:
        self.location = location
        self.log = open(os.path.join(location, "azurite.log"), "wb")  # noqa: SIM115
        # the free port is probed, then bound by node a moment later: when something else
        # took it in between, azurite exits (EADDRINUSE) and a fresh port is tried
        for _attempt in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [exe, "--skipApiVersionCheck", "--loose", "--blobHost", "127.0.0.1",
                 "--blobPort", str(self.port), "--location", location, "--silent"],
                stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{KEY};{ACCOUNT2}:{KEY}"})
            if self._ready():
                return
        raise RuntimeError(f"azurite-blob exited with {self.proc.returncode} three times "
                           f"(see {self.log.name})")

    def _ready(self) -> bool:
        """Whether it listens (False: it exited); raises when it neither listens nor exits."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if self.proc.poll() is None:  # ours, not a process that took the port
                    return True
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("azurite-blob did not listen within 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def endpoint(self, port: int | None = None, account: str = ACCOUNT) -> str:
        return f"http://127.0.0.1:{port or self.port}/{account}"

    def connection_string(self, port: int | None = None, account: str = ACCOUNT) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={KEY};"
                f"BlobEndpoint={self.endpoint(port, account)};")

    def service(self, account: str = ACCOUNT):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string(account=account))

    def make_container(self, name: str, account: str = ACCOUNT):
        c = self.service(account).get_container_client(name)
        c.create_container()
        return c


class CountingProxy:
    """Relays 127.0.0.1:port -> target port, counting bytes up (to Azurite) and down."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.up = 0
        self.down = 0
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = 0

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, up: bool) -> None:
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def start_azurite(tmp: str) -> Azurite:
    exe = find_azurite()
    if exe is None:
        msg = ("azurite-blob is not installed (scripts/setup.sh installs it from npm into "
               "build/azurite)")
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError:
        msg = "azure-storage-blob is not installed (pip install azure-storage-blob)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return Azurite(exe, tmp)
