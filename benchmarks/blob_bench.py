"""Blob storage benchmarks on Azurite (start one, or reuse tests/azurite.py's launcher).

    python benchmarks/blob_bench.py [--size 256M] [--pairs 5] [--threads 4]

1. **Replication to a blob region vs azure-storage-blob's own parallel upload** of the same
   pack bytes: A = ``replicate(local slot -> blob slot)`` (staged blocks, verification of every
   record, index blob, manifest last) into a fresh container; B = ``BlobClient.upload_blob(
   packs, max_concurrency=threads)`` of the local pack files' bytes into a fresh container.
   Tightly alternated A/B pairs; median of the per-pair ratios A/B.
2. **Capture from a sparse page blob vs downloading the blob whole first**: a fixed VHD of
   SIZE with a quarter of it written, uploaded as a page blob with only those pages. A =
   ``ingest`` straight from the URL (page ranges are the extents); B = ``download_blob`` of the
   whole blob to a file, then ``ingest`` of the file. Alternated pairs, median ratio.

Prints one JSON object: wall seconds per run, user and sys CPU seconds of this process per
run (Azurite's own CPU is not in them), the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MiB = 1 << 20


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def measure(fn) -> dict:
    u0, s0 = cpu()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    u1, s1 = cpu()
    return {"wall": round(wall, 3), "user": round(u1 - u0, 3), "sys": round(s1 - s0, 3)}


def make_disk(path: str, size: int) -> None:
    """Half incompressible data, half text-like (compressible), every chunk distinct."""
    rnd = random.Random(1)
    words = [rnd.randbytes(rnd.randint(2, 9)).hex().encode() for _ in range(4096)]
    with open(path, "wb") as f:
        for i in range(size // MiB):
            if i % 2:
                f.write(rnd.randbytes(MiB))
            else:
                buf = bytearray()
                while len(buf) < MiB:
                    buf += rnd.choice(words) + b" "
                f.write(bytes(buf[:MiB]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256M")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--workdir", default="/tmp")
    a = ap.parse_args()
    size = int(a.size[:-1]) * {"M": MiB, "G": 1 << 30}[a.size[-1].upper()]

    from imagestore.formats import open_disk
    from imagestore.home import Home
    from imagestore.regions import RegionRegistry
    from imagestore.regions.replicas import open_slot, region_slots
    from imagestore.regions.replicate import replicate
    from imagestore.store.ingest import ingest
    from tests.azurite import start_azurite

    base = tempfile.mkdtemp(prefix="blob-bench-", dir=a.workdir)
    os.mkdir(os.path.join(base, "azurite"))
    az = start_azurite(os.path.join(base, "azurite"))
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = az.connection_string()
    out: dict = {"size": size, "threads": a.threads, "pairs": a.pairs,
                 "loadBefore": os.getloadavg()}
    try:
        home = Home.open(os.path.join(base, "store"))
        src_path = os.path.join(base, "disk.raw")
        make_disk(src_path, size)
        local = home.blob_store()
        r = open_disk(src_path, source_format="raw")
        digest = ingest(local, r, threads=a.threads).digest
        r.close()
        packs = b"".join(open(os.path.join(local.packs_dir, n), "rb").read()
                         for n in sorted(os.listdir(local.packs_dir)) if n.endswith(".pack"))
        out["packBytes"] = len(packs)
        reg = RegionRegistry(home)
        svc = az.service()
        rows = []
        for i in range(a.pairs):
            name = f"rep{i}"
            svc.create_container(name)
            reg.create_blob(name, [az.endpoint()], [name], credential=None)
            slot = open_slot(region_slots(reg.get(name))[0], home.config, create=False)
            ra = measure(lambda s=slot: replicate(local, s, digest, threads=a.threads))
            slot.close()
            svc.create_container(f"raw{i}")
            bc = svc.get_blob_client(f"raw{i}", "packs.bin")
            rb = measure(lambda bc=bc: bc.upload_blob(packs, max_concurrency=a.threads))
            rows.append({"imagestore": ra, "sdkUpload": rb,
                         "ratio": round(ra["wall"] / rb["wall"], 3)})
        out["replication"] = {"pairs": rows,
                              "medianRatio": statistics.median(x["ratio"] for x in rows)}

        # capture from a sparse page blob vs download-then-capture
        raw = os.path.join(base, "sparse.raw")
        with open(raw, "wb") as f:
            f.truncate(size)
            rnd = random.Random(2)
            for off in range(0, size, 4 * MiB):
                f.seek(off)
                f.write(rnd.randbytes(MiB))
        vhd = os.path.join(base, "sparse.vhd")
        subprocess.run(["qemu-img", "convert", "-O", "vpc", "-o", "subformat=fixed", raw, vhd],
                       check=True)
        svc.create_container("vhds")
        pb = svc.get_blob_client("vhds", "sparse.vhd")
        vsize = os.path.getsize(vhd)
        pb.create_page_blob(size=vsize)
        written = 0
        with open(vhd, "rb") as f:
            for off in range(0, vsize, MiB):
                piece = f.read(MiB)
                if piece.strip(b"\0"):
                    pb.upload_page(piece, offset=off, length=len(piece))
                    written += len(piece)
        out["pageBlob"] = {"size": vsize, "writtenBytes": written}
        url = f"{az.endpoint()}/vhds/sparse.vhd"
        rows = []
        for i in range(a.pairs):
            st = Home.open(os.path.join(base, f"cap{i}a")).blob_store()

            def direct(st=st):
                rd = open_disk(url)
                ingest(st, rd, threads=a.threads)
                rd.close()

            ra = measure(direct)
            st2 = Home.open(os.path.join(base, f"cap{i}b")).blob_store()
            dl = os.path.join(base, f"dl{i}.vhd")

            def whole(st=st2, dl=dl):
                with open(dl, "wb") as f:
                    pb.download_blob(max_concurrency=a.threads).readinto(f)
                rd = open_disk(dl)
                ingest(st, rd, threads=a.threads)
                rd.close()

            rb = measure(whole)
            os.unlink(dl)
            rows.append({"fromPageBlob": ra, "downloadThenCapture": rb,
                         "ratio": round(ra["wall"] / rb["wall"], 3)})
        out["capture"] = {"pairs": rows,
                          "medianRatio": statistics.median(x["ratio"] for x in rows)}
        home.close()
    finally:
        az.stop()
        out["loadAfter"] = os.getloadavg()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
