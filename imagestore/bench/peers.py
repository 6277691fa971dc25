"""The tools a user would pick instead for a deduplicating store of the same raw image:
``borg`` (``create --compression zstd,1``, ``extract``) and ``restic`` (``backup``,
``restore``), where installed (part of ``bench capture --peers``; nothing is installed here).

Each peer gets a fresh repository per timed first capture, like our fresh store; the v2
capture goes into the repository holding v1, like ours into the store holding v1. Stored
bytes are ``du -sb`` of the whole repository (ours: of the whole store), so index, manifests
and repository metadata count on both sides. Every output is fsynced inside the timing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from .cache import settle
from .report import pair
from .stores import ingest_file, materialize_file, packs_dir
from .timing import interleaved
from .tools import du_bytes, files, fsync_path, rm, run
from .workspace import Workspace

PEERS = ("borg", "restic")
#: environment for unattended, unencrypted repositories (benchmarks only)
_ENV = {
    "BORG_PASSPHRASE": "",
    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    "BORG_EXIT_CODES": "legacy",
    "RESTIC_PASSWORD": "imagestore-bench",
    "RESTIC_CACHE_DIR": "",
}


def found_peers() -> tuple[list[str], list[str]]:
    """(installed peers, skipped ones)."""
    have = [p for p in PEERS if shutil.which(p)]
    return have, [p for p in PEERS if p not in have]


def _env() -> dict:
    env = dict(os.environ, **_ENV)
    env.pop("RESTIC_CACHE_DIR")
    return env


def _fsync_tree(path: str) -> None:
    for p in files(path):
        fsync_path(p)


class Peer:
    """One peer tool's repository in the workspace."""

    def __init__(self, tool: str, w: Workspace) -> None:
        self.tool, self.w = tool, w
        self.repo = os.path.join(w.dir, f"repo-{tool}")
        self.cache = os.path.join(w.dir, f"cache-{tool}")
        self.n = 0

    def _run(self, args: list[str], **kw) -> None:
        env = _env()
        if self.tool == "restic":
            env["RESTIC_CACHE_DIR"] = self.cache
        else:
            env["BORG_CACHE_DIR"] = self.cache
            env["BORG_CONFIG_DIR"] = os.path.join(self.cache, "config")
            env["BORG_SECURITY_DIR"] = os.path.join(self.cache, "security")
        run(args, env=env, **kw)

    def init(self) -> None:
        rm(self.repo, self.cache)
        if self.tool == "borg":
            self._run(["borg", "init", "-e", "none", self.repo])
        else:
            self._run(["restic", "init", "-q", "-r", self.repo])

    def capture(self, path: str) -> None:
        """Back up ``path`` (by its own directory, so the archive holds one file name)."""
        self.n += 1
        d, name = os.path.split(path)
        if self.tool == "borg":
            self._run(["borg", "create", "--compression", "zstd,1", f"{self.repo}::v{self.n}", name],
                      cwd=d)
        else:
            self._run(["restic", "-q", "-r", self.repo, "backup", name], cwd=d)
        _fsync_tree(self.repo)

    def extract(self, out_dir: str) -> None:
        rm(out_dir)
        os.makedirs(out_dir)
        if self.tool == "borg":
            self._run(["borg", "extract", "--sparse", f"{self.repo}::v{self.n}"], cwd=out_dir)
        else:
            self._run(["restic", "-q", "-r", self.repo, "restore", "latest", "--target", out_dir])
        _fsync_tree(out_dir)

    def stored(self) -> int:
        return du_bytes(self.repo)


def peer_rows(w: Workspace, v2: str | None) -> tuple[list[dict], list[str]]:
    """Capture, disk creation and stored bytes of imagestore vs each installed peer on the
    raw image; v2-after-v1 growth when ``v2`` is given. Returns (rows, skipped peers)."""
    s, img, cache = w.s, w.img, w.s.cache
    have, skipped = found_peers()
    if not have:
        return [], skipped
    nb = img.allocated
    peers = [Peer(t, w) for t in have]
    root = os.path.join(w.dir, "store-peers")
    rows: list[dict] = []

    def fresh_peer(p: Peer) -> Callable[[], None]:
        def f() -> None:
            p.init()
            p.n = 0
            settle(s.cold, img.raw)
        return f

    s.log(f"peers: capture ({', '.join(have)})")
    specs = [(lambda: ingest_file(root, img.raw, s.threads, fresh=False), w.fresh(root, img.raw))]
    specs += [(lambda p=p: p.capture(img.raw), fresh_peer(p)) for p in peers]
    times = interleaved(s, specs)
    ours_stored = du_bytes(root)
    digest = ingest_file(root, img.raw, s.threads, fresh=False).digest  # already stored: no-op
    got = pair("capture raw -> store (peers' comparison)", times[0], nb, [
        (f"{p.tool} {'create --compression zstd,1' if p.tool == 'borg' else 'backup'}", p.tool, t)
        for p, t in zip(peers, times[1:], strict=True)
    ], cache=cache)
    got[0]["storedBytes"] = ours_stored
    for r, p in zip(got[1:], peers, strict=True):
        r["storedBytes"] = p.stored()
        r["storedRatio"] = round(ours_stored / r["storedBytes"], 2) if r["storedBytes"] > 0 else None
    rows += got

    s.log("peers: disk creation")
    out_dir = os.path.join(w.dir, "peer-out")
    specs = [(lambda: materialize_file(root, digest, w.out, "raw", s.threads),
              w.drop(packs_dir(root)))]
    specs += [(lambda p=p: p.extract(out_dir), lambda p=p: (rm(out_dir), settle(s.cold, p.repo)))
              for p in peers]
    times = interleaved(s, specs)
    rm(w.out, out_dir)
    rows += pair("create disk store -> raw (peers' comparison)", times[0], nb, [
        (f"{p.tool} {'extract --sparse' if p.tool == 'borg' else 'restore'}", p.tool, t)
        for p, t in zip(peers, times[1:], strict=True)
    ], cache=cache)

    if v2 is not None:
        s.log("peers: v2 after v1")
        before = [du_bytes(root)] + [p.stored() for p in peers]
        specs = [(lambda: ingest_file(root, v2, s.threads, fresh=False), lambda: settle(s.cold, v2))]
        specs += [(lambda p=p: p.capture(v2), lambda: settle(s.cold, v2)) for p in peers]
        one = type(s)(**{**s.__dict__, "repeat": 1})  # a second v2 would add nothing
        times = interleaved(one, specs)
        after = [du_bytes(root)] + [p.stored() for p in peers]
        got = pair("capture v2 after v1 -> store (growth)", times[0], nb, [
            (f"{p.tool}, v2 into the repository holding v1", p.tool, t)
            for p, t in zip(peers, times[1:], strict=True)
        ], cache=cache)
        for r, b, a in zip(got, before, after, strict=True):
            r["storedBytes"] = a - b
        for r in got[1:]:
            r["storedRatio"] = round(got[0]["storedBytes"] / r["storedBytes"], 2) if r["storedBytes"] > 0 else None
        rows += got
    for p in peers:
        rm(p.repo, p.cache)
    rm(root)
    return rows, skipped
